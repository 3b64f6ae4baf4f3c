// engine.kind in the provider config and createEngine: which engine a config opens, and the errors a wrong
// Kubernetes configuration gets (at parse time with file:line, at open time with the kubeconfig's path).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeKubeApiServer } from "../../../test-support/kube-fake-apiserver.js";
import { ConfigError, defaultConfigText, parseConfig } from "../src/config.js";
import { createEngine, EngineError, KubernetesEngine } from "../src/index.js";
import { createLogger } from "../src/log.js";

const base = defaultConfigText({ payments: "0x5FbDB2315678afecb367f032d93F642f64180aa3" });
const withEngine = (e: string) => base.replace(/^engine:\n(?: {2}.*\n)+/m, `engine:\n${e}`);
let tmp: string;
const fake = new FakeKubeApiServer();
let server: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-engine-factory-"));
  server = await fake.start();
});
afterAll(async () => {
  await fake.stop();
  await rm(tmp, { recursive: true, force: true });
});

function issues(text: string): string[] {
  try {
    parseConfig(text, path.join(tmp, "p.yaml"));
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

const kubeconfigText = (srv: string, context = "provider") => `apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "${srv}", insecure-skip-tls-verify: true}}]
users: [{name: fake, user: {token: fake-token}}]
contexts: [{name: ${context}, context: {cluster: fake, user: fake}}]
current-context: ${context}
`;

describe("engine.kind in the provider config", () => {
  it("reads kind kubernetes with its kubeconfig (relative to the config), context, prefix and classes", () => {
    const c = parseConfig(
      withEngine(
        "  kind: kubernetes\n  kubeconfig: kube/config\n  context: provider\n  namespacePrefix: pods-\n" +
          "  runtimeClassName: kata-qemu-snp\n  storageClassName: fast.ssd\n  publicHost: nodes.example\n",
      ),
      path.join(tmp, "provider.yaml"),
    );
    expect(c.engine).toMatchObject({
      kind: "kubernetes",
      kubeconfig: path.join(tmp, "kube", "config"),
      context: "provider",
      namespacePrefix: "pods-",
      runtimeClassName: "kata-qemu-snp",
      storageClassName: "fast.ssd",
      publicHost: "nodes.example",
    });
    expect(parseConfig(base, path.join(tmp, "provider.yaml")).engine.kind).toBe("podman");
  });

  it("refuses a kubernetes engine without a kubeconfig, keys of the other kind, and bad names, each located", () => {
    expect(issues(withEngine("  kind: kubernetes\n"))).toEqual([
      expect.stringMatching(/p\.yaml:\d+:\d+: engine\.kind kubernetes needs "kubeconfig"/),
    ]);
    expect(issues(withEngine("  kind: kubernetes\n  kubeconfig: k\n  socket: /run/podman.sock\n"))).toEqual([
      expect.stringMatching(/engine\.socket applies to engine\.kind podman only \(kind is kubernetes\)/),
    ]);
    expect(issues(withEngine("  kind: podman\n  kubeconfig: k\n"))).toEqual([
      expect.stringMatching(/engine\.kubeconfig applies to engine\.kind kubernetes only/),
    ]);
    const bad = issues(
      withEngine(
        "  kind: kubernetes\n  kubeconfig: k\n  namespacePrefix: Tpod_\n  runtimeClassName: Kata SNP\n",
      ),
    );
    expect(bad).toHaveLength(2);
    expect(bad[0]).toMatch(/engine\.namespacePrefix "Tpod_" must start with a lowercase letter/);
    expect(bad[1]).toMatch(/engine\.runtimeClassName "Kata SNP" is not a Kubernetes object name/);
    expect(issues(withEngine("  kind: nomad\n"))[0]).toMatch(/engine\.kind/);
  });
});

describe("engine.registry (kind kubernetes: where pod images are pushed)", () => {
  const kube = "  kind: kubernetes\n  kubeconfig: k\n";
  const reg = (body: string) => withEngine(`${kube}  registry:\n${body}`);

  it("reads repository, authFile (relative to the config) and tlsVerify (default on)", () => {
    const c = parseConfig(
      reg("    repository: registry.example:5000/tpod\n    authFile: auth.json\n    insideTee: true\n"),
      path.join(tmp, "provider.yaml"),
    );
    expect(c.engine.registry).toEqual({
      repository: "registry.example:5000/tpod",
      authFile: path.join(tmp, "auth.json"),
      tlsVerify: true,
    });
    const local = parseConfig(
      reg("    repository: 127.0.0.1:5000/tpod\n    tlsVerify: false\n    insideTee: true\n"),
      path.join(tmp, "provider.yaml"),
    );
    expect(local.engine.registry?.tlsVerify).toBe(false);
  });

  it("refuses a registry not declared inside the TEE, TLS off beyond loopback, a repository without a host, kind podman", () => {
    expect(issues(reg("    repository: registry.example/tpod\n"))).toEqual([
      expect.stringMatching(
        /p\.yaml:\d+:\d+: engine\.registry\.insideTee must be true: the provider pushes decrypted images/,
      ),
    ]);
    expect(issues(reg("    repository: registry.example/tpod\n    insideTee: false\n"))[0]).toMatch(
      /insideTee must be true/,
    );
    expect(
      issues(reg("    repository: registry.example/tpod\n    tlsVerify: false\n    insideTee: true\n")),
    ).toEqual([expect.stringMatching(/tlsVerify false is allowed for a loopback registry only/)]);
    expect(issues(reg("    repository: tpod/images\n    insideTee: true\n"))).toEqual([
      expect.stringMatching(/does not start with a registry host/),
    ]);
    expect(issues(reg("    repository: Registry.Example/TPOD\n    insideTee: true\n"))[0]).toMatch(
      /is not a registry repository/,
    );
    expect(issues(reg("    insideTee: true\n"))[0]).toMatch(/engine\.registry needs "repository"/);
    expect(
      issues(withEngine("  kind: podman\n  registry:\n    repository: r.example/t\n    insideTee: true\n")),
    ).toEqual([expect.stringMatching(/engine\.registry applies to engine\.kind kubernetes only/)]);
  });
});

describe("createEngine", () => {
  const log = createLogger("silent");

  it("opens a KubernetesEngine on the kubeconfig's cluster and context for kind kubernetes", async () => {
    const file = path.join(tmp, "kubeconfig");
    await writeFile(file, kubeconfigText(server));
    const engine = await createEngine(
      {
        dataDir: tmp,
        engine: {
          ...parseConfig(base, path.join(tmp, "p.yaml")).engine,
          kind: "kubernetes",
          kubeconfig: file,
          context: "provider",
        },
      },
      log,
    );
    expect(engine).toBeInstanceOf(KubernetesEngine);
    expect(engine.kind).toBe("kubernetes");
    // It talks to that cluster: the fake answers the list of managed namespaces.
    expect(await engine.listPods()).toEqual([]);
    expect(fake.requests.some((r) => r.path === "/api/v1/namespaces")).toBe(true);
    await engine.close();
  });

  it("refuses a kubeconfig it cannot use with ENGINE_UNAVAILABLE naming the file", async () => {
    const engineConfig = {
      ...parseConfig(base, path.join(tmp, "p.yaml")).engine,
      kind: "kubernetes" as const,
    };
    const missing = path.join(tmp, "nope");
    const e1 = await createEngine(
      { dataDir: tmp, engine: { ...engineConfig, kubeconfig: missing } },
      log,
    ).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(EngineError);
    expect((e1 as EngineError).code).toBe("ENGINE_UNAVAILABLE");
    expect((e1 as EngineError).message).toBe(`kubeconfig ${missing}: no such file`);
    // A broken file is reported without quoting it: the line at fault may hold a token.
    const broken = path.join(tmp, "broken");
    await writeFile(broken, "users: [{name: u, user: {token: s3cret-token}}\n  ]: :\n");
    const e0 = await createEngine(
      { dataDir: tmp, engine: { ...engineConfig, kubeconfig: broken } },
      log,
    ).catch((e: unknown) => e);
    expect((e0 as EngineError).code).toBe("ENGINE_UNAVAILABLE");
    expect((e0 as EngineError).message).toMatch(/^kubeconfig .*broken: not valid YAML/);
    expect((e0 as EngineError).message).not.toContain("token");
    const file = path.join(tmp, "kubeconfig2");
    await writeFile(file, kubeconfigText(server));
    const e2 = await createEngine(
      { dataDir: tmp, engine: { ...engineConfig, kubeconfig: file, context: "elsewhere" } },
      log,
    ).catch((e: unknown) => e);
    expect((e2 as EngineError).code).toBe("ENGINE_UNAVAILABLE");
    expect((e2 as EngineError).message).toMatch(/has no context "elsewhere" \(it has: provider\)/);
  });
});
