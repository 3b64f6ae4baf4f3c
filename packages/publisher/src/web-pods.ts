// The web app's "my pods" from the chain: a browser has no pods.json, so a publisher's pods are found through the
// ChannelOpened events that name it, and each channel's money (deposit, accrued, remaining, time left) is read
// from the Payments contract. Top up and close are the channel operations any wallet can sign. Browser-safe.

import type { Libp2p } from "@libp2p/interface";
import { type ChainContext, type ChannelState, topUp } from "@trustedpods/chain";
import type { Account, Address, Chain, Hex, Transport, WalletClient } from "viem";
import { type CloseResult, closePod } from "./actions/close.js";
import { channelRunway } from "./actions/runway.js";
import { openedChannels, type Settlement, settlements } from "./channel-events.js";
import { type PodConnection, podConnection } from "./connection.js";
import { PublisherError } from "./errors.js";
import { formatAmount, formatDuration } from "./format.js";
import { getOffer, parseTokenAmount, type TokenInfo, tokenInfo } from "./providers.js";

export interface PodChannel {
  podId: Hex;
  provider: Address;
  publisher: Address;
  channelId: Hex;
  /** The channel's state on chain; absent once it settled (the contract then deletes it: see `settlement`). */
  channel?: ChannelState;
  token: TokenInfo;
  /** The channel's rate (at opening, for a settled channel). */
  ratePerSecond: bigint;
  /** Tokens the provider has earned so far (claimed or not); for a settled channel, what it got in all. */
  accrued: bigint;
  /** deposit − accrued: what is left to run on (0 once settled). */
  remaining: bigint;
  /** Seconds of running left at the current rate (undefined when the rate is 0 or the channel settled). */
  secondsLeft?: bigint;
  /** "open", "closing" (notice period running) or "closed" (settled: the provider paid, the rest refunded). */
  state: "open" | "closing" | "closed";
  /** A settled channel's final figures (ChannelFinalized). */
  settlement?: Settlement;
  formatted: { deposit: string; accrued: string; remaining: string; perHour: string; refunded?: string };
}

const MAX_POD_CHANNELS = 200;

/** Channels `publisher` opened on this Payments contract, newest first (at most 200). */
export async function loadPodChannels(ctx: ChainContext, publisher: Address): Promise<PodChannel[]> {
  const opened = (await openedChannels(ctx, { publisher })).slice(-MAX_POD_CHANNELS).reverse();
  const settled = await settlements(
    ctx,
    opened.map((o) => o.channelId),
  );
  const out: PodChannel[] = [];
  for (const o of opened) {
    const token = await tokenInfo(ctx.publicClient, o.token);
    const base = { podId: o.podId, provider: o.provider, publisher, channelId: o.channelId, token };
    const s = settled.get(o.channelId);
    if (s) {
      out.push({
        ...base,
        ratePerSecond: o.ratePerSecond,
        accrued: s.claimed,
        remaining: 0n,
        state: "closed",
        settlement: s,
        formatted: {
          deposit: formatAmount(s.deposit, token),
          accrued: formatAmount(s.claimed, token),
          remaining: formatAmount(0n, token),
          perHour: formatAmount(o.ratePerSecond * 3600n, token),
          refunded: formatAmount(s.refunded, token),
        },
      });
      continue;
    }
    const key = { publisher, provider: o.provider, podId: o.podId };
    const { channel, spent, remaining, secondsLeft } = await channelRunway(ctx, key);
    out.push({
      ...base,
      channel,
      ratePerSecond: channel.ratePerSecond,
      accrued: spent,
      remaining,
      ...(secondsLeft !== undefined ? { secondsLeft } : {}),
      state: channel.closeAt !== 0n ? "closing" : "open",
      formatted: {
        deposit: formatAmount(channel.deposit, token),
        accrued: formatAmount(spent, token),
        remaining: formatAmount(remaining, token),
        perHour: formatAmount(channel.ratePerSecond * 3600n, token),
      },
    });
  }
  return out;
}

/** Adds `amountText` (decimal, in the channel's token) to a pod's deposit; approves the token first if needed. */
export async function topUpPod(ctx: ChainContext, pod: PodChannel, amountText: string): Promise<Hex> {
  if (pod.state !== "open")
    throw new PublisherError(
      "POD_RECORD",
      `pod ${pod.podId.slice(0, 10)}… is ${pod.state}: it cannot be topped up`,
    );
  let amount: bigint;
  try {
    amount = parseTokenAmount(amountText, pod.token.decimals);
  } catch (err) {
    throw new PublisherError("POD_RECORD", `top-up amount: ${(err as Error).message}`, { field: "amount" });
  }
  if (amount <= 0n)
    throw new PublisherError("POD_RECORD", "top-up amount must be more than 0", { field: "amount" });
  return (await topUp(ctx, pod.provider, pod.podId, amount)).hash;
}

