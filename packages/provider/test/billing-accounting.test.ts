// The money math against the real contract (anvil), and the SQLite store's durability rules.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import {
  changeRate,
  getChannel,
  paymentsAbi,
  paymentsEvents,
  requestClose,
  royaltiesHash,
  signQuoteFor,
  specHash,
  topUp,
} from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { parseEventLogs } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  accruedAt,
  afterTopUp,
  Billing,
  BillingStore,
  claimableAt,
  type PodLifecycle,
  remainingSeconds,
  restartsOnTopUp,
  runOutTime,
} from "../src/index.js";
import {
  accountOf,
  chainNow,
  channelRef,
  increaseTime,
  openFor,
  type Parties,
  parties,
  setNextTimestamp,
} from "./billing-helpers.js";

let chain: DevChain;
let p: Parties;

beforeAll(async () => {
  chain = await startDevChain();
  p = await parties(chain);
});
afterAll(async () => {
  await chain?.stop();
});

describe("accrual math", () => {
  it("matches the contract's accrued() and claimable() through a rate change and a close, block by block", async () => {
    const ch = await openFor(p, { deposit: 359n * 5000n, notice: 900 });
    const key = { publisher: p.publisherAddr, provider: p.providerAddr, podId: ch.podId };
    const compare = async () => {
      const block = await chain.publicClient.getBlock();
      const state = await getChannel(p.provider, key);
      const [acc, cl] = await Promise.all(
        (["accrued", "claimable"] as const).map((fn) =>
          chain.publicClient.readContract({
            address: chain.contracts.payments,
            abi: paymentsAbi,
            functionName: fn,
            args: [key.publisher, key.provider, key.podId],
            blockNumber: block.number,
          }),
        ),
      );
      expect(accruedAt(state, block.timestamp)).toBe(acc);
      expect(claimableAt(state, block.timestamp)).toBe(cl);
      return state;
    };
    await compare();
    await increaseTime(chain, 1234);
    await compare();
    // A new quote at another rate: what accrued at the old one stays owed (accruedBefore).
    const quote = {
      provider: p.providerAddr,
      publisher: p.publisherAddr,
      podId: ch.podId,
      token: p.token,
      ratePerSecond: 1000n,
      minNoticeSeconds: 0,
      expiry: (await chainNow(chain)) + 3600n,
      specHash: specHash({ cpu: 100n, memory: 64n, storage: 0n, gpu: 0n }),
      royaltiesHash: royaltiesHash([]),
    };
    await changeRate(
      p.publisher,
      quote,
      await signQuoteFor(p.provider, accountOf(chain, 1), quote),
      ch.podId,
    );
    const changed = await compare();
    expect(changed.accruedBefore).toBeGreaterThan(0n);
    await increaseTime(chain, 500);
    await compare();
    // Runs out: 359 * 5000 deposit, after that the cap is the deposit.
    const out = runOutTime(changed)!;
    expect(accruedAt(changed, out)).toBeGreaterThanOrEqual(changed.deposit);
    expect(accruedAt(changed, out - 1n)).toBeLessThan(changed.deposit);
    await requestClose(p.publisher, p.providerAddr, ch.podId);
    const closing = await compare();
    expect(remainingSeconds(closing, await chainNow(chain))).toBeLessThanOrEqual(900n);
    await increaseTime(chain, 2000);
    const closed = await compare();
    // Accrual stopped at the close time (or at the deposit, whichever came first).
    expect(accruedAt(closed, closed.closeAt + 10_000n)).toBe(accruedAt(closed, closed.closeAt));
    expect(remainingSeconds(closed, await chainNow(chain))).toBe(0n);
  });
});

