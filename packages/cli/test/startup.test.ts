import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeLayout } from "../../../test-support/oci-layout.js";

// Start-up cost: commands register from light modules and load their implementation on use. These tests run
// the built CLI in a fresh Node process with a resolve hook that records every module loaded, and fail when a
// light command pulls in one of the heavy stacks (libp2p, Helia, viem, dockerode or the packages built on them).

const root = resolve(import.meta.dirname, "../../..");
const main = resolve(import.meta.dirname, "../dist/main.js");
const recorder = resolve(import.meta.dirname, "support/record-modules.mjs");
const built = existsSync(main);

/** Module URLs that mean a heavy stack was loaded. */
const HEAVY = [
  /\/node_modules\/(helia|@helia\/[^/]+)\//,
  /\/node_modules\/(libp2p|@libp2p\/[^/]+|@chainsafe\/libp2p-[^/]+)\//,
  /\/node_modules\/(viem|ox|abitype)\//,
  /\/node_modules\/(dockerode|docker-modem)\//,
  /\/packages\/(p2p|ipfs|publisher|provider|devnet|chain|web)\/(dist|src)\//,
];

interface Loaded {
  code: number;
  stdout: string;
  stderr: string;
  modules: string[];
}

async function runRecorded(args: string[]): Promise<Loaded> {
  const dir = await mkdtemp(join(tmpdir(), "tpod-startup-"));
  const record = join(dir, "modules.txt");
  try {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((done, fail) => {
      execFile(
        process.execPath,
        ["--import", recorder, main, ...args],
        { cwd: root, env: { ...process.env, TPOD_RECORD_MODULES: record }, timeout: 60_000 },
        (err, stdout, stderr) => {
          if (err && typeof err.code !== "number") return fail(err);
          done({ code: typeof err?.code === "number" ? err.code : 0, stdout, stderr });
        },
      );
    });
    const modules = (await readFile(record, "utf8")).split("\n").filter(Boolean);
    return { ...r, modules };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function heavy(modules: string[]): string[] {
  return modules.filter((m) => HEAVY.some((re) => re.test(m)));
}

/** npm packages (by name) among the loaded modules. */
function packages(modules: string[]): Set<string> {
  const names = new Set<string>();
  for (const m of modules) {
    const hit = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m);
    if (hit) names.add(hit[1]!);
  }
  return names;
}

describe.skipIf(!built)("tpod start-up loads only what the command needs", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "tpod-startup-image-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("the recorder sees heavy modules when a command does load them (the check can fail)", async () => {
    // `network show` resolves the network through the publisher SDK (viem, libp2p): it must show up as heavy.
    const r = await runRecorded([
      "network",
      "show",
      "--rpc",
      "http://127.0.0.1:9",
      "--contracts",
      "/nonexistent",
    ]);
    expect(r.modules.length).toBeGreaterThan(0);
    expect(heavy(r.modules).length).toBeGreaterThan(0);
    expect(packages(r.modules)).toContain("viem");
  });

  it("--version and --help load commander and the CLI's own modules only", async () => {
    for (const args of [["--version"], ["--help"], ["deploy", "--help"], ["image", "encrypt", "--help"]]) {
      const r = await runRecorded(args);
      expect(r.code, args.join(" ")).toBe(0);
      expect(heavy(r.modules), args.join(" ")).toEqual([]);
      expect([...packages(r.modules)], args.join(" ")).toEqual(["commander"]);
    }
  });

  it("a usage error is still exit 2 with commander's message, without loading a command's implementation", async () => {
    const r = await runRecorded(["deploy"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/missing required argument 'manifest'/);
    expect(r.modules.filter((m) => m.includes("/dist/actions/"))).toEqual([]);
  });

  it("manifest validate loads the manifest parser but no heavy stack", async () => {
    const r = await runRecorded(["manifest", "validate", "examples/hello/pod.yaml"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/valid pod hello/);
    expect(r.modules.some((m) => m.includes("/packages/protocol/"))).toBe(true);
    expect(heavy(r.modules)).toEqual([]);
  });

  it("image encrypt loads the OCI package but no heavy stack", async () => {
    const layout = join(dir, "plain");
    await makeLayout(layout, [new Uint8Array(4096).fill(7)]);
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pub = join(dir, "recipient.pub.pem");
    await writeFile(pub, publicKey.export({ type: "spki", format: "pem" }));

    const r = await runRecorded(["image", "encrypt", layout, join(dir, "enc"), "--recipient", pub, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).dir).toBe(join(dir, "enc"));
    expect(r.modules.some((m) => m.includes("/packages/oci/"))).toBe(true);
    expect(heavy(r.modules)).toEqual([]);
  });
});