/**
 * The next step of closing a pod's channel, found on chain (no local record needed): an open channel starts its
 * notice period (the provider may still claim what accrues until then); a closing one whose notice has passed
 * settles the provider and refunds the rest to the publisher; before that it says how long is left. (Stopping
 * the pod itself is the provider's delete call.)
 */
export async function closePodChannel(ctx: ChainContext, pod: PodChannel): Promise<CloseResult> {
  if (pod.state === "closed")
    throw new PublisherError(
      "CHANNEL_CLOSED",
      `pod ${pod.podId.slice(0, 10)}… is already closed and refunded`,
    );
  return closePod(ctx, { provider: pod.provider, podId: pod.podId }, pod.publisher);
}

/** What a close step did, in words, with the channel's token. */
export function describeClose(r: CloseResult, token: TokenInfo): string {
  switch (r.state) {
    case "closing":
      return `Close requested: the provider can claim until ${new Date(Number(r.closeAt) * 1000).toLocaleString()}; then Refund returns about ${formatAmount(r.refundable, token)}.`;
    case "waiting":
      return `The notice period runs for ${formatDuration(r.secondsLeft)} more; Refund returns the rest after that.`;
    case "refunded":
      return `Refunded ${formatAmount(r.refunded, token)}; the provider got ${formatAmount(r.settlement.claimed, token)}.`;
    case "settled":
      return `Already settled: ${formatAmount(r.settlement.refunded, token)} was refunded.`;
  }
}

/**
 * The account that signs provider requests (status, logs, delete) for this connection: the dev key's local
 * account, or a browser wallet's account whose typed-data signatures go through the wallet (eth_signTypedData_v4).
 */
export function webPodSigner(
  wallet: WalletClient<Transport, Chain | undefined, Account> | undefined,
): PodSigner {
  if (!wallet)
    throw new PublisherError(
      "NO_KEY",
      "connect a wallet (or use the dev key on the devnet) to talk to your pods",
    );
  const account = wallet.account;
  if (account.signTypedData) return account as PodSigner;
  return {
    ...account,
    signTypedData: (td: Parameters<NonNullable<Account["signTypedData"]>>[0]) =>
      wallet.signTypedData({ ...(td as object), account } as never),
  } as unknown as PodSigner;
}

type PodSigner = PodConnection["signer"];

/** A connection to the pod's provider, at the addresses the Registry lists for it now. */
export async function podConnectionFor(
  ctx: ChainContext,
  node: Libp2p,
  pod: PodChannel,
  chainId: number,
  signer: PodSigner,
): Promise<PodConnection> {
  const offer = await getOffer(ctx, pod.provider);
  return podConnection(node, { provider: pod.provider, chainId }, signer, offer.multiaddrs);
}

/**
 * Calls the web app makes to one provider at once. A provider refuses more than 8 concurrent calls of one
 * protocol from one peer (RESOURCE_EXHAUSTED), and My pods asks about every pod when it opens: 4 leaves room
 * for the log streams and actions the user starts meanwhile.
 */
export const CALLS_PER_PROVIDER = 4;

/** Runs calls with at most `max` in flight per provider; the others wait their turn, first come first served. */
export class PerProviderLimit {
  private readonly lanes = new Map<string, { active: number; waiting: (() => void)[] }>();
  constructor(readonly max = CALLS_PER_PROVIDER) {}

  async run<T>(provider: Address, call: () => Promise<T>): Promise<T> {
    const id = provider.toLowerCase();
    let lane = this.lanes.get(id);
    if (!lane) {
      lane = { active: 0, waiting: [] };
      this.lanes.set(id, lane);
    }
    if (lane.active >= this.max) await new Promise<void>((go) => lane.waiting.push(go));
    else lane.active++;
    try {
      return await call();
    } finally {
      // Hand the slot straight to the next caller (active stays counted), or free it.
      const next = lane.waiting.shift();
      if (next) next();
      else if (--lane.active === 0) this.lanes.delete(id);
    }
  }
}

/** The web app's one limit for the status calls My pods makes. */
export const providerCalls = new PerProviderLimit();
