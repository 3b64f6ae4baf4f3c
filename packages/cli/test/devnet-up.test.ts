// `tpod devnet up` as a child process (the built CLI): ready line, state file, a working chain with the provider
// registered at the printed prices, verify/providers finding it without flags, the gateway, a second devnet
// refused, examples/hello deployed and answering, and a clean SIGTERM (state file gone, pods removed, ports closed).
import { type ChildProcess, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { getProvider } from "@trustedpods/chain";
import { readDevnetState } from "@trustedpods/publisher/node";
import { type Address, createPublicClient, http as viemHttp } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type DevnetProcess,
  getWithHost as get,
  spawnDevnetUp,
} from "../../../test-support/devnet-process.js";
import { run } from "../src/main.js";

const execFileP = promisify(execFile);
const bin = path.resolve(import.meta.dirname, "../bin/tpod");
const repo = path.resolve(import.meta.dirname, "../../..");
const built = existsSync(path.resolve(import.meta.dirname, "../dist/main.js"));
const HAVE_TOOLS = ["/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox"].every((p) => existsSync(p));
if (!built) console.warn("SKIP: tpod devnet up tests need the built CLI (npm run build)");
if (!HAVE_TOOLS) console.warn("SKIP: tpod devnet up tests need podman, buildah and busybox-static");

const uid = randomBytes(4).toString("hex");
const owner = `devnet-t${uid}`;
const image = `localhost/tpod-devnet-test-${uid}:latest`;
const savedHome = process.env.TPOD_HOME;
let home: string;
let child: ChildProcess;
let exited: Promise<number | null>;
// biome-ignore lint/suspicious/noExplicitAny: the ready line is parsed JSON, checked field by field below
let info: any;
let devnetProcess: DevnetProcess;

