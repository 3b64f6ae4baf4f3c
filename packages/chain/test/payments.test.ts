import { type Address, parseEventLogs } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  accrued,
  balanceOf,
  ChainError,
  changeRate,
  channelId,
  claim,
  claimable,
  claimWaiving,
  claimWithVoucher,
  deployContract,
  ensureAllowance,
  getChannel,
  getRoyalties,
  minRestartTopUp,
  openChannel,
  paymentsAbi,
  paymentsEvents,
  providerClose,
  refund,
  requestClose,
  royaltiesHash,
  signVoucherFor,
  specHash,
  topUp,
  waive,
  withdraw,
} from "../src/index.js";
import { type DevChain, startDevChain } from "../src/node.js";
import {
  feeOnTransferTokenAbi,
  feeOnTransferTokenBytecode,
  noReturnTokenAbi,
  noReturnTokenBytecode,
} from "./gen/index.js";
import {
  accountOf,
  expectChainError,
  increaseTime,
  listingRoyalty,
  makeQuote,
  newPod,
  nowSeconds,
  openDefault,
  type Parties,
  parties,
  setNextTimestamp,
  tokenBalance,
  ZERO,
} from "./helpers.js";

let chain: DevChain;
let p: Parties;

beforeAll(async () => {
  chain = await startDevChain();
  p = parties(chain);
  // One large allowance up front, so no approve transaction takes a timestamp a test pinned for its own call.
  await ensureAllowance(p.publisher, p.token, 2n ** 200n);
});
afterAll(async () => {
  await chain?.stop();
});

