import {
  type Address,
  encodeAbiParameters,
  erc20Abi,
  type Hex,
  keccak256,
  parseAbi,
  type TypedDataDomain,
  toHex,
} from "viem";
import { type ChainContext, read, type Sent, send, senderOf } from "./client.js";
import { paymentsDomain, type Quote, signQuote, signVoucher, type TypedDataSigner } from "./eip712.js";
import { explainError } from "./errors.js";
import { eventsOf, waitForTransaction } from "./events.js";
import { paymentsAbi } from "./gen/index.js";

/**
 * A royalty share of every claim, for one Marketplace listing the pod runs: `recipient` is the listing's
 * developer and `bps` exactly its terms (the contract refuses `listingId` 0n, duplicates and other shares).
 */
export interface Royalty {
  recipient: Address;
  bps: number;
  listingId: bigint;
}

const ROYALTIES_ABI = [
  {
    type: "tuple[]",
    components: [
      { name: "recipient", type: "address" },
      { name: "bps", type: "uint16" },
      { name: "listingId", type: "uint64" },
    ],
  },
] as const;

/** keccak256(abi.encode(royalties)) exactly as the contract computes it: the quote's `royaltiesHash`. */
export function royaltiesHash(royalties: readonly Royalty[]): Hex {
  return keccak256(encodeAbiParameters(ROYALTIES_ABI, [royalties.map((r) => ({ ...r }))]));
}

/** The resources a rate prices, in the pricing units (CPU millicores, memory MiB, storage GiB, GPUs), all replicas. */
export interface PricedUnits {
  cpu: bigint;
  memory: bigint;
  storage: bigint;
  gpu: bigint;
}

const SPEC_TAG = keccak256(toHex("trustedpods.spec.v1"));

/**
 * The quote's `specHash`: what its rate prices, keccak256(abi.encode(tag, cpu, memory, storage, gpu)). Provider
 * and publisher compute it from the pod's billed units, so both agree on what a signed rate is for.
 */
export function specHash(units: PricedUnits): Hex {
  return keccak256(
    encodeAbiParameters(
      [
        { type: "bytes32" },
        { type: "uint256" },
        { type: "uint256" },
        { type: "uint256" },
        { type: "uint256" },
      ],
      [SPEC_TAG, units.cpu, units.memory, units.storage, units.gpu],
    ),
  );
}

export interface ChannelKey {
  publisher: Address;
  provider: Address;
  podId: Hex;
}

export interface ChannelState {
  id: Hex;
  token: Address;
  deposit: bigint;
  claimed: bigint;
  ratePerSecond: bigint;
  /** Accrual anchor: the opening, the last rate change, or the last top-up that found the deposit used up. */
  since: bigint;
  /**
   * Owed from before `since`: what accrued at the old rate, or the old deposit frozen by a top-up after a run-out
   * (event AccrualRestarted). accrued = accruedBefore + rate × (min(now, closeAt) − since).
   */
  accruedBefore: bigint;
  /** 0n while open; accrual stops here. */
  closeAt: bigint;
  noticeSeconds: bigint;
  royaltyCount: bigint;
  exists: boolean;
  finalized: boolean;
}

/** The channel id exactly as the contract computes it: keccak256(abi.encode(publisher, provider, podId)). */
export function channelId(key: ChannelKey): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: "address" }, { type: "address" }, { type: "bytes32" }],
      [key.publisher, key.provider, key.podId],
    ),
  );
}

/** The EIP-712 domain of this context's Payments contract. */
export async function domainOf(ctx: ChainContext): Promise<TypedDataDomain> {
  return paymentsDomain(await ctx.publicClient.getChainId(), ctx.addresses.payments);
}

/** Provider side: signs a quote for the Payments contract of `ctx`. */
export async function signQuoteFor(ctx: ChainContext, signer: TypedDataSigner, quote: Quote): Promise<Hex> {
  return signQuote(signer, await domainOf(ctx), quote);
}

/** Publisher side: signs a cumulative voucher for `key`. */
export async function signVoucherFor(
  ctx: ChainContext,
  signer: TypedDataSigner,
  key: ChannelKey,
  cumulativeAmount: bigint,
): Promise<Hex> {
  return signVoucher(signer, await domainOf(ctx), { ...key, cumulativeAmount });
}

// Declared without a return value so tokens that return nothing (USDT-style) work too.
const approveAbi = parseAbi(["function approve(address spender, uint256 amount)"]);

/** Approves the Payments contract for at least `amount` of `token` when the allowance is short. */
export async function ensureAllowance(ctx: ChainContext, token: Address, amount: bigint): Promise<void> {
  const owner = senderOf(ctx);
  const allowance = await read<bigint>(ctx, {
    address: token,
    abi: erc20Abi,
    functionName: "allowance",
    args: [owner, ctx.addresses.payments],
  });
  if (allowance >= amount) return;
  await send(ctx, {
    address: token,
    abi: approveAbi,
    functionName: "approve",
    args: [ctx.addresses.payments, amount],
  });
}

