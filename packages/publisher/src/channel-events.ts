/**
 * What the Payments contract's events say about channels, for when the chain must be the record: a publisher's
 * pods deployed elsewhere (the web app, another machine), the real figures of a settled channel (the contract
 * deletes a channel's state when it settles, so its view reads zeros), and a provider's earnings over every
 * channel it ever had. Browser-safe.
 */
import {
  balanceOf,
  type ChainContext,
  claimable,
  explainError,
  getChannel,
  paymentsAbi,
} from "@trustedpods/chain";
import { type Address, getAddress, type Hex } from "viem";

/** A channel as its ChannelOpened event recorded it. */
export interface OpenedChannel {
  channelId: Hex;
  publisher: Address;
  provider: Address;
  podId: Hex;
  token: Address;
  /** The rate and deposit at opening (later top-ups and rate changes are other events). */
  ratePerSecond: bigint;
  deposit: bigint;
  noticeSeconds: number;
  blockNumber: bigint;
}

/** A settled channel's final figures (ChannelFinalized): what the provider got in all, what came back. */
export interface Settlement {
  /** Everything the provider (and royalties) got from the channel over its life. */
  claimed: bigint;
  refunded: bigint;
  /** claimed + refunded: the channel's whole deposit at the end. */
  deposit: bigint;
}

/** Most channels read for one account: bounds the work a long history costs. */
export const MAX_CHANNELS = 1000;
/** Channel ids per getLogs filter (an OR over the indexed channelId topic). */
const IDS_PER_QUERY = 100;

const lower = (h: Hex) => h.toLowerCase() as Hex;

async function events<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw explainError(err);
  }
}

/**
 * Channels opened by `publisher` and/or to `provider` (both are indexed), oldest first, at most MAX_CHANNELS
 * (the newest).
 */
export async function openedChannels(
  ctx: ChainContext,
  by: { publisher?: Address; provider?: Address },
): Promise<OpenedChannel[]> {
  const logs = await events(() =>
    ctx.publicClient.getContractEvents({
      address: ctx.addresses.payments,
      abi: paymentsAbi,
      eventName: "ChannelOpened",
      args: {
        ...(by.publisher ? { publisher: by.publisher } : {}),
        ...(by.provider ? { provider: by.provider } : {}),
      },
      fromBlock: 0n,
      toBlock: "latest",
    }),
  );
  const out: OpenedChannel[] = [];
  for (const l of logs.slice(-MAX_CHANNELS)) {
    const a = l.args;
    if (!a.channelId || !a.publisher || !a.provider || !a.podId || !a.token) continue;
    out.push({
      channelId: lower(a.channelId),
      publisher: getAddress(a.publisher),
      provider: getAddress(a.provider),
      podId: lower(a.podId),
      token: getAddress(a.token),
      ratePerSecond: a.ratePerSecond ?? 0n,
      deposit: a.deposit ?? 0n,
      noticeSeconds: Number(a.noticeSeconds ?? 0),
      blockNumber: l.blockNumber ?? 0n,
    });
  }
  return out;
}

/** Runs one getLogs per chunk of channel ids (an OR filter on the indexed topic). */
async function byChannel<T>(ids: readonly Hex[], query: (chunk: Hex[]) => Promise<T[]>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < ids.length; i += IDS_PER_QUERY)
    out.push(...(await events(() => query(ids.slice(i, i + IDS_PER_QUERY) as Hex[]))));
  return out;
}

/** The settlement of each of these channels that has settled (a channel id settles at most once). */
export async function settlements(ctx: ChainContext, ids: readonly Hex[]): Promise<Map<Hex, Settlement>> {
  const logs = await byChannel(ids, (chunk) =>
    ctx.publicClient.getContractEvents({
      address: ctx.addresses.payments,
      abi: paymentsAbi,
      eventName: "ChannelFinalized",
      args: { channelId: chunk },
      fromBlock: 0n,
      toBlock: "latest",
    }),
  );
  const out = new Map<Hex, Settlement>();
  for (const l of logs) {
    const { channelId, claimed = 0n, refund = 0n } = l.args;
    if (channelId) out.set(lower(channelId), { claimed, refunded: refund, deposit: claimed + refund });
  }
  return out;
}

/** What the claims of each channel paid: in all (royalties included) and to the provider alone. */
export interface ClaimTotals {
  amount: bigint;
  providerAmount: bigint;
}