describe("open", () => {
  it("pulls the deposit, stores the quoted terms and emits ChannelOpened", async () => {
    const before = await tokenBalance(chain, p.token, p.publisherAddr);
    const { key, sent, podId } = await openDefault(p, { deposit: 5000n, rate: 7n, notice: 120 });
    expect(await tokenBalance(chain, p.token, p.publisherAddr)).toBe(before - 5000n);
    const ch = await getChannel(p.publisher, key);
    expect(ch).toMatchObject({
      exists: true,
      deposit: 5000n,
      claimed: 0n,
      ratePerSecond: 7n,
      noticeSeconds: 120n,
    });
    expect(ch.id).toBe(sent.channelId);
    const opened = paymentsEvents(p.publisher, sent.receipt).find((e) => e.eventName === "ChannelOpened");
    expect(opened?.args).toMatchObject({
      publisher: p.publisherAddr,
      provider: p.providerAddr,
      podId,
      deposit: 5000n,
    });
  });

  it("refuses bad input with errors that say what to fix", async () => {
    const podId = newPod();
    const base = { podId, deposit: 1n, noticeSeconds: 60, royalties: [] };
    const q = await makeQuote(p, { podId });
    await expectChainError(
      openChannel(p.publisher, { ...base, ...q, quoteSignature: q.signature, podId: `0x${"00".repeat(32)}` }),
      "ZeroPodId",
    );
    await expectChainError(
      openChannel(p.publisher, {
        ...base,
        ...q,
        quoteSignature: q.signature,
        deposit: 2n ** 128n,
        approve: false,
      }),
      "AmountTooLarge",
    );
    const forOther = await makeQuote(p, { podId, publisher: chain.accounts[5]!.address });
    await expectChainError(
      openChannel(p.publisher, { ...base, quote: forOther.quote, quoteSignature: forOther.signature }),
      "QuoteNotForPublisher",
    );
    const otherPod = await makeQuote(p, { podId: newPod() });
    await expectChainError(
      openChannel(p.publisher, { ...base, quote: otherPod.quote, quoteSignature: otherPod.signature }),
      "QuoteNotForPod",
    );
    const expired = await makeQuote(p, { podId, expiry: (await nowSeconds(chain)) - 1n });
    await expectChainError(
      openChannel(p.publisher, { ...base, quote: expired.quote, quoteSignature: expired.signature }),
      "QuoteExpired",
    );
    const strict = await makeQuote(p, { podId, minNoticeSeconds: 3600 });
    expect(strict.quote.minNoticeSeconds).toBe(3600);
    const e = await expectChainError(
      openChannel(p.publisher, { ...base, quote: strict.quote, quoteSignature: strict.signature }),
      "NoticeTooShort",
    );
    expect(e.message).toContain("raise the notice period");
    const huge = await makeQuote(p, { podId, ratePerSecond: 2n ** 96n });
    await expectChainError(
      openChannel(p.publisher, { ...base, quote: huge.quote, quoteSignature: huge.signature }),
      "RateTooLarge",
    );
    const forged = await makeQuote(p, { podId }, 5);
    await expectChainError(
      openChannel(p.publisher, { ...base, quote: forged.quote, quoteSignature: forged.signature }),
      "InvalidQuoteSignature",
    );
    const zeroProvider = await makeQuote(p, { podId, provider: ZERO });
    await expectChainError(
      openChannel(p.publisher, {
        ...base,
        quote: zeroProvider.quote,
        quoteSignature: zeroProvider.signature,
      }),
      "ZeroAddress",
    );
    const eoaToken = await makeQuote(p, { podId, token: chain.accounts[7]!.address });
    await expectChainError(
      openChannel(p.publisher, {
        ...base,
        quote: eoaToken.quote,
        quoteSignature: eoaToken.signature,
        approve: false,
      }),
      "NotAContract",
    );
  });

  it("checks royalty lists: only listings, each once, exactly at its terms, at most 100% in all", async () => {
    const a = await listingRoyalty(p, 3, 6000);
    const b = await listingRoyalty(p, 4, 4000);
    const c = await listingRoyalty(p, 4, 1);
    await expectChainError(
      openDefault(p, { royalties: Array.from({ length: 9 }, () => a) }),
      "TooManyRoyalties",
    );
    await expectChainError(openDefault(p, { royalties: [a, b, c] }), "RoyaltiesExceedTotal");
    await expectChainError(openDefault(p, { royalties: [{ ...a, recipient: ZERO }] }), "ZeroAddress");
    // The royalty redirect: a share with no listing, to an address the publisher controls.
    const redirect = { recipient: chain.accounts[5]!.address, bps: 10_000, listingId: 0n };
    const e = await expectChainError(openDefault(p, { royalties: [redirect] }), "FreeFormRoyalty");
    expect(e.message).toMatch(/only to Marketplace listings/);
    await expectChainError(openDefault(p, { royalties: [c, c] }), "DuplicateListing");
    // More than the listing asks is refused too: a share above the terms moves the provider's pay elsewhere.
    await expectChainError(openDefault(p, { royalties: [{ ...c, bps: 2 }] }), "RoyaltyNotAtListingTerms");
    const { sent } = await openDefault(p, { royalties: [a, b] });
    expect(await getRoyalties(p.publisher, sent.channelId)).toEqual([a, b]);
  });

  it("opens only with the exact royalty list the provider's quote signed", async () => {
    const a = await listingRoyalty(p, 3, 700);
    const podId = newPod();
    // The provider quoted a pod without listings (royaltiesHash of []); the publisher adds a royalty anyway.
    const q = await makeQuote(p, { podId });
    const e = await expectChainError(
      openChannel(p.publisher, {
        quote: q.quote,
        quoteSignature: q.signature,
        podId,
        deposit: 1000n,
        noticeSeconds: 60,
        royalties: [a],
      }),
      "RoyaltiesNotQuoted",
    );
    expect(e.args).toEqual([royaltiesHash([]), royaltiesHash([a])]);
    // Quoted with the royalty, the publisher cannot drop it either.
    const withA = await makeQuote(p, { podId, royaltiesHash: royaltiesHash([a]) });
    await expectChainError(
      openChannel(p.publisher, {
        quote: withA.quote,
        quoteSignature: withA.signature,
        podId,
        deposit: 1000n,
        noticeSeconds: 60,
        royalties: [],
      }),
      "RoyaltiesNotQuoted",
    );
    // The contract computes the same hash as @trustedpods/chain.
    expect(
      await chain.publicClient.readContract({
        address: chain.contracts.payments,
        abi: paymentsAbi,
        functionName: "royaltiesHashOf",
        args: [[a]],
      }),
    ).toBe(royaltiesHash([a]));
  });

  it("refuses a quote bound to no publisher or no pod id (it could be replayed onto any pod)", async () => {
    const podId = newPod();
    const base = { podId, deposit: 1000n, noticeSeconds: 60, royalties: [] };
    for (const unbound of [{ publisher: ZERO }, { podId: `0x${"00".repeat(32)}` as const }]) {
      const q = await makeQuote(p, { podId, ...unbound });
      await expectChainError(
        openChannel(p.publisher, { ...base, quote: q.quote, quoteSignature: q.signature }),
        "QuoteNotBound",
      );
    }
  });

  it("never reuses a channel key, so old vouchers cannot be replayed", async () => {
    const { key, podId } = await openDefault(p, { notice: 0 });
    const q = await makeQuote(p, { podId });
    await expectChainError(
      openChannel(p.publisher, {
        quote: q.quote,
        quoteSignature: q.signature,
        podId,
        deposit: 1n,
        noticeSeconds: 60,
      }),
      "ChannelExists",
    );
    await requestClose(p.publisher, p.providerAddr, podId);
    await refund(p.publisher, p.providerAddr, podId);
    expect(await getChannel(p.publisher, key)).toMatchObject({ exists: false, finalized: true });
    const again = await makeQuote(p, { podId });
    await expectChainError(
      openChannel(p.publisher, {
        quote: again.quote,
        quoteSignature: again.signature,
        podId,
        deposit: 1n,
        noticeSeconds: 60,
      }),
      "ChannelExists",
    );
  });

  it("refuses fee-on-transfer tokens and accepts tokens that return nothing", async () => {
    const wallet = chain.context(0).walletClient!;
    const fot = await deployContract(
      chain.publicClient,
      wallet,
      feeOnTransferTokenAbi,
      feeOnTransferTokenBytecode,
    );
    const nrt = await deployContract(chain.publicClient, wallet, noReturnTokenAbi, noReturnTokenBytecode);
    const pub = p.publisher.walletClient!;
    for (const [t, abi] of [
      [fot, feeOnTransferTokenAbi],
      [nrt, noReturnTokenAbi],
    ] as const) {
      await chain.publicClient.waitForTransactionReceipt({
        hash: await pub.writeContract({
          address: t,
          abi,
          functionName: "mint",
          args: [p.publisherAddr, 10n ** 9n],
        } as never),
      });
    }
    const e = await expectChainError(openDefault(p, { token: fot, deposit: 1000n }), "UnsupportedToken");
    expect(String(e.args[0]).toLowerCase()).toBe(fot.toLowerCase());
    expect(e.args.slice(1)).toEqual([1000n, 990n]);
    const { key } = await openDefault(p, { token: nrt, deposit: 1000n, rate: 1n, notice: 0 });
    await increaseTime(chain, 10);
    await claim(p.provider, p.publisherAddr, key.podId, 5n);
    await withdraw(p.provider, nrt);
    await requestClose(p.publisher, p.providerAddr, key.podId);
    const r = await refund(p.publisher, p.providerAddr, key.podId);
    // Accrual ran until the close (about 10 s at 1/s): the refund is the deposit minus all that was settled.
    expect(r.result).toBeLessThanOrEqual(995n);
    expect(await tokenBalance(chain, nrt, p.publisherAddr)).toBe(10n ** 9n - 1000n + r.result);
  });
});

