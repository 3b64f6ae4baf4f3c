// The billing loop's batched claims on the real dev chain (anvil): due channels go out together in one claimBatch
// transaction, each claimed exactly to its cap; with a token price configured, claims that would not pay for their
// gas wait, and go out once they do. The lifecycle records calls only: no pod is stopped in these scenarios.
import { DatabaseSync } from "node:sqlite";
import { getChannel, paymentsAbi, withdraw } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { decodeFunctionData, type Hex, parseEventLogs } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, type BillingConfig, type PodLifecycle } from "../src/index.js";
import {
  chainNow,
  channelRef,
  increaseTime,
  memoryLogger,
  openFor,
  type Parties,
  parties,
  tokenBalance,
} from "./billing-helpers.js";

let chain: DevChain;
let p: Parties;

class RecordingLifecycle implements PodLifecycle {
  readonly calls: string[] = [];
  async stop(id: string) {
    this.calls.push(`stop ${id}`);
  }
  async start(id: string) {
    this.calls.push(`start ${id}`);
  }
  async remove(id: string) {
    this.calls.push(`remove ${id}`);
  }
}

beforeAll(async () => {
  chain = await startDevChain();
  p = await parties(chain);
}, 120_000);
afterAll(async () => {
  await chain?.stop();
});

function makeBilling(db: DatabaseSync, config: Partial<BillingConfig>) {
  const lifecycle = new RecordingLifecycle();
  const log = memoryLogger();
  const billing = new Billing({
    db,
    chain: p.provider,
    chainId: BigInt(chain.chainId),
    lifecycle,
    token: p.token,
    logger: log.logger,
    config: { confirmations: 0, minRunSeconds: 100n, minNoticeSeconds: 600n, ...config },
  });
  return { billing, lifecycle, log };
}

async function provisionMany(billing: Billing, n: number) {
  const channels: Awaited<ReturnType<typeof openFor>>[] = [];
  for (let i = 0; i < n; i++) {
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
  return channels;
}

async function claimedEvents(fromBlock: bigint, ids: Hex[]) {
  const logs = await chain.publicClient.getLogs({ address: chain.contracts.payments, fromBlock });
  const wanted = new Set(ids.map((x) => x.toLowerCase()));
  return parseEventLogs({ abi: paymentsAbi, logs, eventName: "Claimed" }).filter((e) =>
    wanted.has(e.args.channelId.toLowerCase()),
  );
}

const keyOf = (podId: Hex) => ({ publisher: p.publisherAddr, provider: p.providerAddr, podId });

describe("billing loop: batched claims", () => {
  it("claims every due channel in one claimBatch transaction, each exactly to its cap at the head it read", async () => {
    await withdraw(p.provider, p.token).catch(() => {});
    const { billing } = makeBilling(new DatabaseSync(":memory:"), { maxClaimBatch: 10 });
    const channels = await provisionMany(billing, 5);
    const from = (await chain.publicClient.getBlockNumber()) + 1n;
    await increaseTime(chain, 500);
    const t1 = await chainNow(chain);
    const result = await billing.tick();
    expect(result).toMatchObject({ ok: true, pods: 5 });
    const events = await claimedEvents(
      from,
      channels.map((c) => c.channelId),
    );
    expect(events).toHaveLength(5);
    expect(new Set(events.map((e) => e.transactionHash)).size).toBe(1);
    const tx = await chain.publicClient.getTransaction({ hash: events[0]!.transactionHash });
    expect(decodeFunctionData({ abi: paymentsAbi, data: tx.input }).functionName).toBe("claimBatch");
    let total = 0n;
    for (const ch of channels) {
      const claimed = (await getChannel(p.provider, keyOf(ch.podId))).claimed;
      expect(claimed).toBe(ch.quotedRate * (t1 - ch.openedAt));
      total += claimed;
      const claims = billing.store.claims(ch.podId.toLowerCase());
      expect(claims.map((c) => c.status)).toEqual(["confirmed"]);
      expect(claims[0]!.txHash).toBe(events[0]!.transactionHash);
    }
    const before = await tokenBalance(chain, p.token, p.providerAddr);
    await withdraw(p.provider, p.token);
    expect((await tokenBalance(chain, p.token, p.providerAddr)) - before).toBe(total);

    // maxClaimBatch splits: 5 due channels with a batch size of 2 go out as 3 transactions (2, 2, 1).
    const split = makeBilling(new DatabaseSync(":memory:"), { maxClaimBatch: 2 });
    const more = await provisionMany(split.billing, 5);
    const from2 = (await chain.publicClient.getBlockNumber()) + 1n;
    await increaseTime(chain, 100);
    expect((await split.billing.tick()).ok).toBe(true);
    const ev2 = await claimedEvents(
      from2,
      more.map((c) => c.channelId),
    );
    expect(ev2).toHaveLength(5);
    const perTx = new Map<string, number>();
    for (const e of ev2) perTx.set(e.transactionHash, (perTx.get(e.transactionHash) ?? 0) + 1);
    expect([...perTx.values()].sort()).toEqual([1, 2, 2]);
  }, 120_000);

  it("waits while the claims would cost more gas than they collect, then claims them together once they pay", async () => {
    const db = new DatabaseSync(":memory:");
    // A token so cheap that 10^24 base units buy one ether: 359 units/s pay ~13,500 gas only after ages (even at
    // the few-wei gas price an idle anvil drifts to).
    const dear = makeBilling(db, { tokenUnitsPerEther: 10n ** 24n, minClaimReturn: 2n });
    const channels = await provisionMany(dear.billing, 3);
    const from = (await chain.publicClient.getBlockNumber()) + 1n;
    await increaseTime(chain, 1000);
    expect((await dear.billing.tick()).ok).toBe(true);
    const ids = channels.map((c) => c.channelId);
    expect(await claimedEvents(from, ids)).toHaveLength(0);
    for (const ch of channels) expect((await getChannel(p.provider, keyOf(ch.podId))).claimed).toBe(0n);
    const deferred = dear.log.lines.find((l) => l.msg.startsWith("billing: claims deferred"));
    expect(deferred?.obj).toMatchObject({ deferred: 3 });
    const cadence = (deferred!.obj as { worthClaimingInSeconds: string }).worthClaimingInSeconds;
    expect(BigInt(cadence)).toBeGreaterThan(10n ** 6n);

    // The operator prices the token higher (1 ether = 10^8 base units): the same channels now pay, in one batch.
    await dear.billing.stop();
    const cheap = makeBilling(db, { tokenUnitsPerEther: 10n ** 8n, minClaimReturn: 2n });
    await increaseTime(chain, 10);
    const t1 = await chainNow(chain);
    expect((await cheap.billing.tick()).ok).toBe(true);
    const events = await claimedEvents(from, ids);
    expect(events).toHaveLength(3);
    expect(new Set(events.map((e) => e.transactionHash)).size).toBe(1);
    for (const ch of channels)
      expect((await getChannel(p.provider, keyOf(ch.podId))).claimed).toBe(
        ch.quotedRate * (t1 - ch.openedAt),
      );
    // And the gas the batch used cost less than what it collected, at the configured price.
    const receipt = await chain.publicClient.getTransactionReceipt({ hash: events[0]!.transactionHash });
    const collected = events.reduce((s, e) => s + e.args.amount, 0n);
    const gasInToken = (receipt.gasUsed * receipt.effectiveGasPrice * 10n ** 8n) / 10n ** 18n;
    expect(gasInToken).toBeLessThan(collected);
  }, 120_000);
});
