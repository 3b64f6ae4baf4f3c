import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BatchClaim,
  balanceOf,
  claim,
  claimBatch,
  deployContract,
  ensureAllowance,
  getChannel,
  openChannel,
  paymentsEvents,
  refund,
  requestClose,
  skippedClaims,
} from "../src/index.js";
import { type DevChain, startDevChain } from "../src/node.js";
import { noReturnTokenAbi, noReturnTokenBytecode } from "./gen/index.js";
import {
  listingRoyalty,
  makeQuote,
  newPod,
  nowSeconds,
  openDefault,
  type Parties,
  parties,
  setNextTimestamp,
} from "./helpers.js";

let chain: DevChain;
let p: Parties;

beforeAll(async () => {
  chain = await startDevChain();
  p = parties(chain);
  await ensureAllowance(p.publisher, p.token, 2n ** 200n);
});
afterAll(async () => {
  await chain?.stop();
});

const entry = (podId: Hex, cumulative: bigint, waiveSeconds = 0n): BatchClaim => ({
  publisher: p.publisherAddr,
  podId,
  cumulative,
  waiveSeconds,
});
const keyOf = (podId: Hex) => ({ publisher: p.publisherAddr, provider: p.providerAddr, podId });
const claimedOf = async (podId: Hex) => (await getChannel(p.publisher, keyOf(podId))).claimed;
const providerBalance = () => balanceOf(p.publisher, p.providerAddr, p.token);

/** Opens channels at t0, t0 + 1, ... (one per block) and returns their pod ids and t0. */
async function openAt(specs: Parameters<typeof openDefault>[1][]): Promise<{ pods: Hex[]; t0: bigint }> {
  const t0 = (await nowSeconds(chain)) + 5n;
  const pods: Hex[] = [];
  for (const [i, spec] of specs.entries()) {
    await setNextTimestamp(chain, t0 + BigInt(i));
    pods.push((await openDefault(p, spec)).podId);
  }
  return { pods, t0 };
}