export interface OpenChannelParams {
  quote: Quote;
  quoteSignature: Hex;
  podId: Hex;
  deposit: bigint;
  noticeSeconds: number;
  royalties?: Royalty[];
  /** Extra amount to approve for listing fixed fees (the contract pulls deposit + fees). */
  fees?: bigint;
  /** Approve the token first when needed (default true). */
  approve?: boolean;
}

const p = (ctx: ChainContext) => ({ address: ctx.addresses.payments, abi: paymentsAbi });

/** Publisher: opens a channel with a provider-signed quote. */
export async function openChannel(
  ctx: ChainContext,
  params: OpenChannelParams,
): Promise<Sent<Hex> & { channelId: Hex }> {
  if (params.approve !== false)
    await ensureAllowance(ctx, params.quote.token, params.deposit + (params.fees ?? 0n));
  const sent = await send<Hex>(ctx, {
    ...p(ctx),
    functionName: "open",
    args: [
      params.quote,
      params.quoteSignature,
      params.podId,
      params.deposit,
      params.noticeSeconds,
      params.royalties ?? [],
    ],
  });
  return { ...sent, channelId: sent.result };
}

/** What the accrual restart adds to a top-up: a fresh storage slot (22,100), the flag and anchor, its event. */
export const TOP_UP_RESTART_GAS = 30_000n;

/**
 * The smallest top-up the contract accepts for a channel whose deposit ran out (accrual reached it): the notice
 * period at the rate (TopUpTooSmall otherwise). A top-up before the run-out has no minimum.
 */
export function minRestartTopUp(channel: Pick<ChannelState, "ratePerSecond" | "noticeSeconds">): bigint {
  return channel.ratePerSecond * channel.noticeSeconds;
}

/** Publisher: adds `amount` to the deposit. */
export async function topUp(
  ctx: ChainContext,
  provider: Address,
  podId: Hex,
  amount: bigint,
  approve = true,
): Promise<Sent> {
  if (approve) {
    const ch = await getChannel(ctx, { publisher: senderOf(ctx), provider, podId });
    await ensureAllowance(ctx, ch.token, amount);
  }
  // A top-up mined after the deposit ran out also restarts accrual (a new storage slot and an event), though
  // it may have been estimated a second before: leave room for that branch.
  return send(
    ctx,
    { ...p(ctx), functionName: "topUp", args: [provider, podId, amount] },
    { gasHeadroom: TOP_UP_RESTART_GAS },
  );
}

/** Publisher: switches to the rate of a new provider-signed quote. */
export function changeRate(ctx: ChainContext, quote: Quote, quoteSignature: Hex, podId: Hex): Promise<Sent> {
  return send(ctx, { ...p(ctx), functionName: "changeRate", args: [quote, quoteSignature, podId] });
}

/** Publisher: starts the notice period. */
export function requestClose(ctx: ChainContext, provider: Address, podId: Hex): Promise<Sent> {
  return send(ctx, { ...p(ctx), functionName: "requestClose", args: [provider, podId] });
}

/** Publisher: after the notice period, settles the provider and returns the rest; resolves to the refund. */
export function refund(ctx: ChainContext, provider: Address, podId: Hex): Promise<Sent<bigint>> {
  return send<bigint>(ctx, { ...p(ctx), functionName: "refund", args: [provider, podId] });
}

/** Provider: claims up to a cumulative total. */
export function claim(ctx: ChainContext, publisher: Address, podId: Hex, cumulative: bigint): Promise<Sent> {
  return send(ctx, { ...p(ctx), functionName: "claim", args: [publisher, podId, cumulative] });
}

/** Provider: claims with a publisher-signed voucher. */
export function claimWithVoucher(
  ctx: ChainContext,
  publisher: Address,
  podId: Hex,
  cumulative: bigint,
  voucherAmount: bigint,
  voucherSignature: Hex,
): Promise<Sent> {
  return send(ctx, {
    ...p(ctx),
    functionName: "claimWithVoucher",
    args: [publisher, podId, cumulative, voucherAmount, voucherSignature],
  });
}

/** Provider: gives up `seconds` of accrual (time it did not serve); the publisher pays `rate × seconds` less. */
export function waive(ctx: ChainContext, publisher: Address, podId: Hex, seconds: bigint): Promise<Sent> {
  return send(ctx, { ...p(ctx), functionName: "waive", args: [publisher, podId, seconds] });
}

/** Provider: `waive(seconds)` then `claim(cumulative)` in one transaction (the first claim after a pod started). */
export function claimWaiving(
  ctx: ChainContext,
  publisher: Address,
  podId: Hex,
  cumulative: bigint,
  seconds: bigint,
): Promise<Sent> {
  return send(ctx, {
    ...p(ctx),
    functionName: "claimWaiving",
    args: [publisher, podId, cumulative, seconds],
  });
}