export async function claimTotals(ctx: ChainContext, ids: readonly Hex[]): Promise<Map<Hex, ClaimTotals>> {
  const logs = await byChannel(ids, (chunk) =>
    ctx.publicClient.getContractEvents({
      address: ctx.addresses.payments,
      abi: paymentsAbi,
      eventName: "Claimed",
      args: { channelId: chunk },
      fromBlock: 0n,
      toBlock: "latest",
    }),
  );
  const out = new Map<Hex, ClaimTotals>();
  for (const l of logs) {
    const { channelId, amount = 0n, providerAmount = 0n } = l.args;
    if (!channelId) continue;
    const t = out.get(lower(channelId)) ?? { amount: 0n, providerAmount: 0n };
    out.set(lower(channelId), {
      amount: t.amount + amount,
      providerAmount: t.providerAmount + providerAmount,
    });
  }
  return out;
}

/** Everything `account` withdrew of `token` from Payments (Withdrawn events). */
export async function withdrawnTotal(ctx: ChainContext, account: Address, token: Address): Promise<bigint> {
  const logs = await events(() =>
    ctx.publicClient.getContractEvents({
      address: ctx.addresses.payments,
      abi: paymentsAbi,
      eventName: "Withdrawn",
      args: { account, token },
      fromBlock: 0n,
      toBlock: "latest",
    }),
  );
  return logs.reduce((s, l) => s + (l.args.amount ?? 0n), 0n);
}

/** One channel a provider was paid through, as the chain has it now (or had it when it settled). */
export interface ProviderChannelEarning {
  podId: Hex;
  publisher: Address;
  channelId: Hex;
  state: "open" | "closing" | "settled";
  /** The deposit now, or at settlement. */
  deposit: bigint;
  ratePerSecond: bigint;
  /** Everything claimed from the channel so far, royalties included. */
  claimed: bigint;
  /** The provider's own share of `claimed`. */
  providerAmount: bigint;
  /** Accrued and not claimed yet (0 once settled). */
  claimable: bigint;
  /** What went back to the publisher at settlement. */
  refunded?: bigint;
  /** Closing or settled. */
  closed: boolean;
}

/**
 * A provider's earnings in one token from the chain's events, every channel it was ever paid through included
 * (settled ones too), so the totals add up: `earned` (its share of every claim) = `withdrawn` + `withdrawable`,
 * less whatever else was credited to the same account (royalties or fees it earned as a developer).
 */
export interface ProviderEarnings {
  provider: Address;
  token: Address;
  /** The provider's share of every claim on its channels. */
  earned: bigint;
  /** Every claim on its channels, royalties included. */
  claimedTotal: bigint;
  /** Moved from Payments to the provider's wallet so far (Withdrawn events). */
  withdrawn: bigint;
  /** Its balance inside Payments now: what `withdraw` moves. */
  withdrawable: bigint;
  channels: ProviderChannelEarning[];
}

export async function providerEarnings(
  ctx: ChainContext,
  provider: Address,
  token: Address,
): Promise<ProviderEarnings> {
  const opened = (await openedChannels(ctx, { provider })).filter(
    (c) => c.token.toLowerCase() === token.toLowerCase(),
  );
  const ids = opened.map((c) => c.channelId);
  const [settled, claims, withdrawn, withdrawable] = await Promise.all([
    settlements(ctx, ids),
    claimTotals(ctx, ids),
    withdrawnTotal(ctx, provider, token),
    events(() => balanceOf(ctx, provider, token)),
  ]);
  const channels: ProviderChannelEarning[] = [];
  for (const o of opened) {
    const paid = claims.get(o.channelId) ?? { amount: 0n, providerAmount: 0n };
    const s = settled.get(o.channelId);
    const base = {
      podId: o.podId,
      publisher: o.publisher,
      channelId: o.channelId,
      claimed: paid.amount,
      providerAmount: paid.providerAmount,
    };
    if (s) {
      channels.push({
        ...base,
        state: "settled",
        deposit: s.deposit,
        ratePerSecond: o.ratePerSecond,
        claimable: 0n,
        refunded: s.refunded,
        closed: true,
      });
      continue;
    }
    const key = { publisher: o.publisher, provider, podId: o.podId };
    const [ch, due] = await events(() => Promise.all([getChannel(ctx, key), claimable(ctx, key)]));
    channels.push({
      ...base,
      state: ch.closeAt !== 0n ? "closing" : "open",
      deposit: ch.deposit,
      ratePerSecond: ch.ratePerSecond,
      claimable: due,
      closed: ch.closeAt !== 0n,
    });
  }
  return {
    provider,
    token,
    earned: channels.reduce((t, c) => t + c.providerAmount, 0n),
    claimedTotal: channels.reduce((t, c) => t + c.claimed, 0n),
    withdrawn,
    withdrawable,
    channels,
  };
}