describe("claim", () => {
  it("caps claims at rate x elapsed and at the deposit, and splits royalties exactly", async () => {
    const devA = chain.accounts[3]!.address;
    const devB = chain.accounts[4]!.address;
    const devABefore = await balanceOf(p.publisher, devA, p.token);
    const devBBefore = await balanceOf(p.publisher, devB, p.token);
    const provBefore = await balanceOf(p.publisher, p.providerAddr, p.token);
    const t0 = (await nowSeconds(chain)) + 10n;
    const royalties = [await listingRoyalty(p, 3, 333), await listingRoyalty(p, 4, 1250)];
    await setNextTimestamp(chain, t0);
    const { key } = await openDefault(p, { deposit: 10_000n, rate: 37n, royalties });
    await setNextTimestamp(chain, t0 + 100n);
    await expectChainError(
      claim(p.provider, p.publisherAddr, key.podId, 37n * 100n + 1n),
      "ClaimExceedsAccrued",
    );
    await setNextTimestamp(chain, t0 + 101n);
    await claim(p.provider, p.publisherAddr, key.podId, 3701n);
    await expectChainError(claim(p.provider, p.publisherAddr, key.podId, 3701n), "NothingToClaim");
    await increaseTime(chain, 1000);
    await expectChainError(claim(p.provider, p.publisherAddr, key.podId, 10_001n), "ClaimExceedsDeposit");
    expect(await claimable(p.publisher, key)).toBe(10_000n - 3701n);
    await claim(p.provider, p.publisherAddr, key.podId, 10_000n);
    // Shares are rounded down per claim; the provider gets the remainder.
    const a = (3701n * 333n) / 10_000n + (6299n * 333n) / 10_000n;
    const b = (3701n * 1250n) / 10_000n + (6299n * 1250n) / 10_000n;
    expect((await balanceOf(p.publisher, devA, p.token)) - devABefore).toBe(a);
    expect((await balanceOf(p.publisher, devB, p.token)) - devBBefore).toBe(b);
    expect((await balanceOf(p.publisher, p.providerAddr, p.token)) - provBefore).toBe(10_000n - a - b);
  });

  it("lets nobody but the provider claim", async () => {
    const { key } = await openDefault(p);
    await increaseTime(chain, 10);
    await expectChainError(claim(chain.context(5), p.publisherAddr, key.podId, 1n), "ChannelNotFound");
    await expectChainError(claim(p.publisher, p.publisherAddr, key.podId, 1n), "ChannelNotFound");
  });

  it("accepts a publisher voucher beyond the rate, but not one signed by someone else", async () => {
    const { key } = await openDefault(p, { deposit: 1_000_000n, rate: 1n });
    const sig = await signVoucherFor(p.publisher, accountOf(chain, 2), key, 500_000n);
    await claimWithVoucher(p.provider, p.publisherAddr, key.podId, 400_000n, 500_000n, sig);
    await expectChainError(
      claimWithVoucher(p.provider, p.publisherAddr, key.podId, 500_001n, 500_000n, sig),
      "ClaimExceedsAccrued",
    );
    const forged = await signVoucherFor(p.publisher, accountOf(chain, 1), key, 900_000n);
    await expectChainError(
      claimWithVoucher(p.provider, p.publisherAddr, key.podId, 900_000n, 900_000n, forged),
      "InvalidVoucherSignature",
    );
    const otherPod = await signVoucherFor(
      p.publisher,
      accountOf(chain, 2),
      { ...key, podId: newPod() },
      900_000n,
    );
    await expectChainError(
      claimWithVoucher(p.provider, p.publisherAddr, key.podId, 900_000n, 900_000n, otherPod),
      "InvalidVoucherSignature",
    );
    const big = await signVoucherFor(p.publisher, accountOf(chain, 2), key, 2_000_000n);
    await expectChainError(
      claimWithVoucher(p.provider, p.publisherAddr, key.podId, 1_000_001n, 2_000_000n, big),
      "ClaimExceedsDeposit",
    );
  });
});

