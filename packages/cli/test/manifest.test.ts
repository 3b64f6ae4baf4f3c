import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../src/main.js";

const exec = promisify(execFile);
const root = resolve(import.meta.dirname, "../../..");
const bin = resolve(root, "packages/cli/bin/tpod");
const examples = ["hello", "kv", "two-container"].map((e) => join(root, "examples", e, "pod.yaml"));
const pricing = join(root, "examples/pricing.yaml");
const dir = mkdtempSync(join(tmpdir(), "tpod-manifest-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const BAD = `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: bad
spec:
  containers:
    - name: web
      image: busybox
      ports:
        - containerPort: 0
          htp: {}
`;

describe("tpod manifest validate", () => {
  it("exits 0 and names each valid example", async () => {
    const { io, out, err } = capture();
    expect(await run(["manifest", "validate", ...examples], io)).toBe(0);
    expect(out).toEqual([
      `${examples[0]}: valid pod hello (1 container)`,
      `${examples[1]}: valid pod kv (1 container)`,
      `${examples[2]}: valid pod two-container (2 containers)`,
    ]);
    expect(err).toEqual([]);
  });

  it("exits 1 with one FILE:LINE:COL: message line per error, for every file", async () => {
    const bad = write("bad.yaml", BAD);
    const missing = join(dir, "missing.yaml");
    const { io, err } = capture();
    expect(await run(["manifest", "validate", bad, examples[0]!, missing], io)).toBe(1);
    expect(err).toEqual([
      `${bad}:10:11: a port needs "http", "tcp" or "udp"`,
      `${bad}:10:26: port 0 is out of range (1-65535)`,
      `${bad}:11:11: unknown key "htp" in port (did you mean "http"?)`,
      `${missing}:1:1: no such file`,
    ]);
  });

  it("--json prints the parsed pod with exact quantities", async () => {
    const { io, out } = capture();
    expect(await run(["manifest", "validate", "--json", examples[1]!], io)).toBe(0);
    const pod = JSON.parse(out.join(""));
    expect(pod.name).toBe("kv");
    expect(pod.containers[0].resources).toEqual({
      cpuMillis: "500",
      memoryBytes: "268435456",
      storageBytes: "268435456",
      gpu: "0",
    });
    expect(pod.volumes[1]).toEqual({
      name: "auth",
      kind: "secret",
      source: { kind: "file", path: "./redis-auth.conf" },
    });
  });

  it("--json with several files prints an array of pods in argument order", async () => {
    const { io, out } = capture();
    expect(await run(["manifest", "validate", "--json", examples[2]!, examples[0]!], io)).toBe(0);
    expect(JSON.parse(out.join("")).map((p: { name: string }) => p.name)).toEqual(["two-container", "hello"]);
  });

  it("reports a secret file that does not exist next to the manifest", async () => {
    const path = write(
      "secret.yaml",
      "apiVersion: trustedpods/v1\nkind: Pod\nmetadata: {name: s}\nspec:\n  containers: [{name: a, image: busybox}]\n  volumes: [{name: k, secret: {file: ./nope.txt}}]\n",
    );
    const { io, err } = capture();
    expect(await run(["manifest", "validate", path], io)).toBe(1);
    expect(err).toEqual([`${path}:6:38: secret file "./nope.txt" does not exist`]);
  });

  it("exits 2 without a file argument", async () => {
    const { io, err } = capture();
    expect(await run(["manifest", "validate"], io)).toBe(2);
    expect(err.join("")).toMatch(/missing required argument 'file'/);
  });

  it("works the same through the installed bin (stderr lines and exit code)", async () => {
    const bad = write("bin-bad.yaml", BAD);
    const failure = await exec(bin, ["manifest", "validate", bad]).then(
      () => undefined,
      (e: { code: number; stderr: string; stdout: string }) => e,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stdout).toBe("");
    expect(failure?.stderr).toBe(
      [
        `${bad}:10:11: a port needs "http", "tcp" or "udp"`,
        `${bad}:10:26: port 0 is out of range (1-65535)`,
        `${bad}:11:11: unknown key "htp" in port (did you mean "http"?)`,
        "",
      ].join("\n"),
    );
    const ok = await exec(bin, ["manifest", "validate", examples[0]!]);
    expect(ok.stdout).toBe(`${examples[0]}: valid pod hello (1 container)\n`);
  });
});

describe("tpod manifest import", () => {
  const fixtures = join(root, "packages/protocol/test/fixtures/compose");

  it("prints the manifest on stdout and located warnings on stderr, exit 0", async () => {
    const file = join(fixtures, "wordpress/docker-compose.yml");
    const { io, out, err } = capture();
    expect(await run(["manifest", "import", file], io)).toBe(0);
    expect(out.join("")).toBe(readFileSync(join(fixtures, "wordpress/expected-pod.yaml"), "utf8"));
    expect(err).toEqual([
      `${file}:14:5: warning: expose: not published; the containers of a pod reach each other on localhost (use ports: to publish)`,
      `${file}:30:3: warning: volume "db_data" becomes persistent volume "db-data" of 1Gi (Compose gives no size; change it in the manifest)`,
      `${file}:31:3: warning: volume "wp_data" becomes persistent volume "wp-data" of 1Gi (Compose gives no size; change it in the manifest)`,
    ]);
  });

  it("exits 1 with every error when the pod could not work, printing no manifest", async () => {
    const file = join(fixtures, "unsupported/docker-compose.yml");
    const { io, out, err } = capture();
    expect(await run(["manifest", "import", file], io)).toBe(1);
    expect(out).toEqual([]);
    expect(err.filter((l) => !l.includes(": warning: "))).toHaveLength(9);
    expect(err[0]).toBe(
      `${file}:4:5: privileged: not supported (pods never run privileged; remove it and grant the program only what it needs)`,
    );
  });

  it("reads .env next to the Compose file and the env_file it names", async () => {
    writeFileSync(join(dir, ".env"), "TAG=1.36\nGREETING=hello\n");
    writeFileSync(join(dir, "app.env"), "FROM_FILE=yes\n");
    const file = write(
      "docker-compose.yml",
      `services:\n  app:\n    image: busybox:\${TAG}\n    env_file: app.env\n    environment: [GREETING]\n`,
    );
    const { io, out, err } = capture();
    expect(await run(["manifest", "import", file], io)).toBe(0);
    expect(err).toEqual([]);
    expect(out.join("")).toContain("image: busybox:1.36\n");
    expect(out.join("")).toContain(
      "- name: FROM_FILE\n          value: yes\n        - name: GREETING\n          value: hello\n",
    );
  });

  it("ships a read-only config directory's files and takes COMPOSE_PROFILES from .env", async () => {
    const project = join(dir, "confdir");
    mkdirSync(join(project, "conf", "conf.d"), { recursive: true });
    writeFileSync(join(project, "conf", "main.conf"), "listen 8080;\n");
    writeFileSync(join(project, "conf", "conf.d", "site.conf"), "root /www;\n");
    writeFileSync(join(project, ".env"), "COMPOSE_PROFILES=web\n");
    const file = join(project, "compose.yaml");
    writeFileSync(
      file,
      `services:\n  proxy:\n    image: busybox\n    profiles: [web]\n    volumes: ["./conf:/etc/proxy:ro"]\n`,
    );
    const { io, out, err } = capture();
    expect(await run(["manifest", "import", file], io)).toBe(0);
    expect(err).toEqual([
      `${file}:5:15: warning: read-only bind mount of host directory ./conf: its 2 files become secret volumes (encrypted, read-only in the pod); files added to it later are not seen`,
    ]);
    expect(out.join("")).toContain("mountPath: /etc/proxy/conf.d/site.conf\n");
    // Saved next to the Compose file, the manifest validates: the secret files are found relative to it.
    const saved = join(project, "pod.yaml");
    writeFileSync(saved, out.join(""));
    const validated = capture();
    expect(await run(["manifest", "validate", saved], validated.io)).toBe(0);
    expect(validated.err).toEqual([]);
  });

  it("through the installed bin: stdout is a manifest that validates", async () => {
    const file = join(fixtures, "web-postgres-redis/docker-compose.yml");
    // Its build: service's base image is not in this machine's store: import without building it.
    const { stdout, stderr } = await exec(bin, ["manifest", "import", "--no-build", file]);
    expect(stderr.split("\n").filter(Boolean)).toHaveLength(6);
    const saved = join(fixtures, "web-postgres-redis/imported.tmp.yaml");
    writeFileSync(saved, stdout);
    try {
      const { io, err } = capture();
      expect(await run(["manifest", "validate", saved], io)).toBe(0);
      expect(err).toEqual([]);
    } finally {
      rmSync(saved);
    }
  });

  it("exits 2 without a file and 1 for a missing file", async () => {
    const usage = capture();
    expect(await run(["manifest", "import"], usage.io)).toBe(2);
    const missing = capture();
    expect(await run(["manifest", "import", join(dir, "nope.yml")], missing.io)).toBe(1);
    expect(missing.err).toEqual([`${join(dir, "nope.yml")}:1:1: no such file`]);
  });
});

describe("tpod manifest show", () => {
  it("prints a summary with the price per hour", async () => {
    const { io, out } = capture();
    expect(await run(["manifest", "show", examples[1]!, "--pricing", pricing], io)).toBe(0);
    expect(out.join("\n")).toBe(
      [
        "pod kv: 1 container, 1 replica",
        "  container redis: localhost/tpod-redis:latest (local image)",
        "    run:       redis-server /etc/redis/auth.conf --port 6379 --dir /data --appendonly yes --protected-mode no",
        "    port:      6379 (redis) tcp",
        "    mount:     data at /data",
        "    mount:     auth at /etc/redis/auth.conf (read-only)",
        "    resources: cpu 500m, memory 256Mi, storage 256Mi",
        "  volume data: persistent 1Gi",
        "  volume auth: secret from file ./redis-auth.conf",
        "billed: cpu 500 millicores, memory 256 MiB, storage 2 GiB",
        "price (billed for 1 replica, token 0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9):",
        "  cpu      500 millicore × 0.00000001 TPT/s = 0.018 TPT/hour",
        "  memory   256 MiB × 0.0000000014 TPT/s = 0.00129024 TPT/hour",
        "  storage  2 GiB × 0.000000028 TPT/s = 0.0002016 TPT/hour",
        "  total    0.0000054144 TPT/s = 0.01949184 TPT/hour",
      ].join("\n"),
    );
  });

  it("--json carries the price as exact decimal strings", async () => {
    const { io, out } = capture();
    expect(await run(["manifest", "show", "--json", examples[0]!, "--pricing", pricing], io)).toBe(0);
    const shown = JSON.parse(out.join(""));
    expect(shown.billed).toEqual({ replicas: 1, cpu: "100", memory: "32", storage: "1", gpu: "0" });
    expect(shown.price.perSecond).toBe("1072800000000");
    expect(shown.price.perHour).toBe("3862080000000000");
  });

  it("exits 1 with located errors for a bad pricing file", async () => {
    const badPricing = write("pricing.yaml", "token: nope\nsymbol: X\ndecimals: 6\nprices: {cpu: -1}\n");
    const { io, err } = capture();
    expect(await run(["manifest", "show", examples[0]!, "--pricing", badPricing], io)).toBe(1);
    expect(err).toEqual([
      `${badPricing}:1:8: token "nope" is not an address (0x and 40 hex digits)`,
      `${badPricing}:4:15: price of cpu must be a whole number of token base units, not "-1"`,
    ]);
  });

  it("exits 1 when the pricing does not offer a resource the pod needs", async () => {
    const noGpu = write(
      "nogpu.yaml",
      `token: "0x${"1".repeat(40)}"\nsymbol: X\ndecimals: 0\nprices: {cpu: 1, memory: 1, storage: 1}\n`,
    );
    const gpuPod = write(
      "gpu.yaml",
      "apiVersion: trustedpods/v1\nkind: Pod\nmetadata: {name: g}\nspec:\n  containers: [{name: a, image: busybox, resources: {gpu: 1}}]\n",
    );
    const { io, err } = capture();
    expect(await run(["manifest", "show", gpuPod, "--pricing", noGpu], io)).toBe(1);
    expect(err).toEqual(["error: the pricing offers no gpu, but the pod needs 1 GPU"]);
  });
});
