import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type ProviderInput, Resource, registerProvider } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { writeDevnetState } from "@trustedpods/publisher/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestProvider, type TestProvider } from "../../publisher/test/test-provider.js";
import { run } from "../src/main.js";

const HELLO = resolve(import.meta.dirname, "../../../examples/hello/pod.yaml");
const home = mkdtempSync(join(tmpdir(), "tpod-providers-cli-"));
const savedHome = process.env.TPOD_HOME;
let chain: DevChain;
let testProvider: TestProvider;
let contractsFile: string;

function input(over: Partial<ProviderInput>): ProviderInput {
  return {
    name: "p",
    regions: ["eu-west"],
    multiaddrs: [],
    metadataCid: "",
    teeTypes: ["insecure-dev"],
    token: chain.contracts.token,
    minNoticeSeconds: 600,
    prices: [
      { resource: Resource.cpu, pricePerUnitSecond: 10_000_000_000n },
      { resource: Resource.memory, pricePerUnitSecond: 1_400_000_000n },
      { resource: Resource.storage, pricePerUnitSecond: 28_000_000_000n },
    ],
    ...over,
  };
}

beforeAll(async () => {
  process.env.TPOD_HOME = home;
  chain = await startDevChain({ accounts: 4 });
  testProvider = await startTestProvider();
  await registerProvider(
    chain.context(1),
    input({ name: "alpha", regions: ["eu-west"], multiaddrs: testProvider.multiaddrs }),
  );
  await registerProvider(
    chain.context(2),
    input({
      name: "beta",
      regions: ["ap-south"],
      multiaddrs: ["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGRUVh2VBZL6WBVuqZHYoGt9UDKHKSVDNEVN8BPKLzChe"],
      prices: [
        { resource: Resource.cpu, pricePerUnitSecond: 5_000_000_000n },
        { resource: Resource.memory, pricePerUnitSecond: 1_000_000_000n },
        { resource: Resource.storage, pricePerUnitSecond: 30_000_000_000n },
      ],
    }),
  );
  await writeDevnetState(home, {
    version: 1,
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    contracts: chain.contracts,
    publisherKey: chain.accounts[0]!.privateKey,
    pid: process.pid,
  });
  contractsFile = join(home, "contracts.json");
  writeFileSync(contractsFile, JSON.stringify(chain.contracts));
}, 120_000);

afterAll(async () => {
  await testProvider?.stop();
  await chain?.stop();
  if (savedHome === undefined) delete process.env.TPOD_HOME;
  else process.env.TPOD_HOME = savedHome;
  rmSync(home, { recursive: true, force: true });
});

async function tpod(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const line = (t: string) => (t.endsWith("\n") ? t : `${t}\n`);
  const code = await run(args, { out: (t) => out.push(line(t)), err: (t) => err.push(line(t)) });
  return { code, out: out.join(""), err: err.join("") };
}

describe("tpod providers on a running devnet (found without flags)", () => {
  it("--for examples/hello/pod.yaml --json prices the pod on each provider and names the cheapest", async () => {
    const r = await tpod(["providers", "--for", HELLO, "--json"]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out);
    expect(body.network).toMatchObject({ name: "devnet", chainId: chain.chainId });
    expect(body.providers.map((p: { name: string }) => p.name)).toEqual(["beta", "alpha"]);
    const beta = body.providers[0];
    const perSecond = 100n * 5_000_000_000n + 32n * 1_000_000_000n + 30_000_000_000n;
    expect(beta.price.perSecond).toBe(perSecond.toString());
    expect(beta.price.perHour).toBe((perSecond * 3600n).toString());
    expect(beta.price.perHourFormatted).toMatch(/^[\d.]+ \S+$/);
    expect(beta.token.decimals).toBe(18);
    expect(beta.prices.cpu).toBe("5000000000");
    expect(body.cheapest).toBe(chain.accounts[2]!.address);
    expect(body.providers[1].multiaddrs).toEqual(testProvider.multiaddrs);
  });

  it("filters by region and price limit; the table marks the cheapest", async () => {
    const eu = await tpod(["providers", "--for", HELLO, "--region", "eu-west", "--json"]);
    expect(JSON.parse(eu.out).providers.map((p: { name: string }) => p.name)).toEqual(["alpha"]);
    const capped = await tpod(["providers", "--for", HELLO, "--max-price", "0.000001", "--json"]);
    const body = JSON.parse(capped.out);
    expect(body.cheapest).toBeNull();
    expect(body.providers.every((p: { fits: boolean }) => !p.fits)).toBe(true);
    const table = await tpod(["providers", "--for", HELLO]);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(new RegExp(`^\\*\\s+${chain.accounts[2]!.address}\\s+beta\\s+ap-south`, "m"));
    expect(table.out).toMatch(/PRICE\/HOUR/);
  });

  it("usage errors exit 2", async () => {
    expect((await tpod(["providers", "--token", "nope"])).code).toBe(2);
    expect((await tpod(["providers", "--max-price", "1"])).code).toBe(2);
  });
});

