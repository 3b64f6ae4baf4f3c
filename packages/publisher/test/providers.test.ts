import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type ProviderInput, Resource, registerProvider } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { loadManifest } from "@trustedpods/protocol/node";
import { getAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cheapestOffer,
  connectNetwork,
  type DevnetState,
  listOffers,
  PublisherError,
  perHour,
  priceOffers,
  tokenInfo,
} from "../src/index.js";
import { resolveNetwork, writeDevnetState } from "../src/node/index.js";

const HELLO = resolve(import.meta.dirname, "../../../examples/hello/pod.yaml");
const OTHER_TOKEN = "0x00000000000000000000000000000000000000aa";

let chain: DevChain;
const tmp = mkdtempSync(join(tmpdir(), "tpod-providers-"));

function input(over: Partial<ProviderInput>): ProviderInput {
  return {
    name: "p",
    regions: ["eu-west"],
    multiaddrs: ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRUVh2VBZL6WBVuqZHYoGt9UDKHKSVDNEVN8BPKLzChe"],
    metadataCid: "",
    teeTypes: ["sev-snp"],
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
  chain = await startDevChain({ accounts: 6 });
  // Two providers with different prices and regions, one that does not price storage (the pod needs it), and one
  // in another token.
  await registerProvider(chain.context(1), input({ name: "alpha", regions: ["eu-west", "us-east"] }));
  await registerProvider(
    chain.context(2),
    input({
      name: "beta",
      regions: ["ap-south"],
      teeTypes: ["tdx", "insecure-dev"],
      prices: [
        { resource: Resource.cpu, pricePerUnitSecond: 5_000_000_000n },
        { resource: Resource.memory, pricePerUnitSecond: 1_000_000_000n },
        { resource: Resource.storage, pricePerUnitSecond: 30_000_000_000n },
      ],
    }),
  );
  await registerProvider(
    chain.context(3),
    input({
      name: "gamma",
      regions: ["eu-west"],
      prices: [{ resource: Resource.cpu, pricePerUnitSecond: 1n }],
    }),
  );
  await registerProvider(
    chain.context(4),
    input({ name: "delta", regions: ["us-east"], token: OTHER_TOKEN }),
  );
}, 120_000);

afterAll(async () => {
  await chain?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function devnetContext() {
  const home = join(tmp, "home");
  const state: DevnetState = {
    version: 1,
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    contracts: chain.contracts,
    pid: process.pid,
  };
  await writeDevnetState(home, state);
  const network = await resolveNetwork({ home, env: {} });
  return connectNetwork(network);
}

describe("providers from a real Registry on anvil", () => {
  it("lists every provider with its pricing table, regions, TEE types and multiaddrs", async () => {
    const { context, chainId } = await devnetContext();
    expect(chainId).toBe(chain.chainId);
    const offers = await listOffers(context);
    expect(offers.map((o) => o.name).sort()).toEqual(["alpha", "beta", "delta", "gamma"]);
    const beta = offers.find((o) => o.name === "beta")!;
    expect(beta).toMatchObject({
      address: chain.accounts[2]!.address,
      regions: ["ap-south"],
      teeTypes: ["tdx", "insecure-dev"],
      minNoticeSeconds: 600,
      pricing: {
        token: getAddress(chain.contracts.token),
        prices: { cpu: 5_000_000_000n, memory: 1_000_000_000n, storage: 30_000_000_000n },
      },
    });
    expect(beta.multiaddrs[0]).toMatch(/\/p2p\/12D3Koo/);
    expect(offers.find((o) => o.name === "gamma")!.pricing.prices).toEqual({ cpu: 1n });
  });

  it("filters by region, TEE type and token on chain", async () => {
    const { context } = await devnetContext();
    const names = async (f: Parameters<typeof listOffers>[1]) =>
      (await listOffers(context, f)).map((o) => o.name).sort();
    expect(await names({ region: "eu-west" })).toEqual(["alpha", "gamma"]);
    expect(await names({ region: "us-east" })).toEqual(["alpha", "delta"]);
    expect(await names({ teeType: "tdx" })).toEqual(["beta"]);
    expect(await names({ token: OTHER_TOKEN })).toEqual(["delta"]);
    expect(await names({ region: "mars" })).toEqual([]);
  });

  it("prices examples/hello on each provider with the provider's billing math and picks the cheapest that fits", async () => {
    const { context, publicClient } = await devnetContext();
    const pod = loadManifest(HELLO);
    const offers = priceOffers(await listOffers(context, { token: chain.contracts.token }), pod);
    // hello: 100 millicores, 32 MiB, 64 MiB of storage (billed as 1 GiB), one replica.
    const alpha = offers.find((o) => o.name === "alpha")!;
    const beta = offers.find((o) => o.name === "beta")!;
    expect(alpha.price!.perSecond).toBe(100n * 10_000_000_000n + 32n * 1_400_000_000n + 28_000_000_000n);
    expect(beta.price!.perSecond).toBe(100n * 5_000_000_000n + 32n * 1_000_000_000n + 30_000_000_000n);
    expect(perHour(beta.price!)).toBe(beta.price!.perSecond * 3600n);
    const gamma = offers.find((o) => o.name === "gamma")!;
    expect(gamma.fits).toBe(false);
    expect(gamma.reason).toMatch(/offers no memory/);
    // Sorted: fitting first, cheapest first.
    expect(offers.map((o) => o.name)).toEqual(["beta", "alpha", "gamma"]);
    expect(cheapestOffer(offers).name).toBe("beta");
    // A price limit between the two makes alpha too expensive; one below both leaves nothing.
    const capped = priceOffers(offers, pod, { maxPerHour: perHour(beta.price!) });
    expect(capped.filter((o) => o.fits).map((o) => o.name)).toEqual(["beta"]);
    const none = priceOffers(offers, pod, { maxPerHour: 1n });
    expect(() => cheapestOffer(none)).toThrow(expect.objectContaining({ code: "NO_PROVIDER_FITS" }));
    const token = await tokenInfo(publicClient, chain.contracts.token);
    expect(token.decimals).toBe(18);
    expect(token.symbol.length).toBeGreaterThan(0);
  });

  it("refuses to compare prices across tokens unless one is chosen", async () => {
    const { context } = await devnetContext();
    const pod = loadManifest(HELLO);
    const all = priceOffers(await listOffers(context, { region: "us-east" }), pod);
    let err: unknown;
    try {
      cheapestOffer(all);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PublisherError);
    expect((err as PublisherError).code).toBe("AMBIGUOUS_TOKEN");
    expect(cheapestOffer(all, OTHER_TOKEN as `0x${string}`).name).toBe("delta");
  });

  it("connectNetwork refuses a wrong chain id and an address without a Registry", async () => {
    const base = await resolveNetwork({
      rpc: chain.rpcUrl,
      contracts: undefined,
      home: join(tmp, "home"),
      env: {},
    });
    await expect(connectNetwork({ ...base, chainId: 1 })).rejects.toThrow(
      /is chain 31337, but .* says chain 1/,
    );
    await expect(
      connectNetwork({
        ...base,
        chainId: undefined,
        contracts: { ...base.contracts, registry: OTHER_TOKEN as `0x${string}` },
      }),
    ).rejects.toThrow(/no contract at the Registry address/);
    await expect(connectNetwork({ ...base, rpcUrl: "http://127.0.0.1:1" })).rejects.toThrow(
      /cannot reach the chain/,
    );
  });
});