async function tpod(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

async function podmanLines(args: string[]): Promise<string[]> {
  const { stdout } = await execFileP("podman", args);
  return stdout.split("\n").filter(Boolean);
}

describe.skipIf(!built || !HAVE_TOOLS)("tpod devnet up", () => {
  beforeAll(async () => {
    home = await mkdtemp(path.join(tmpdir(), "tpod-devnet-up-"));
    process.env.TPOD_HOME = home;
    devnetProcess = spawnDevnetUp(bin, home, ["--engine-owner", owner]);
    ({ child, exited } = devnetProcess);
    info = await devnetProcess.ready;
  }, 120_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    await execFileP("podman", ["rmi", "-f", image]).catch(() => {});
    if (savedHome === undefined) delete process.env.TPOD_HOME;
    else process.env.TPOD_HOME = savedHome;
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("prints one ready line with the chain, provider, gateway, IPFS and publisher", () => {
    expect(info.ready).toBe(true);
    expect(info.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info.chainId).toBe(31337);
    for (const k of ["registry", "payments", "marketplace", "token"])
      expect(info.contracts[k]).toMatch(/^0x/);
    expect(info.provider.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(info.provider.multiaddrs.length).toBeGreaterThan(0);
    expect(info.provider.multiaddrs.every((a: string) => a.endsWith(`/p2p/${info.provider.peerId}`))).toBe(
      true,
    );
    expect(info.gateway.url).toBe(`http://localhost:${info.gateway.port}/`);
    expect(info.gateway.baseDomain).toBe("localhost");
    expect(info.ipfs.multiaddrs[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//);
    expect(info.publisher.label).toMatch(/TEST KEY/);
    expect(info.stateFile).toBe(path.join(home, "devnet.json"));
    expect(info.startupMs).toBeGreaterThan(0);
  });

  it("writes the state file other commands read (0600, live pid, gateway and IPFS)", async () => {
    const found = await readDevnetState(home);
    expect(found.state, "why" in found ? found.why : "").toBeDefined();
    const s = found.state!;
    expect(s.rpcUrl).toBe(info.rpcUrl);
    expect(s.publisher).toBe(info.publisher.address);
    expect(s.publisherKey).toBe(info.publisher.privateKey);
    expect(s.providers?.[0]?.address).toBe(info.provider.address);
    expect(s.gateway).toEqual({ url: info.gateway.url, baseDomain: "localhost" });
    expect(s.ipfs?.multiaddrs).toEqual(info.ipfs.multiaddrs);
    expect(s.pid).toBe(child.pid);
    const { stat } = await import("node:fs/promises");
    expect((await stat(info.stateFile)).mode & 0o777).toBe(0o600);
  });

  it("has the provider registered at the printed prices on a live chain, funded publisher", async () => {
    const publicClient = createPublicClient({ transport: viemHttp(info.rpcUrl) });
    expect(await publicClient.getChainId()).toBe(info.chainId);
    const entry = await getProvider(
      {
        publicClient: publicClient as never,
        addresses: {
          registry: info.contracts.registry,
          payments: info.contracts.payments,
          marketplace: info.contracts.marketplace,
        },
      },
      info.provider.address as Address,
    );
    const names = ["cpu", "memory", "storage", "gpu"];
    const onChain = Object.fromEntries(
      entry.prices.map((p) => [names[Number(p.resource)], p.pricePerUnitSecond.toString()]),
    );
    expect(onChain).toEqual(info.provider.pricing.prices);
    expect(entry.token.toLowerCase()).toBe(info.contracts.token.toLowerCase());
    expect(entry.teeTypes).toEqual(["insecure-dev"]);
    expect(await publicClient.getBalance({ address: info.publisher.address })).toBeGreaterThan(0n);
  });

  it("tpod providers and tpod verify find it without flags (insecure-dev allowed on the devnet)", async () => {
    const list = await tpod(["providers", "--json"]);
    expect(list.code, list.err).toBe(0);
    const doc = JSON.parse(list.out);
    expect(doc.network.name).toBe("devnet");
    expect(doc.providers.map((p: { address: string }) => p.address)).toContain(info.provider.address);
    const v = await tpod(["verify", info.provider.address, "--json"]);
    expect(v.code, v.err).toBe(0);
    expect(v.out).toContain(info.provider.peerId);
  });

  it("tpod devnet status reads the running devnet", async () => {
    const r = await tpod(["devnet", "status", "--json"]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).pid).toBe(child.pid);
  });

  it("the gateway answers an unknown host with a 404 JSON error", async () => {
    const r = await get(info.gateway.port, `nothing-${uid}.localhost`);
    expect(r.status).toBe(404);
    expect(r.type).toMatch(/application\/json/);
    expect(JSON.parse(r.body).error.code).toBe("UNKNOWN_HOST");
  });

  it("serves the web app, configured for this devnet", async () => {
    const web = (info as unknown as { web: { url: string } }).web;
    expect(web.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await fetch(web.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<script[^>]+type="module"/);
    const config = (await (await fetch(new URL("config.json", web.url))).json()) as {
      rpcUrl: string;
      chainId: number;
      devnet: boolean;
      contracts: { registry: string };
    };
    expect(config).toMatchObject({ rpcUrl: info.rpcUrl, chainId: info.chainId, devnet: true });
    expect(config.contracts.registry.toLowerCase()).toBe(info.contracts.registry.toLowerCase());
  });

  it("refuses a second devnet in the same TPOD_HOME, naming the running one", async () => {
    const r = await tpod(["devnet", "up", "--gateway-port", "0", "--chain-port", "0", "--web-port", "0"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`a devnet is already running \\(pid ${child.pid}`));
    // The refused start left the running devnet's state file alone.
    expect((await readDevnetState(home)).state?.pid).toBe(child.pid);
  });

  it("tpod deploy runs examples/hello on it without flags and the pod answers at its URL", async () => {
    // The example manifest with this test's own image tag (examples/hello/build.sh builds it, as start.sh does).
    const manifest = path.join(home, "hello.yaml");
    const text = await readFile(path.join(repo, "examples/hello/pod.yaml"), "utf8");
    await writeFile(manifest, text.replace(/image: .*/, `image: ${image}`));
    await execFileP(path.join(repo, "examples/hello/build.sh"), [image]);
    const r = await tpod(["deploy", manifest, "--json"]);
    expect(r.code, r.err).toBe(0);
    const deployed = JSON.parse(r.out);
    const url = new URL(deployed.endpoints.http[0]);
    expect(url.hostname.endsWith(".localhost")).toBe(true);
    expect(Number(url.port)).toBe(info.gateway.port);
    let answer = { status: 0, type: "", body: "" };
    for (let i = 0; i < 50 && answer.status !== 200; i++) {
      answer = await get(info.gateway.port, url.hostname);
      if (answer.status !== 200) await new Promise((res) => setTimeout(res, 200));
    }
    expect(answer.body).toContain("Hello from Trusted Pods");
    const pods = await tpod(["provider", "pods", "--config", info.provider.config, "--json"]);
    expect(pods.code, pods.err).toBe(0);
    expect(JSON.parse(pods.out).map((p: { phase: string }) => p.phase)).toEqual(["running"]);
  }, 120_000);

  it("stops on SIGTERM: state file removed, its pods removed, ports closed", async () => {
    const filter = `label=io.trustedpods.owner=${owner}`;
    expect((await podmanLines(["ps", "-a", "-q", "--filter", filter])).length).toBeGreaterThan(0);

    const ports = [
      portOf(info.rpcUrl),
      info.gateway.port,
      portOf(info.provider.metricsUrl),
      ...[...info.provider.multiaddrs, ...info.ipfs.multiaddrs].map((a: string) => Number(a.split("/")[4])),
    ];
    for (const p of ports) expect(await connects(p), `port ${p} before stop`).toBe(true);

    child.kill("SIGTERM");
    expect(await exited, devnetProcess.stderr).toBe(0);
    expect(devnetProcess.stderr).toMatch(/devnet stopped/);
    expect(existsSync(info.stateFile)).toBe(false);
    expect(existsSync(path.join(home, "devnet.lock"))).toBe(false);
    // The working directory stays for inspection: the provider's config and state are there.
    expect(existsSync(path.join(home, "devnet", "provider", "provider.yaml"))).toBe(true);
    expect(await podmanLines(["ps", "-a", "-q", "--filter", filter])).toEqual([]);
    expect(await podmanLines(["network", "ls", "-q", "--filter", filter])).toEqual([]);
    for (const p of ports) expect(await connects(p), `port ${p} after stop`).toBe(false);
    const down = await tpod(["devnet", "down"]);
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/no devnet is running/);
  });
});