describe("top-up, rate change and close", () => {
  it("tops up only open channels of the caller", async () => {
    const { key, sent } = await openDefault(p, { deposit: 100n });
    const t = await topUp(p.publisher, p.providerAddr, key.podId, 50n);
    // At 1000/s the deposit of 100 may already have run out when the top-up lands: AccrualRestarted then comes
    // first, so look the ToppedUp event up by name.
    const toppedUp = paymentsEvents(p.publisher, t.receipt).find((e) => e.eventName === "ToppedUp");
    expect(toppedUp?.args).toMatchObject({
      channelId: sent.channelId,
      deposit: 150n,
    });
    await expectChainError(topUp(chain.context(5), p.providerAddr, key.podId, 1n, false), "ChannelNotFound");
    await requestClose(p.publisher, p.providerAddr, key.podId);
    await expectChainError(topUp(p.publisher, p.providerAddr, key.podId, 1n), "ChannelIsClosing");
    await expectChainError(requestClose(p.publisher, p.providerAddr, key.podId), "ChannelIsClosing");
  });

  it("changes the rate with a new signed quote and keeps what accrued", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key } = await openDefault(p, { deposit: 10n ** 9n, rate: 10n });
    const q = await makeQuote(p, { podId: key.podId, ratePerSecond: 3n });
    await setNextTimestamp(chain, t0 + 100n);
    await changeRate(p.publisher, q.quote, q.signature, key.podId);
    const ch = await getChannel(p.publisher, key);
    expect(ch).toMatchObject({ accruedBefore: 1000n, ratePerSecond: 3n, since: t0 + 100n });
    await setNextTimestamp(chain, t0 + 110n);
    await claim(p.provider, p.publisherAddr, key.podId, 1030n);
    const wrongToken = await makeQuote(p, { podId: key.podId, token: chain.contracts.registry });
    await expectChainError(
      changeRate(p.publisher, wrongToken.quote, wrongToken.signature, key.podId),
      "QuoteTokenMismatch",
    );
    const forged = await makeQuote(p, { podId: key.podId, ratePerSecond: 1n }, 2);
    await expectChainError(
      changeRate(p.publisher, forged.quote, forged.signature, key.podId),
      "InvalidQuoteSignature",
    );
  });

  it("changes the rate only with a quote for this publisher and pod, unexpired, priced with the channel's royalties", async () => {
    const a = await listingRoyalty(p, 3, 250);
    const { key, sent } = await openDefault(p, { deposit: 10n ** 9n, rate: 100n, royalties: [a] });
    const priced = { royaltiesHash: royaltiesHash([a]) };
    // The rate cut: a cheaper quote signed for another pod of the same publisher.
    const other = await openDefault(p, { rate: 4n });
    const foreign = await makeQuote(p, { podId: other.podId, ratePerSecond: 4n, ...priced });
    await expectChainError(
      changeRate(p.publisher, foreign.quote, foreign.signature, key.podId),
      "QuoteNotForPod",
    );
    const unbound = await makeQuote(p, { podId: `0x${"00".repeat(32)}`, ratePerSecond: 4n, ...priced });
    await expectChainError(
      changeRate(p.publisher, unbound.quote, unbound.signature, key.podId),
      "QuoteNotBound",
    );
    const stale = await makeQuote(p, {
      podId: key.podId,
      ratePerSecond: 4n,
      expiry: (await nowSeconds(chain)) - 1n,
      ...priced,
    });
    await expectChainError(changeRate(p.publisher, stale.quote, stale.signature, key.podId), "QuoteExpired");
    // Another publisher's quote for this pod id cannot re-rate this publisher's channel.
    const theirs = await makeQuote(p, { podId: key.podId, publisher: chain.accounts[5]!.address, ...priced });
    await expectChainError(
      changeRate(p.publisher, theirs.quote, theirs.signature, key.podId),
      "QuoteNotForPublisher",
    );
    // A quote priced for a pod without the listing (royalties []) does not fit this channel.
    const noListing = await makeQuote(p, { podId: key.podId, ratePerSecond: 4n });
    await expectChainError(
      changeRate(p.publisher, noListing.quote, noListing.signature, key.podId),
      "RoyaltiesNotQuoted",
    );
    expect((await getChannel(p.publisher, key)).ratePerSecond).toBe(100n);
    // The honest one goes through, and says on chain which spec it priced.
    const spec = `0x${"5a".repeat(32)}` as const;
    const ok = await makeQuote(p, { podId: key.podId, ratePerSecond: 120n, specHash: spec, ...priced });
    const r = await changeRate(p.publisher, ok.quote, ok.signature, key.podId);
    const ev = paymentsEvents(p.publisher, r.receipt).find((e) => e.eventName === "RateChanged");
    expect(ev?.args).toMatchObject({ channelId: sent.channelId, ratePerSecond: 120n, specHash: spec });
    const opened = paymentsEvents(p.publisher, sent.receipt).find((e) => e.eventName === "ChannelOpened");
    expect(opened?.args).toMatchObject({
      specHash: specHash({ cpu: 100n, memory: 64n, storage: 0n, gpu: 0n }),
    });
  });

  it("refuses a dust top-up that would restart a run-out pod: it must pay at least the notice period", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key } = await openDefault(p, { deposit: 1000n, rate: 10n, notice: 60 });
    // Before the run-out any amount is fine (it changes no accrual).
    await setNextTimestamp(chain, t0 + 50n);
    await topUp(p.publisher, p.providerAddr, key.podId, 1n);
    // After it, less than 10/s x 60 s is refused, and nothing moves.
    await setNextTimestamp(chain, t0 + 500n);
    const e = await expectChainError(topUp(p.publisher, p.providerAddr, key.podId, 599n), "TopUpTooSmall");
    expect(e.args).toEqual([599n, 600n]);
    expect(minRestartTopUp(await getChannel(p.publisher, key))).toBe(600n);
    expect((await getChannel(p.publisher, key)).deposit).toBe(1001n);
    await topUp(p.publisher, p.providerAddr, key.podId, 600n);
    expect(await getChannel(p.publisher, key)).toMatchObject({ deposit: 1601n, accruedBefore: 1001n });
  });

  it("lets the provider waive accrual it did not serve, never past now, and nobody else", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key, sent } = await openDefault(p, { deposit: 10_000n, rate: 10n, notice: 100 });
    const pubBefore = await tokenBalance(chain, p.token, p.publisherAddr);
    await setNextTimestamp(chain, t0 + 50n);
    await expectChainError(waive(p.publisher, p.publisherAddr, key.podId, 1n), "ChannelNotFound");
    await setNextTimestamp(chain, t0 + 51n);
    const e = await expectChainError(waive(p.provider, p.publisherAddr, key.podId, 52n), "WaiveTooLong");
    expect(e.args).toEqual([52n, 51n]);
    // The pod took 30 s to serve: the publisher pays 10/s less those 30 s.
    await setNextTimestamp(chain, t0 + 52n);
    const w = await waive(p.provider, p.publisherAddr, key.podId, 30n);
    const ev = paymentsEvents(p.provider, w.receipt).find((x) => x.eventName === "AccrualWaived");
    expect(ev?.args).toEqual({ channelId: sent.channelId, seconds_: 30n });
    expect((await getChannel(p.publisher, key)).since).toBe(t0 + 30n);
    expect(await accrued(p.publisher, key)).toBe(220n);
    await setNextTimestamp(chain, t0 + 60n);
    await requestClose(p.publisher, p.providerAddr, key.podId);
    await setNextTimestamp(chain, t0 + 160n);
    // refund settles the reduced accrual automatically: 10 x (160 - 30) to the provider, the rest back.
    const r = await refund(p.publisher, p.providerAddr, key.podId);
    expect(r.result).toBe(10_000n - 1300n);
    expect((await tokenBalance(chain, p.token, p.publisherAddr)) - pubBefore).toBe(10_000n - 1300n);
  });

  it("waives and claims in one transaction (the daemon's first claim after a start), or neither", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key } = await openDefault(p, { deposit: 10_000n, rate: 10n });
    await setNextTimestamp(chain, t0 + 40n);
    // 15 s waived leaves 10 x 25 = 250 claimable: one wei more is refused, and the waiver with it.
    await expectChainError(
      claimWaiving(p.provider, p.publisherAddr, key.podId, 251n, 15n),
      "ClaimExceedsAccrued",
    );
    expect((await getChannel(p.publisher, key)).since).toBe(t0);
    await setNextTimestamp(chain, t0 + 40n);
    const r = await claimWaiving(p.provider, p.publisherAddr, key.podId, 250n, 15n);
    expect(paymentsEvents(p.provider, r.receipt).map((e) => e.eventName)).toEqual([
      "AccrualWaived",
      "Claimed",
    ]);
    expect(await getChannel(p.publisher, key)).toMatchObject({ since: t0 + 15n, claimed: 250n });
  });

  it("pays the provider up to the close time and refunds exactly the rest", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key } = await openDefault(p, { deposit: 100_000n, rate: 10n, notice: 300 });
    const pubBefore = await tokenBalance(chain, p.token, p.publisherAddr);
    const provBefore = await balanceOf(p.publisher, p.providerAddr, p.token);
    await setNextTimestamp(chain, t0 + 50n);
    await claim(p.provider, p.publisherAddr, key.podId, 400n);
    await expectChainError(refund(p.publisher, p.providerAddr, key.podId), "NoticeNotOver");
    await setNextTimestamp(chain, t0 + 100n);
    await requestClose(p.publisher, p.providerAddr, key.podId);
    expect((await getChannel(p.publisher, key)).closeAt).toBe(t0 + 400n);
    await setNextTimestamp(chain, t0 + 399n);
    const early = await expectChainError(refund(p.publisher, p.providerAddr, key.podId), "NoticeNotOver");
    expect(early.message).toContain("wait until then");
    await setNextTimestamp(chain, t0 + 1000n);
    const r = await refund(p.publisher, p.providerAddr, key.podId);
    expect(r.result).toBe(100_000n - 4000n);
    expect((await tokenBalance(chain, p.token, p.publisherAddr)) - pubBefore).toBe(96_000n);
    expect((await balanceOf(p.publisher, p.providerAddr, p.token)) - provBefore).toBe(4000n);
    const ev = parseEventLogs({ abi: paymentsAbi, logs: r.receipt.logs }).find(
      (e) => e.eventName === "ChannelFinalized",
    );
    expect(ev?.args).toMatchObject({ claimed: 4000n, refund: 96_000n });
    await expectChainError(claim(p.provider, p.publisherAddr, key.podId, 4001n), "ChannelNotFound");
    await expectChainError(refund(p.publisher, p.providerAddr, key.podId), "ChannelNotFound");
  });

  it("lets the provider stop accrual at once, and only once", async () => {
    const { key } = await openDefault(p, { deposit: 100_000n, rate: 1n, notice: 10_000 });
    await providerClose(p.provider, p.publisherAddr, key.podId);
    await expectChainError(providerClose(p.provider, p.publisherAddr, key.podId), "ChannelAlreadyClosed");
    await expectChainError(providerClose(chain.context(5), p.publisherAddr, key.podId), "ChannelNotFound");
    const r = await refund(p.publisher, p.providerAddr, key.podId);
    expect(r.result).toBeGreaterThan(100_000n - 100n);
  });
});

