// `tpod verify` against the REAL provider daemon (packages/provider, insecure-dev attester, real Podman, Helia and
// anvil): the publisher SDK's check and the daemon's attest handler agree on the binding, end to end.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Resource, registerProvider } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { Daemon, loadConfig } from "@trustedpods/provider";
import { writeDevnetState } from "@trustedpods/publisher/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { providerConfigYaml } from "../../../test-support/provider-world.js";
import { run } from "../src/main.js";

const HAVE_PODMAN = existsSync("/usr/bin/podman");
if (!HAVE_PODMAN) console.warn("SKIP: tpod verify against the daemon needs Podman");

const uid = randomBytes(4).toString("hex");
const savedHome = process.env.TPOD_HOME;
let tmp: string;
let chain: DevChain;
let daemon: Daemon;
let contractsFile: string;

async function tpod(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join(""), err: err.join("") };
}

describe.skipIf(!HAVE_PODMAN)("tpod verify against the real provider daemon", () => {
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "tpod-verify-daemon-"));
    process.env.TPOD_HOME = join(tmp, "home");
    chain = await startDevChain({ accounts: 3 });
    const keyFile = join(tmp, "account.key");
    await writeFile(keyFile, `${chain.accounts[1]!.privateKey}\n`, { mode: 0o600 });
    const cfgFile = join(tmp, "provider.yaml");
    await writeFile(
      cfgFile,
      providerConfigYaml({
        dataDir: join(tmp, "data"),
        chain,
        accountKeyFile: keyFile,
        owner: `v${uid}`,
        ipfsPeers: [],
      }),
    );
    daemon = await Daemon.start(loadConfig(cfgFile), {});
    await registerProvider(chain.context(1), {
      name: "daemon",
      regions: ["local"],
      multiaddrs: daemon.info().multiaddrs,
      metadataCid: "",
      teeTypes: ["insecure-dev"],
      token: chain.contracts.token,
      minNoticeSeconds: 600,
      prices: [{ resource: Resource.cpu, pricePerUnitSecond: 1000n }],
    });
    await writeDevnetState(process.env.TPOD_HOME, {
      version: 1,
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      contracts: chain.contracts,
      pid: process.pid,
    });
    contractsFile = join(tmp, "contracts.json");
    await writeFile(contractsFile, JSON.stringify(chain.contracts));
  }, 180_000);

  afterAll(async () => {
    await daemon?.stop();
    await chain?.stop();
    if (savedHome === undefined) delete process.env.TPOD_HOME;
    else process.env.TPOD_HOME = savedHome;
    await rm(tmp, { recursive: true, force: true });
    await rm(`/dev/shm/tpod-secrets-v${uid}`, { recursive: true, force: true });
  }, 120_000);

  it("accepts the daemon by its Registry address on the devnet, with the daemon's own encryption key", async () => {
    const r = await tpod(["verify", daemon.info().provider, "--json"]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out);
    expect(body).toMatchObject({ accepted: true, peerId: daemon.info().peerId, tee: "insecure-dev" });
    expect(body.encryptionPublicKey).toBe(`0x${daemon.info().encryptionPublicKey}`);
  });

  it("refuses the same daemon off the devnet (strict default policy)", async () => {
    const r = await tpod([
      "verify",
      daemon.info().multiaddrs[0]!,
      "--rpc",
      chain.rpcUrl,
      "--contracts",
      contractsFile,
      "--json",
    ]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ accepted: false, field: "policy.allowInsecureDev" });
  });
});
