import { execFile, execFileSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Resource, registerProvider } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// `npx tpod` runs node_modules/.bin/tpod, which npm links through two symlinks to packages/cli/bin/tpod. On a
// machine whose Node is older than 22 (Debian's is 20), the wrapper must find the Node 22 that setup installed
// in .tools/node from there: these tests put an old `node` first on PATH and run the wrapper by that path.

const root = resolve(import.meta.dirname, "../../..");
const wrapper = resolve(import.meta.dirname, "../bin/tpod");
const work = mkdtempSync(join(tmpdir(), "tpod-wrapper-"));
const oldNodeDir = join(work, "old-node");

function nodeMajor(bin: string): number {
  try {
    return Number(/^v(\d+)/.exec(execFileSync(bin, ["--version"], { encoding: "utf8" }))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** A `node` older than 22 for PATH: the machine's own when it is one (Debian 12's 20), else one that says v20. */
function makeOldNode(): number {
  mkdirSync(oldNodeDir);
  const link = join(oldNodeDir, "node");
  const system = "/usr/bin/node";
  const major = existsSync(system) ? nodeMajor(system) : 0;
  if (major > 0 && major < 22) {
    symlinkSync(system, link);
  } else {
    writeFileSync(
      link,
      '#!/bin/sh\n[ "$1" = --version ] && { echo v20.19.0; exit 0; }\necho "old node cannot run this" >&2\nexit 1\n',
      { mode: 0o755 },
    );
  }
  return nodeMajor(link);
}

function runWrapper(bin: string, args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((done, fail) => {
    execFile(
      bin,
      args,
      {
        cwd: work,
        env: { ...process.env, ...env, PATH: `${oldNodeDir}:${process.env.PATH}` },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") return fail(err);
        done({ code: typeof err?.code === "number" ? err.code : 0, stdout, stderr });
      },
    );
  });
}

let oldMajor = 0;
beforeAll(() => {
  oldMajor = makeOldNode();
  expect(oldMajor).toBeGreaterThan(0);
  expect(oldMajor).toBeLessThan(22);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("the tpod wrapper in npm's symlinked layout, with an old node first on PATH", () => {
  // A copy of the repository's shape: the real wrapper, and a main.js that tells which node runs it.
  const fake = join(work, "repo");
  const fakeBin = join(fake, "node_modules/.bin/tpod");

  beforeAll(() => {
    mkdirSync(join(fake, "packages/cli/bin"), { recursive: true });
    mkdirSync(join(fake, "packages/cli/dist"), { recursive: true });
    copyFileSync(wrapper, join(fake, "packages/cli/bin/tpod"));
    writeFileSync(
      join(fake, "packages/cli/dist/main.js"),
      "console.log(JSON.stringify({ node: process.version, args: process.argv.slice(2) }));\n",
    );
    mkdirSync(join(fake, "node_modules/.bin"), { recursive: true });
    mkdirSync(join(fake, "node_modules/@trustedpods"), { recursive: true });
    symlinkSync("../../packages/cli", join(fake, "node_modules/@trustedpods/cli"));
    symlinkSync("../@trustedpods/cli/bin/tpod", fakeBin);
  });

  it("without a Node >= 22 anywhere it exits 1 and says how to get one", async () => {
    const r = await runWrapper(fakeBin, ["pods"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`tpod: needs Node >= 22, found v${oldMajor}.`);
    expect(r.stderr).toContain(`none in ${fake}/.tools/node`);
    expect(r.stderr).toContain(`run: bash ${fake}/scripts/setup.sh`);
  });

  it("finds the repository's .tools/node through the symlinks and passes the arguments on", async () => {
    mkdirSync(join(fake, ".tools/node/bin"), { recursive: true });
    symlinkSync(process.execPath, join(fake, ".tools/node/bin/node"));
    const r = await runWrapper(fakeBin, ["pods", "--json", "a b"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ node: process.version, args: ["pods", "--json", "a b"] });
  });
});

describe("node_modules/.bin/tpod of this repository, with an old node first on PATH", () => {
  const bin = join(root, "node_modules/.bin/tpod");
  const toolsNode = join(root, ".tools/node/bin/node");
  // setup.sh installs .tools/node only where the machine's Node is older than 22: elsewhere lend it this one.
  const lent = !existsSync(toolsNode);
  let chain: DevChain;
  let contractsFile: string;

  beforeAll(async () => {
    if (lent) {
      mkdirSync(join(root, ".tools/node/bin"), { recursive: true });
      symlinkSync(process.execPath, toolsNode);
    }
    chain = await startDevChain({ accounts: 2 });
    await registerProvider(chain.context(1), {
      name: "wrapper-check",
      regions: ["eu-west"],
      multiaddrs: [],
      metadataCid: "",
      teeTypes: ["insecure-dev"],
      token: chain.contracts.token,
      minNoticeSeconds: 600,
      prices: [{ resource: Resource.cpu, pricePerUnitSecond: 10_000_000_000n }],
    });
    contractsFile = join(work, "contracts.json");
    writeFileSync(contractsFile, JSON.stringify(chain.contracts));
  }, 120_000);

  afterAll(async () => {
    await chain?.stop();
    if (lent) rmSync(join(root, ".tools/node"), { recursive: true, force: true });
  });

  it("tpod providers (viem, undici: Node 22 only) reads the Registry of a running chain", async () => {
    const r = await runWrapper(
      bin,
      ["providers", "--rpc", chain.rpcUrl, "--contracts", contractsFile, "--json"],
      {
        TPOD_HOME: join(work, "home"),
      },
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as { providers: { address: string; name: string }[] };
    expect(body.providers).toEqual([
      expect.objectContaining({ address: chain.accounts[1]!.address, name: "wrapper-check" }),
    ]);
  }, 60_000);
});