describe("top-up after a run-out (accrual restart)", () => {
  const keyOf = (podId: `0x${string}`) => ({ publisher: p.publisherAddr, provider: p.providerAddr, podId });
  const restartOf = (receipt: Parameters<typeof paymentsEvents>[1]) =>
    paymentsEvents(p.publisher, receipt).find((e) => e.eventName === "AccrualRestarted");

  it("bills nothing for the stopped time: owed freezes at the old deposit and accrual restarts at the top-up", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key, sent } = await openDefault(p, { deposit: 1000n, rate: 10n });
    // Runs out at t0 + 100; the pod stands stopped until the top-up at t0 + 700.
    await setNextTimestamp(chain, t0 + 700n);
    const t = await topUp(p.publisher, p.providerAddr, key.podId, 1000n);
    expect(restartOf(t.receipt)?.args).toEqual({
      channelId: sent.channelId,
      accruedBefore: 1000n,
      since: t0 + 700n,
    });
    expect(await getChannel(p.publisher, key)).toMatchObject({
      deposit: 2000n,
      accruedBefore: 1000n,
      since: t0 + 700n,
    });
    await setNextTimestamp(chain, t0 + 750n);
    // 1000 for the 100 funded seconds before the run-out + 10 x 50 since the top-up; the 600 stopped seconds: 0.
    await expectChainError(claim(p.provider, p.publisherAddr, key.podId, 1501n), "ClaimExceedsAccrued");
    await setNextTimestamp(chain, t0 + 751n);
    await claim(p.provider, p.publisherAddr, key.podId, 1510n);
    // The new deposit runs out 100 s after the top-up (t0 + 800); from then on the deposit is the cap.
    await setNextTimestamp(chain, t0 + 799n);
    await expectChainError(claim(p.provider, p.publisherAddr, key.podId, 2000n), "ClaimExceedsAccrued");
    // (a refused call mines nothing, so the pinned timestamp is still pending: pin a later one and mine it)
    await setNextTimestamp(chain, t0 + 2000n);
    await increaseTime(chain, 0);
    expect((await getChannel(p.publisher, key)).claimed).toBe(1510n);
    expect(await claimable(p.publisher, key)).toBe(2000n - 1510n);
    await expectChainError(claim(p.provider, p.publisherAddr, key.podId, 2001n), "ClaimExceedsDeposit");
  });

  it("changes nothing for a top-up before the run-out, or a top-up of zero", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key } = await openDefault(p, { deposit: 1000n, rate: 10n });
    await setNextTimestamp(chain, t0 + 99n);
    const early = await topUp(p.publisher, p.providerAddr, key.podId, 500n);
    expect(restartOf(early.receipt)).toBeUndefined();
    expect(await getChannel(p.publisher, key)).toMatchObject({
      since: t0,
      accruedBefore: 0n,
      deposit: 1500n,
    });
    await setNextTimestamp(chain, t0 + 400n);
    const zero = await topUp(p.publisher, p.providerAddr, key.podId, 0n);
    expect(restartOf(zero.receipt)).toBeUndefined();
    expect(await getChannel(p.publisher, key)).toMatchObject({ since: t0, accruedBefore: 0n });
    await setNextTimestamp(chain, t0 + 401n);
    await claim(p.provider, p.publisherAddr, key.podId, 1500n);
  });

  it("restarts at exactly the run-out second without changing any number, and rounds like the claim cap", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const exact = await openDefault(p, { deposit: 1000n, rate: 10n });
    await setNextTimestamp(chain, t0 + 100n);
    const t = await topUp(p.publisher, p.providerAddr, exact.key.podId, 600n);
    expect(restartOf(t.receipt)?.args).toMatchObject({ accruedBefore: 1000n, since: t0 + 100n });
    await setNextTimestamp(chain, t0 + 105n);
    await claim(p.provider, p.publisherAddr, exact.key.podId, 1050n);

    // 7/s does not divide 1000: the deposit runs out during second 143 (accrued 1001 > 1000). The partial second
    // is paid with what was left (1000 in all); the restart owes exactly the old deposit, never 1001.
    const t1 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t1);
    const odd = await openDefault(p, { deposit: 1000n, rate: 7n });
    await setNextTimestamp(chain, t1 + 200n);
    await topUp(p.publisher, p.providerAddr, odd.key.podId, 700n);
    expect(await getChannel(p.publisher, odd.key)).toMatchObject({ accruedBefore: 1000n, since: t1 + 200n });
    await setNextTimestamp(chain, t1 + 250n);
    await expectChainError(claim(p.provider, p.publisherAddr, odd.key.podId, 1351n), "ClaimExceedsAccrued");
    await setNextTimestamp(chain, t1 + 251n);
    await claim(p.provider, p.publisherAddr, odd.key.podId, 1357n);
  });

  it("sends a top-up estimated before the run-out with the gas the restart branch needs if it lands after", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key } = await openDefault(p, { deposit: 1000n, rate: 10n });
    await setNextTimestamp(chain, t0 + 50n);
    const early = await topUp(p.publisher, p.providerAddr, key.podId, 600n);
    await setNextTimestamp(chain, t0 + 200n);
    const late = await topUp(p.publisher, p.providerAddr, key.podId, 600n);
    expect(restartOf(early.receipt)).toBeUndefined();
    expect(restartOf(late.receipt)).toBeDefined();
    // The early top-up was estimated on the cheap branch; its limit still covers what the restart branch used.
    const limit = (await chain.publicClient.getTransaction({ hash: early.hash })).gas;
    expect(limit).toBeGreaterThanOrEqual(late.receipt.gasUsed);
  });

  it("keeps the restart through a rate change, a voucher, a close and the refund: refund = deposits - claimed", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key } = await openDefault(p, { deposit: 1000n, rate: 10n, notice: 100 });
    const pubBefore = await tokenBalance(chain, p.token, p.publisherAddr);
    const provBefore = await balanceOf(p.publisher, p.providerAddr, p.token);
    await setNextTimestamp(chain, t0 + 300n);
    await topUp(p.publisher, p.providerAddr, key.podId, 5000n);
    // A new rate 50 s after the restart: 1000 + 10 x 50 stays owed.
    const q = await makeQuote(p, { podId: key.podId, ratePerSecond: 4n });
    await setNextTimestamp(chain, t0 + 350n);
    await changeRate(p.publisher, q.quote, q.signature, key.podId);
    expect(await getChannel(p.publisher, key)).toMatchObject({ accruedBefore: 1500n, since: t0 + 350n });
    // A voucher still lets the provider past the accrual, never past the deposit.
    const sig = await signVoucherFor(p.publisher, accountOf(chain, 2), key, 2000n);
    await setNextTimestamp(chain, t0 + 360n);
    await claimWithVoucher(p.provider, p.publisherAddr, key.podId, 2000n, 2000n, sig);
    await setNextTimestamp(chain, t0 + 400n);
    await requestClose(p.publisher, p.providerAddr, key.podId);
    await expectChainError(topUp(p.publisher, p.providerAddr, key.podId, 1n), "ChannelIsClosing");
    await setNextTimestamp(chain, t0 + 600n);
    const r = await refund(p.publisher, p.providerAddr, key.podId);
    // Accrued at the close (t0 + 500): 1500 + 4 x 150 = 2100; the voucher claim of 2000 counts toward it.
    expect(r.result).toBe(6000n - 2100n);
    expect((await tokenBalance(chain, p.token, p.publisherAddr)) - pubBefore).toBe(6000n - 2100n - 5000n);
    expect((await balanceOf(p.publisher, p.providerAddr, p.token)) - provBefore).toBe(2100n);
  });

  it("stops the restarted accrual at a provider close, and restarts a channel opened empty at its first top-up", async () => {
    const t0 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t0);
    const { key } = await openDefault(p, { deposit: 100n, rate: 1n, notice: 1000 });
    await setNextTimestamp(chain, t0 + 500n);
    await topUp(p.publisher, p.providerAddr, key.podId, 1000n);
    await setNextTimestamp(chain, t0 + 520n);
    await providerClose(p.provider, p.publisherAddr, key.podId);
    const r = await refund(p.publisher, p.providerAddr, key.podId);
    expect(r.result).toBe(1100n - 120n);

    const t1 = (await nowSeconds(chain)) + 5n;
    await setNextTimestamp(chain, t1);
    const empty = await openDefault(p, { deposit: 0n, rate: 3n });
    await setNextTimestamp(chain, t1 + 1000n);
    const t = await topUp(p.publisher, p.providerAddr, empty.key.podId, 300n);
    expect(restartOf(t.receipt)?.args).toMatchObject({ accruedBefore: 0n, since: t1 + 1000n });
    await setNextTimestamp(chain, t1 + 1010n);
    await expectChainError(claim(p.provider, p.publisherAddr, empty.key.podId, 31n), "ClaimExceedsAccrued");
    expect(await getChannel(p.publisher, keyOf(empty.key.podId))).toMatchObject({
      claimed: 0n,
      deposit: 300n,
    });
  });
});