/**
 * One entry of a batch claim: the channel of `publisher`'s `podId` with the sender as provider, the cumulative total
 * to claim and the seconds of accrual to give up first (0n: a plain claim; otherwise claimWaiving's rules).
 */
export interface BatchClaim {
  publisher: Address;
  podId: Hex;
  cumulative: bigint;
  waiveSeconds: bigint;
}

/**
 * Provider: claims many channels in one transaction, each under the single claim's rules. An entry the single claim
 * would refuse is skipped (nothing moves for it) and reported by `skippedClaims`; the result is how many paid.
 */
export function claimBatch(ctx: ChainContext, claims: readonly BatchClaim[]): Promise<Sent<bigint>> {
  return send<bigint>(ctx, { ...p(ctx), functionName: "claimBatch", args: [claims] });
}

const paymentsErrorBySelector: ReadonlyMap<string, string> = new Map(
  paymentsAbi
    .filter((item) => item.type === "error")
    .map((e) => {
      const signature = `${e.name}(${e.inputs.map((i) => i.type).join(",")})`;
      return [keccak256(toHex(signature)).slice(0, 10), e.name] as const;
    }),
);

/** The entries of a batch claim that were skipped, with the contract error the single claim would have raised. */
export function skippedClaims(
  ctx: ChainContext,
  receipt: Parameters<typeof eventsOf>[1],
): { channelId: Hex; errorName: string }[] {
  return paymentsEvents(ctx, receipt).flatMap((e) =>
    e.eventName === "ClaimSkipped"
      ? [
          {
            channelId: e.args.channelId,
            errorName: paymentsErrorBySelector.get(e.args.reason) ?? e.args.reason,
          },
        ]
      : [],
  );
}

/** Provider: stops accrual now. */
export function providerClose(ctx: ChainContext, publisher: Address, podId: Hex): Promise<Sent> {
  return send(ctx, { ...p(ctx), functionName: "providerClose", args: [publisher, podId] });
}

/** Anyone: withdraws the caller's whole internal balance of `token`. */
export function withdraw(ctx: ChainContext, token: Address): Promise<Sent<bigint>> {
  return send<bigint>(ctx, { ...p(ctx), functionName: "withdraw", args: [token] });
}

export async function getChannel(ctx: ChainContext, key: ChannelKey): Promise<ChannelState> {
  const v = await read<Omit<ChannelState, "id">>(ctx, {
    ...p(ctx),
    functionName: "getChannel",
    args: [key.publisher, key.provider, key.podId],
  });
  return { id: channelId(key), ...v };
}

export function getRoyalties(ctx: ChainContext, id: Hex): Promise<readonly Royalty[]> {
  return read(ctx, { ...p(ctx), functionName: "getRoyalties", args: [id] });
}

export function claimable(ctx: ChainContext, key: ChannelKey): Promise<bigint> {
  return read(ctx, { ...p(ctx), functionName: "claimable", args: [key.publisher, key.provider, key.podId] });
}

export function accrued(ctx: ChainContext, key: ChannelKey): Promise<bigint> {
  return read(ctx, { ...p(ctx), functionName: "accrued", args: [key.publisher, key.provider, key.podId] });
}

export function balanceOf(ctx: ChainContext, account: Address, token: Address): Promise<bigint> {
  return read(ctx, { ...p(ctx), functionName: "balanceOf", args: [account, token] });
}

export async function paysListing(
  ctx: ChainContext,
  id: Hex,
  listingId: bigint,
): Promise<{ pays: boolean; recipient: Address; bps: number }> {
  const [pays, recipient, bps] = await read<readonly [boolean, Address, number]>(ctx, {
    ...p(ctx),
    functionName: "paysListing",
    args: [id, listingId],
  });
  return { pays, recipient, bps };
}

/** Decoded Payments events of a receipt. */
export function paymentsEvents(ctx: ChainContext, receipt: Parameters<typeof eventsOf>[1]) {
  return eventsOf(paymentsAbi, receipt, ctx.addresses.payments);
}

/** Reads every Payments event of one channel from `fromBlock` (indexed by channelId). */
export async function channelHistory(ctx: ChainContext, id: Hex, fromBlock = 0n) {
  try {
    const logs = await ctx.publicClient.getLogs({
      address: ctx.addresses.payments,
      fromBlock,
      toBlock: "latest",
    });
    return eventsOf(paymentsAbi, { logs } as never).filter(
      (e) => (e.args as { channelId?: Hex }).channelId?.toLowerCase() === id.toLowerCase(),
    );
  } catch (err) {
    throw explainError(err);
  }
}

export { waitForTransaction };
