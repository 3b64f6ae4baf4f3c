// Where gas is not priced (no billing.tokenUnitsPerEther, e.g. the devnet), the daemon must not claim a channel on
// every tick: every provision wakes a tick, and a bench at 50 pods sent 1,185 channel claims in 11 minutes. A
// minimum claim interval (chain seconds of accrual a claim must cover) bounds it; final claims are not held back.
// Real anvil chain; the lifecycle records calls only.
import { DatabaseSync } from "node:sqlite";
import { getChannel } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { Billing, type BillingConfig } from "../src/index.js";
import { channelRef, increaseTime, openFor, type Parties, parties } from "./billing-helpers.js";

let chain: DevChain;
let p: Parties;

beforeAll(async () => {
  chain = await startDevChain();
  p = await parties(chain);
}, 120_000);
afterAll(async () => {
  await chain?.stop();
});

function makeBilling(config: Partial<BillingConfig>) {
  return new Billing({
    db: new DatabaseSync(":memory:"),
    chain: p.provider,
    chainId: BigInt(chain.chainId),
    lifecycle: { stop: async () => {}, start: async () => {}, remove: async () => {} },
    token: p.token,
    config: { confirmations: 0, minRunSeconds: 100n, minNoticeSeconds: 600n, ...config },
  });
}

async function provision(billing: Billing) {
  const ch = await openFor(p, { notice: 600 });
  await billing.gate.checkProvision({
    publisher: p.publisherAddr,
    podId: ch.podId,
    pod: ch.pod,
    quotedRatePerSecond: ch.quotedRate,
    channel: channelRef(chain),
  });
  await billing.gate.onProvisioned(ch.podId.toLowerCase());
  return ch;
}

const claimedOf = async (podId: `0x${string}`) =>
  (await getChannel(p.provider, { publisher: p.publisherAddr, provider: p.providerAddr, podId })).claimed;

describe("billing: minimum claim interval where gas is not priced", () => {
  it("claims a channel at most once per interval of accrual however often the loop ticks", async () => {
    const billing = makeBilling({ minClaimIntervalSeconds: 300n });
    const ch = await provision(billing);
    // Ten ticks (what ten provisions' wakes do) over 200 s of chain time: nothing is claimed.
    for (let i = 0; i < 10; i++) {
      await increaseTime(chain, 20);
      expect((await billing.tick()).ok).toBe(true);
    }
    expect(billing.store.claims(ch.podId.toLowerCase())).toHaveLength(0);
    expect(await claimedOf(ch.podId)).toBe(0n);
    // Past the interval: one claim, of everything accrued.
    await increaseTime(chain, 150);
    await billing.tick();
    const first = await claimedOf(ch.podId);
    expect(first).toBeGreaterThanOrEqual(ch.quotedRate * 300n);
    // Right after: more ticks, no new claim until another interval accrued.
    for (let i = 0; i < 5; i++) {
      await increaseTime(chain, 20);
      await billing.tick();
    }
    expect(billing.store.claims(ch.podId.toLowerCase())).toHaveLength(1);
    expect(await claimedOf(ch.podId)).toBe(first);
    await increaseTime(chain, 250);
    await billing.tick();
    expect(billing.store.claims(ch.podId.toLowerCase())).toHaveLength(2);
    expect(await claimedOf(ch.podId)).toBeGreaterThan(first);
  }, 180_000);

  it("does not hold back the final claim of a pod that stopped", async () => {
    const billing = makeBilling({ minClaimIntervalSeconds: 3600n });
    const ch = await provision(billing);
    await increaseTime(chain, 30);
    await billing.tick();
    expect(await claimedOf(ch.podId)).toBe(0n);
    // The publisher deletes the pod: the provider closes the channel and claims what accrued, at once.
    await billing.gate.onDeleted(ch.podId.toLowerCase());
    await billing.tick();
    expect(await claimedOf(ch.podId)).toBeGreaterThan(0n);
  }, 180_000);

  it("the daemon config reads billing.minClaimIntervalSeconds and refuses a negative one", async () => {
    const { mkdtemp, writeFile, rm } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = await mkdtemp(join(tmpdir(), "tpod-claim-interval-"));
    try {
      const yaml = (v: string) => `chain:
  rpcUrl: http://127.0.0.1:1
  payments: "0x0000000000000000000000000000000000000001"
pricing:
  token: "0x0000000000000000000000000000000000000002"
  symbol: TPT
  decimals: 18
  prices: {cpu: 1}
billing:
  minClaimIntervalSeconds: ${v}
`;
      await writeFile(join(dir, "ok.yaml"), yaml("300"));
      expect(loadConfig(join(dir, "ok.yaml")).billing.minClaimIntervalSeconds).toBe(300);
      await writeFile(join(dir, "bad.yaml"), yaml("-5"));
      expect(() => loadConfig(join(dir, "bad.yaml"))).toThrow(/minClaimIntervalSeconds/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