describe("accrual restart on a top-up after a run-out", () => {
  it("predicts the contract's channel after each top-up, and the claim cap second by second after it", async () => {
    const rate = 359n;
    // Notice 10 s: a top-up that restarts accrual must pay at least rate x 10 (TopUpTooSmall otherwise).
    const ch = await openFor(p, { deposit: rate * 100n + 200n, notice: 10 });
    const key = { publisher: p.publisherAddr, provider: p.providerAddr, podId: ch.podId };
    const claimableOnChain = (blockNumber: bigint) =>
      chain.publicClient.readContract({
        address: chain.contracts.payments,
        abi: paymentsAbi,
        functionName: "claimable",
        args: [key.publisher, key.provider, key.podId],
        blockNumber,
      });
    const topUpAt = async (t: bigint, amount: bigint) => {
      const before = await getChannel(p.provider, key);
      const predicted = afterTopUp(before, t, amount);
      await setNextTimestamp(chain, t);
      const sent = await topUp(p.publisher, p.providerAddr, ch.podId, amount, false);
      const after = await getChannel(p.provider, key);
      expect(after).toEqual(predicted);
      const restarted = paymentsEvents(p.publisher, sent.receipt).some(
        (e) => e.eventName === "AccrualRestarted",
      );
      expect(restarted).toBe(amount !== 0n && restartsOnTopUp(before, t));
      return { after, restarted };
    };
    // Before the run-out (rate x 100 + 200 lasts into the 101st second): nothing changes but the deposit.
    const early = await topUpAt(ch.openedAt + 50n, 0n);
    expect(early.restarted).toBe(false);
    const first = await topUpAt(ch.openedAt + 60n, 1n);
    expect(first.after.since).toBe(ch.openedAt);
    // The deposit (rate x 100 + 201) runs out during second 101, partly paid; the pod stands stopped till 700.
    expect(runOutTime(first.after)).toBe(ch.openedAt + 101n);
    const restart = await topUpAt(ch.openedAt + 700n, rate * 50n);
    expect(restart.restarted).toBe(true);
    expect(restart.after).toMatchObject({ accruedBefore: rate * 100n + 201n, since: ch.openedAt + 700n });
    expect(runOutTime(restart.after)).toBe(ch.openedAt + 750n);
    // Second by second after the restart, the mirror's claim cap equals the contract's claimable().
    for (const dt of [0n, 1n, 25n, 49n, 50n, 51n, 400n]) {
      await setNextTimestamp(chain, ch.openedAt + 700n + dt + 1n);
      await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
      const block = await chain.publicClient.getBlock();
      expect(claimableAt(restart.after, block.timestamp)).toBe(await claimableOnChain(block.number));
    }
    // A zero top-up after the second run-out changes nothing; a real one restarts again.
    await topUpAt(ch.openedAt + 2000n, 0n);
    const again = await topUpAt(ch.openedAt + 2100n, rate * 10n);
    expect(again.after).toMatchObject({ accruedBefore: rate * 150n + 201n, since: ch.openedAt + 2100n });
  });
});