describe("tpod verify", () => {
  it("accepts the insecure-dev test provider by its Registry address on the devnet (exit 0)", async () => {
    const r = await tpod(["verify", chain.accounts[1]!.address, "--json"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out);
    expect(body).toMatchObject({
      accepted: true,
      provider: chain.accounts[1]!.address,
      peerId: testProvider.peerId,
      tee: "insecure-dev",
      insecure: true,
      policy: "devnet default (allows insecure-dev)",
    });
    expect(body.encryptionPublicKey).toBe(
      `0x${Buffer.from(testProvider.encryptionPublicKey).toString("hex")}`,
    );
  });

  it("refuses it (exit 1) off the devnet, unless --policy allows insecure-dev", async () => {
    const args = ["verify", testProvider.multiaddrs[0]!, "--rpc", chain.rpcUrl, "--contracts", contractsFile];
    const strict = await tpod([...args, "--json"]);
    expect(strict.code).toBe(1);
    expect(JSON.parse(strict.out)).toMatchObject({
      accepted: false,
      code: "ATTESTATION_REFUSED",
      field: "policy.allowInsecureDev",
    });
    expect(strict.err).toMatch(/refused: .*has no TEE/);
    const policy = join(home, "dev-policy.yaml");
    writeFileSync(policy, "allowInsecureDev: true\n");
    const allowed = await tpod([...args, "--policy", policy]);
    expect(allowed.code).toBe(0);
    expect(allowed.out).toMatch(/^accepted .*insecure-dev evidence/);
    expect(allowed.err).toMatch(/warning: INSECURE/);
  });

  it("exit 1 for an unregistered address or an unreachable provider, 2 for a malformed target", async () => {
    const unknown = await tpod(["verify", chain.accounts[3]!.address]);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/not a registered provider/);
    const dead = await tpod(["verify", chain.accounts[2]!.address, "--timeout", "5", "--json"]);
    expect(dead.code).toBe(1);
    expect(JSON.parse(dead.out)).toMatchObject({ accepted: false, code: "PROVIDER_UNREACHABLE" });
    expect((await tpod(["verify", "provider-one"])).code).toBe(2);
    expect((await tpod(["verify", "/not/a/multiaddr"])).code).toBe(2);
    expect((await tpod(["verify", chain.accounts[1]!.address, "--timeout", "-1"])).code).toBe(2);
  });
});

describe("tpod network", () => {
  it("show: the devnet, found without flags, and where each part came from", async () => {
    const r = await tpod(["network", "show", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      name: "devnet",
      isDevnet: true,
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      sources: { rpcUrl: expect.stringMatching(/^devnet /), contracts: expect.stringMatching(/^devnet /) },
      key: { address: chain.accounts[0]!.address, source: "devnet publisher key (a public test key)" },
    });
    const text = await tpod(["network", "show"]);
    expect(text.out).toMatch(/^key\s+0x\w{40}\s+\(from devnet publisher key/m);
  });

  it("add saves a named network that --network then selects", async () => {
    const add = await tpod(["network", "add", "local", "--rpc", chain.rpcUrl, "--contracts", contractsFile]);
    expect(add.code).toBe(0);
    expect(add.out).toMatch(/saved network local to .*networks\/local\.json/);
    const show = await tpod(["network", "show", "--network", "local", "--json"]);
    expect(JSON.parse(show.out)).toMatchObject({
      name: "local",
      isDevnet: false,
      rpcUrl: chain.rpcUrl,
      key: { address: null, problem: expect.stringMatching(/^no key: pass --key/) },
    });
    const listed = await tpod(["providers", "--network", "local", "--json"]);
    expect(JSON.parse(listed.out).providers).toHaveLength(2);
    expect(
      (await tpod(["network", "add", "bad/name", "--rpc", chain.rpcUrl, "--contracts", contractsFile])).code,
    ).toBe(1);
    expect(
      (
        await tpod([
          "network",
          "add",
          "x",
          "--rpc",
          chain.rpcUrl,
          "--contracts",
          contractsFile,
          "--chain-id",
          "-3",
        ])
      ).code,
    ).toBe(2);
  });
});