describe("claimBatch", () => {
  it("claims every channel in one transaction with each channel's own cap, royalties and events", async () => {
    const dev = chain.accounts[3]!.address;
    const royalty = await listingRoyalty(p, 3, 333);
    const { pods, t0 } = await openAt([
      { deposit: 10_000n, rate: 33n, royalties: [royalty] },
      { deposit: 10_000n, rate: 33n, royalties: [royalty] },
      { deposit: 500n, rate: 10n },
    ]);
    const [a, b, c] = pods as [Hex, Hex, Hex];
    const devBefore = await balanceOf(p.publisher, dev, p.token);
    const provBefore = await providerBalance();
    // At t0 + 101: a accrued 33 x 101 = 3333, b 33 x 100 = 3300, c ran into its deposit (10 x 99 > 500).
    await setNextTimestamp(chain, t0 + 101n);
    const sent = await claimBatch(p.provider, [entry(a, 3333n), entry(b, 3300n), entry(c, 500n)]);
    expect(sent.result).toBe(3n);
    expect(skippedClaims(p.provider, sent.receipt)).toEqual([]);
    expect([await claimedOf(a), await claimedOf(b), await claimedOf(c)]).toEqual([3333n, 3300n, 500n]);
    // Royalties are rounded down per channel, exactly as two separate claims would: not a share of the sum.
    const share = (3333n * 333n) / 10_000n + (3300n * 333n) / 10_000n;
    expect(share).toBeLessThan(((3333n + 3300n) * 333n) / 10_000n);
    expect((await balanceOf(p.publisher, dev, p.token)) - devBefore).toBe(share);
    expect((await providerBalance()) - provBefore).toBe(3333n + 3300n + 500n - share);
    const events = paymentsEvents(p.provider, sent.receipt);
    const claimed = events.filter((e) => e.eventName === "Claimed").map((e) => e.args);
    expect(claimed).toEqual([
      {
        channelId: (await getChannel(p.publisher, keyOf(a))).id,
        cumulative: 3333n,
        amount: 3333n,
        providerAmount: 3333n - (3333n * 333n) / 10_000n,
      },
      {
        channelId: (await getChannel(p.publisher, keyOf(b))).id,
        cumulative: 3300n,
        amount: 3300n,
        providerAmount: 3300n - (3300n * 333n) / 10_000n,
      },
      {
        channelId: (await getChannel(p.publisher, keyOf(c))).id,
        cumulative: 500n,
        amount: 500n,
        providerAmount: 500n,
      },
    ]);
    expect(events.filter((e) => e.eventName === "RoyaltyPaid")).toHaveLength(2);
  });

  it("pays nothing for another provider's channel in the caller's batch (it resolves to no channel of the caller)", async () => {
    // The channel belongs to provider #5; provider #1 lists it in its batch beside one of its own.
    const podId = newPod();
    const otherProvider = chain.accounts[5]!.address;
    const q = await makeQuote(p, { podId, provider: otherProvider, ratePerSecond: 1000n }, 5);
    const theirs = await openChannel(p.publisher, {
      quote: q.quote,
      quoteSignature: q.signature,
      podId,
      deposit: 1_000_000n,
      noticeSeconds: 60,
      royalties: [],
    });
    const { pods, t0 } = await openAt([{ deposit: 1_000_000n, rate: 1000n }]);
    const own = pods[0]!;
    const provBefore = await providerBalance();
    const otherBefore = await balanceOf(p.publisher, otherProvider, p.token);
    await setNextTimestamp(chain, t0 + 10n);
    const sent = await claimBatch(p.provider, [entry(podId, 5000n), entry(own, 10_000n)]);
    expect(sent.result).toBe(1n);
    const skipped = skippedClaims(p.provider, sent.receipt);
    expect(skipped.map((s) => s.errorName)).toEqual(["ChannelNotFound"]);
    expect(skipped[0]!.channelId).not.toBe(theirs.channelId);
    expect(
      (await getChannel(p.publisher, { publisher: p.publisherAddr, provider: otherProvider, podId })).claimed,
    ).toBe(0n);
    expect(await balanceOf(p.publisher, otherProvider, p.token)).toBe(otherBefore);
    expect((await providerBalance()) - provBefore).toBe(10_000n);
    // Nor can the publisher claim its own channel through a batch.
    const byPublisher = await claimBatch(p.publisher, [entry(own, 10_001n)]);
    expect(byPublisher.result).toBe(0n);
    expect(await claimedOf(own)).toBe(10_000n);
  });

  it("pays a channel listed twice only up to its cumulative total (cumulative claims, no double pay)", async () => {
    const { pods, t0 } = await openAt([
      { deposit: 1_000_000n, rate: 100n },
      { deposit: 1_000_000n, rate: 100n },
    ]);
    const [a, b] = pods as [Hex, Hex];
    const provBefore = await providerBalance();
    await setNextTimestamp(chain, t0 + 20n);
    // a: the same claim twice; b: a smaller claim then a larger one, then one past the cap.
    const sent = await claimBatch(p.provider, [
      entry(a, 2000n),
      entry(b, 1000n),
      entry(a, 2000n),
      entry(b, 1900n),
      entry(b, 1901n),
    ]);
    expect(sent.result).toBe(3n);
    expect(skippedClaims(p.provider, sent.receipt).map((s) => s.errorName)).toEqual([
      "NothingToClaim",
      "ClaimExceedsAccrued",
    ]);
    expect([await claimedOf(a), await claimedOf(b)]).toEqual([2000n, 1900n]);
    expect((await providerBalance()) - provBefore).toBe(3900n);
    const amounts = paymentsEvents(p.provider, sent.receipt)
      .filter((e) => e.eventName === "Claimed")
      .map((e) => (e.args as { amount: bigint }).amount);
    expect(amounts).toEqual([2000n, 1000n, 900n]);
  });

  it("skips an entry over its cap (accrued or deposit) whole, waiver included, and pays the others", async () => {
    const { pods, t0 } = await openAt([
      { deposit: 1_000_000n, rate: 10n },
      { deposit: 300n, rate: 10n },
      { deposit: 1_000_000n, rate: 10n },
      { deposit: 1_000_000n, rate: 10n },
    ]);
    const [a, b, c, d] = pods as [Hex, Hex, Hex, Hex];
    const sinceC = (await getChannel(p.publisher, keyOf(c))).since;
    const provBefore = await providerBalance();
    await setNextTimestamp(chain, t0 + 50n);
    const sent = await claimBatch(p.provider, [
      entry(a, 501n), // accrued 500
      entry(b, 301n), // deposit 300 (accrued 490)
      entry(c, 281n, 20n), // 10 x (48 - 20) = 280 after the waiver: one wei more, so the waiver must not land either
      entry(d, 401n, 48n), // waiving 48 s of the 47 that passed
      entry(a, 500n),
    ]);
    expect(sent.result).toBe(1n);
    expect(skippedClaims(p.provider, sent.receipt).map((s) => s.errorName)).toEqual([
      "ClaimExceedsAccrued",
      "ClaimExceedsDeposit",
      "ClaimExceedsAccrued",
      "WaiveTooLong",
    ]);
    expect((await getChannel(p.publisher, keyOf(c))).since).toBe(sinceC);
    expect([await claimedOf(b), await claimedOf(c), await claimedOf(d)]).toEqual([0n, 0n, 0n]);
    expect((await providerBalance()) - provBefore).toBe(500n);
    expect(paymentsEvents(p.provider, sent.receipt).some((e) => e.eventName === "AccrualWaived")).toBe(false);
  });

  it("waives then claims per entry like claimWaiving", async () => {
    const { pods, t0 } = await openAt([{ deposit: 1_000_000n, rate: 10n }]);
    const a = pods[0]!;
    await setNextTimestamp(chain, t0 + 40n);
    const sent = await claimBatch(p.provider, [entry(a, 250n, 15n)]);
    expect(sent.result).toBe(1n);
    expect(paymentsEvents(p.provider, sent.receipt).map((e) => e.eventName)).toEqual([
      "AccrualWaived",
      "Claimed",
    ]);
    expect(await getChannel(p.publisher, keyOf(a))).toMatchObject({ since: t0 + 15n, claimed: 250n });
  });

  it("claims a closed channel up to its close time, and skips one the publisher settled before the batch landed", async () => {
    const { pods, t0 } = await openAt([
      { deposit: 1_000_000n, rate: 10n, notice: 30 },
      { deposit: 1_000_000n, rate: 10n, notice: 30 },
      { deposit: 1_000_000n, rate: 10n, notice: 30 },
    ]);
    const [a, b, c] = pods as [Hex, Hex, Hex];
    await setNextTimestamp(chain, t0 + 10n);
    await requestClose(p.publisher, p.providerAddr, a); // closes at t0 + 40
    await setNextTimestamp(chain, t0 + 11n);
    await requestClose(p.publisher, p.providerAddr, b); // closes at t0 + 41
    // The provider builds its batch from a read at t0 + 60; the publisher's refund of b lands first (the race).
    const batch = [entry(a, 400n), entry(b, 400n), entry(c, 580n)];
    await setNextTimestamp(chain, t0 + 60n);
    const settled = await refund(p.publisher, p.providerAddr, b);
    expect(settled.result).toBe(1_000_000n - 10n * 40n); // refund paid the provider b's 400 itself
    const provBefore = await providerBalance();
    await setNextTimestamp(chain, t0 + 61n);
    const sent = await claimBatch(p.provider, batch);
    expect(sent.result).toBe(2n);
    expect(skippedClaims(p.provider, sent.receipt).map((s) => s.errorName)).toEqual(["ChannelNotFound"]);
    expect((await providerBalance()) - provBefore).toBe(400n + 580n);
    // a accrued only up to its close time (t0 + 40): one wei more is refused, as by the single claim.
    await setNextTimestamp(chain, t0 + 200n);
    const more = await claimBatch(p.provider, [entry(a, 401n)]);
    expect(skippedClaims(p.provider, more.receipt).map((s) => s.errorName)).toEqual(["ClaimExceedsAccrued"]);
    await expect(claim(p.provider, p.publisherAddr, a, 401n)).rejects.toMatchObject({
      errorName: "ClaimExceedsAccrued",
    });
  });

  it("credits the provider per token when a batch mixes tokens", async () => {
    const wallet = chain.context(0).walletClient!;
    const other = await deployContract(chain.publicClient, wallet, noReturnTokenAbi, noReturnTokenBytecode);
    await chain.publicClient.waitForTransactionReceipt({
      hash: await p.publisher.walletClient!.writeContract({
        address: other,
        abi: noReturnTokenAbi,
        functionName: "mint",
        args: [p.publisherAddr, 10n ** 9n],
      } as never),
    });
    await ensureAllowance(p.publisher, other, 10n ** 9n);
    const { pods, t0 } = await openAt([
      { deposit: 1_000_000n, rate: 10n },
      { deposit: 1_000_000n, rate: 10n, token: other },
      { deposit: 1_000_000n, rate: 10n },
    ]);
    const [a, b, c] = pods as [Hex, Hex, Hex];
    const before = [await providerBalance(), await balanceOf(p.publisher, p.providerAddr, other)];
    await setNextTimestamp(chain, t0 + 40n);
    const sent = await claimBatch(p.provider, [entry(a, 400n), entry(b, 390n), entry(c, 380n)]);
    expect(sent.result).toBe(3n);
    expect((await providerBalance()) - before[0]!).toBe(780n);
    expect((await balanceOf(p.publisher, p.providerAddr, other)) - before[1]!).toBe(390n);
  });

  it("accepts an empty batch and moves nothing", async () => {
    const provBefore = await providerBalance();
    const sent = await claimBatch(p.provider, []);
    expect(sent.result).toBe(0n);
    expect(await providerBalance()).toBe(provBefore);
  });
});
