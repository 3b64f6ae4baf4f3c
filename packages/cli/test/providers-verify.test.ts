import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  devnetReleaseInput,
  type ProviderInput,
  Resource,
  registerProvider,
  releaseId,
} from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { writeDevnetState } from "@trustedpods/publisher/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestProvider, type TestProvider } from "../../../test-support/attest-provider.js";
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
  // As `tpod devnet up` does: the provider declares the devnet release (insecure-dev) the dev chain published.
  await registerProvider(
    chain.context(1),
    input({
      name: "alpha",
      regions: ["eu-west"],
      multiaddrs: testProvider.multiaddrs,
      release: releaseId(devnetReleaseInput()),
    }),
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
    // Each provider's declared release, by version (its evidence is what verify and deploy check).
    expect(table.out).toMatch(/RELEASE/);
    expect(table.out).toMatch(/alpha\s+eu-west\s+insecure-dev\s+devnet-insecure-dev\s/);
    expect(table.out).toMatch(/beta\s+ap-south\s+insecure-dev\s+none\s/);
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
      policy: "devnet default (allows insecure-dev; a published, non-revoked release required)",
      release: { version: "devnet-insecure-dev", id: releaseId(devnetReleaseInput()), required: true },
    });
    expect(body.verified.join("\n")).toMatch(
      /hardware: NONE.*\n.*release: devnet-insecure-dev.*\n.*image: sha256/,
    );
    const text = await tpod(["verify", chain.accounts[1]!.address]);
    expect(text.out).toMatch(/^accepted .*insecure-dev evidence, release devnet-insecure-dev/);
    expect(text.out).toMatch(
      /^ {2}binding: the evidence's report data commits to this session's fresh nonce/m,
    );
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
    expect(allowed.out).toMatch(/^accepted .*insecure-dev evidence, release devnet-insecure-dev/);
    expect(allowed.err).toMatch(/warning: INSECURE/);
  });

  it("a policy file narrows by default (a release is still required) and widens only with releases: any", async () => {
    const noReleases = join(home, "contracts-no-releases.json");
    const { releases: _, ...rest } = chain.contracts;
    writeFileSync(noReleases, JSON.stringify(rest));
    const policy = join(home, "dev-policy.yaml");
    writeFileSync(policy, "allowInsecureDev: true\n");
    const args = ["verify", testProvider.multiaddrs[0]!, "--rpc", chain.rpcUrl, "--contracts", noReleases];
    const narrowed = await tpod([...args, "--policy", policy, "--json"]);
    expect(narrowed.code).toBe(1);
    expect(JSON.parse(narrowed.out)).toMatchObject({
      code: "ATTESTATION_REFUSED",
      field: "release.registry",
    });
    const wide = join(home, "wide-policy.yaml");
    writeFileSync(wide, "allowInsecureDev: true\nreleases: any\n");
    const widened = await tpod([...args, "--policy", wide, "--json"]);
    expect(widened.code).toBe(0);
    expect(JSON.parse(widened.out)).toMatchObject({ accepted: true, release: null });
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

describe("tpod release (the devnet's release signer is its publisher key here)", () => {
  const file = join(home, "release.json");
  const measurement = "5f3a".repeat(24);

  it("publish: a signer publishes a release file; list shows it with its measurements", async () => {
    writeFileSync(
      file,
      JSON.stringify({
        version: "1.0.0-test",
        imageDigest: `sha256:${"ab".repeat(32)}`,
        source: "git+https://example.org/image@abc",
        measurements: [{ tee: "snp", config: "milan 4 vCPU", measurement }],
      }),
    );
    const r = await tpod(["release", "publish", file, "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      version: "1.0.0-test",
      published: true,
      approvals: 1,
      threshold: 1,
    });
    const again = await tpod(["release", "publish", file]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/ReleaseExists: release 0x\w+ is already published/);
    const list = await tpod(["release", "list"]);
    expect(list.out).toMatch(/1 of 1 signers publish, any one revokes/);
    expect(list.out).toMatch(/^published 1\.0\.0-test {2}0x[0-9a-f]{64}$/m);
    expect(list.out).toMatch(new RegExp(`snp +${measurement.slice(0, 24)}… {2}milan 4 vCPU`));
  });

  it("publish refuses a malformed file (exit 2) and a non-signer's key on chain (exit 1)", async () => {
    const bad = join(home, "bad-release.json");
    writeFileSync(
      bad,
      JSON.stringify({ version: "x", imageDigest: "00", measurements: [{ tee: "insecure-dev" }] }),
    );
    const r = await tpod(["release", "publish", bad]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/imageDigest must be 32 bytes of hex/);
    const keyFile = join(home, "outsider.key");
    writeFileSync(keyFile, `${chain.accounts[3]!.privateKey}\n`, { mode: 0o600 });
    writeFileSync(
      file,
      JSON.stringify({
        version: "2",
        imageDigest: "cd".repeat(32),
        measurements: [{ tee: "snp", measurement: "77".repeat(48) }],
      }),
    );
    const outsider = await tpod(["release", "publish", file, "--key", keyFile]);
    expect(outsider.code).toBe(1);
    expect(outsider.err).toMatch(/NotSigner: 0x\w+ is not a release signer/);
  });

  it("revoke: tpod verify then refuses the provider, saying its release was revoked", async () => {
    const id = releaseId(devnetReleaseInput());
    expect((await tpod(["release", "revoke", id])).code).toBe(2); // --reason is required
    const r = await tpod(["release", "revoke", id, "--reason", "test: devnet release withdrawn"]);
    expect(r.code).toBe(0);
    const v = await tpod(["verify", chain.accounts[1]!.address, "--json"]);
    expect(v.code).toBe(1);
    expect(JSON.parse(v.out)).toMatchObject({
      accepted: false,
      code: "ATTESTATION_REFUSED",
      field: "release.revoked",
    });
    expect(v.err).toMatch(
      /is release devnet-insecure-dev .*which was revoked at .*: test: devnet release withdrawn/,
    );
    const list = await tpod(["release", "list", "--json"]);
    expect(JSON.parse(list.out).list[0]).toMatchObject({
      status: "revoked",
      revokeReason: "test: devnet release withdrawn",
    });
  });
});