describe("claims of many channels", () => {
  it("are sent together and confirmed together: one tick, one block (the contract has no batch claim)", async () => {
    // Pods that keep running: billing must not touch them.
    const untouched: PodLifecycle = {
      stop: async (id) => expect.fail(`stop ${id}`),
      start: async (id) => expect.fail(`start ${id}`),
      remove: async (id) => expect.fail(`remove ${id}`),
    };
    const billing = new Billing({
      db: new DatabaseSync(":memory:"),
      chain: p.provider,
      chainId: BigInt(chain.chainId),
      lifecycle: untouched,
      config: { confirmations: 0, minRunSeconds: 100n, minNoticeSeconds: 0n },
    });
    const channels: Awaited<ReturnType<typeof openFor>>[] = [];
    for (let i = 0; i < 3; i++) {
      const ch = await openFor(p, { notice: 600 });
      await billing.gate.checkProvision({
        publisher: p.publisherAddr,
        podId: ch.podId,
        pod: ch.pod,
        quotedRatePerSecond: ch.quotedRate,
        channel: channelRef(chain),
      });
      await billing.gate.onProvisioned(ch.podId.toLowerCase());
      channels.push(ch);
    }
    await increaseTime(chain, 100);
    const request = (method: string, params: unknown[] = []) =>
      chain.publicClient.request({ method: method as never, params: params as never });
    await request("evm_setAutomine", [false]);
    try {
      const tick = billing.tick();
      // All three claims reach the mempool before any is mined.
      for (let i = 0; i < 200; i++) {
        const pending = (await request("eth_getBlockByNumber", ["pending", false])) as {
          transactions: unknown[];
        };
        if (pending.transactions.length >= 3) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await request("evm_mine");
      expect((await tick).ok).toBe(true);
    } finally {
      await request("evm_setAutomine", [true]);
    }
    const logs = await chain.publicClient.getLogs({ address: chain.contracts.payments, fromBlock: 0n });
    const claimed = parseEventLogs({ abi: paymentsAbi, logs, eventName: "Claimed" }).filter((e) =>
      channels.some((c) => c.channelId.toLowerCase() === e.args.channelId.toLowerCase()),
    );
    expect(claimed).toHaveLength(3);
    expect(new Set(claimed.map((e) => e.blockNumber)).size).toBe(1);
    for (const c of channels)
      expect(billing.store.claims(c.podId.toLowerCase()).map((x) => x.status)).toEqual(["confirmed"]);
  });
});

describe("BillingStore", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "tpod-billing-store-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const pod = (key: string) => ({
    podKey: key,
    podId: `0x${"11".repeat(32)}` as const,
    publisher: `0x${"22".repeat(20)}` as const,
    provider: `0x${"33".repeat(20)}` as const,
    channelId: `0x${"44".repeat(32)}` as const,
    token: `0x${"55".repeat(20)}` as const,
    ratePerSecond: 2n ** 90n,
    requiredRate: 2n ** 90n,
    reserved: { cpuMillis: 100n, memoryMiB: 128n, storageGiB: 1n, gpu: 0n },
    observed: null,
  });

  it("migrates once, keeps bigints exact across reopen, and refuses a newer schema", () => {
    const file = path.join(dir, "a.sqlite");
    const db = new DatabaseSync(file);
    const s = new BillingStore(db);
    new BillingStore(db); // idempotent
    s.putChecked(pod("k1"));
    s.updatePod("k1", { state: "running", stoppedAt: 2n ** 70n });
    db.close();
    const db2 = new DatabaseSync(file);
    const s2 = new BillingStore(db2);
    const rec = s2.getPod("k1")!;
    expect(rec.ratePerSecond).toBe(2n ** 90n);
    expect(rec.stoppedAt).toBe(2n ** 70n);
    expect(rec.state).toBe("running");
    expect(() => s2.putChecked(pod("k1"))).toThrow(/already billed/);
    const names = (
      db2.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
        name: string;
      }[]
    ).map((r) => r.name);
    // Billing's tables are the state database's: versioned in its schema_migrations, no table of their own.
    expect(names).toContain("billing_pods");
    expect(names).not.toContain("billing_meta");
    db2
      .prepare("INSERT INTO schema_migrations (module, version, applied_at) VALUES ('billing', 99, 0)")
      .run();
    expect(() => new BillingStore(db2)).toThrow(/newer than this daemon/);
    db2.close();
  });

  it("folds usage samples into totals across counter resets and prunes old samples", () => {
    const s = new BillingStore(new DatabaseSync(":memory:"));
    s.putChecked(pod("u"));
    const sample = (t: number, cpu: number, rx: number, mem: number) =>
      s.addUsageSample(
        "u",
        { timeMs: t, cpuSeconds: cpu, memoryBytes: mem, rxBytes: rx, txBytes: rx / 2 },
        3,
      );
    sample(1, 1.5, 100, 10);
    sample(2, 2.5, 300, 30);
    // The container was recreated: counters start again from zero.
    sample(3, 0.5, 50, 20);
    sample(4, 1.0, 80, 5);
    const t = s.usageTotals("u");
    expect(t.cpuSeconds).toBeCloseTo(1.5 + 1.0 + 0.5 + 0.5, 9);
    expect(t.rxBytes).toBe(100 + 200 + 50 + 30);
    expect(t.memoryMaxBytes).toBe(30);
    expect(t.memoryBytes).toBe(5);
    expect(t.samples).toBe(4);
    expect(s.usageSamples("u").map((x) => x.timeMs)).toEqual([2, 3, 4]);
    // A stop forgets the baseline: the next run's counters count in full.
    s.resetUsageBaseline("u");
    sample(5, 0.25, 10, 5);
    expect(s.usageTotals("u").cpuSeconds).toBeCloseTo(3.75, 9);
  });

  it("keeps reservation intervals in chain time, never ending before they start", () => {
    const s = new BillingStore(new DatabaseSync(":memory:"));
    s.putChecked(pod("r"));
    s.openReservation("r", 100n);
    s.openReservation("r", 150n); // already open: ignored
    s.closeReservation("r", 160n);
    s.openReservation("r", null); // chain unreachable at provision time
    s.fillReservationStart("r", 200n);
    s.closeReservation("r", 190n); // detected late with an earlier time: zero length, not negative
    expect(s.reservations("r")).toEqual([
      { start: 100n, end: 160n },
      { start: 200n, end: 200n },
    ]);
  });
});