describe("withdraw", () => {
  it("sends the caller its own balance and nothing to anyone else", async () => {
    const stranger = chain.context(6);
    await expectChainError(withdraw(stranger, p.token), "NothingToWithdraw");
    const { key } = await openDefault(p, { rate: 100n });
    await increaseTime(chain, 5);
    await claim(p.provider, p.publisherAddr, key.podId, 300n);
    const owed = await balanceOf(p.provider, p.providerAddr, p.token);
    const before = await tokenBalance(chain, p.token, p.providerAddr);
    const w = await withdraw(p.provider, p.token);
    expect(w.result).toBe(owed);
    expect((await tokenBalance(chain, p.token, p.providerAddr)) - before).toBe(owed);
    expect(await balanceOf(p.provider, p.providerAddr, p.token)).toBe(0n);
    await expectChainError(withdraw(p.provider, p.token), "NothingToWithdraw");
  });
});

describe("errors", () => {
  it("decodes reverts into ChainError with a code and the contract's arguments", async () => {
    const err = await expectChainError(claim(p.provider, p.publisherAddr, newPod(), 1n), "ChannelNotFound");
    expect(err.code).toBe("CHAIN_ChannelNotFound");
    expect(err.message).toMatch(/check publisher, provider and pod id/);
    expect(err).toBeInstanceOf(ChainError);
    const id = channelId({ publisher: p.publisherAddr, provider: p.providerAddr, podId: newPod() });
    expect(id).toMatch(/^0x[0-9a-f]{64}$/);
  });

  it("computes channel ids like the contract", async () => {
    const key = { publisher: p.publisherAddr, provider: p.providerAddr, podId: newPod() };
    const onChain = await chain.publicClient.readContract({
      address: chain.contracts.payments,
      abi: paymentsAbi,
      functionName: "channelIdOf",
      args: [key.publisher, key.provider as Address, key.podId],
    });
    expect(channelId(key)).toBe(onChain);
  });
});
