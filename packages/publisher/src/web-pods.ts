// The web app's "my pods" from the chain: a browser has no pods.json, so a publisher's pods are found through the
// ChannelOpened events that name it, and each channel's money (deposit, accrued, remaining, time left) is read
// from the Payments contract. Top up and close are the channel operations any wallet can sign. Browser-safe.

import type { Libp2p } from "@libp2p/interface";
import {
  type ChainContext,
  type ChannelState,
  explainError as explainChainError,
  paymentsAbi,
  requestClose,
  topUp,
} from "@trustedpods/chain";
import {
  type Account,
  type Address,
  type Chain,
  getAbiItem,
  type Hex,
  type Transport,
  type WalletClient,
} from "viem";
import { PublisherError } from "./errors.js";
import { channelRunway, type PodConnection, podConnection } from "./pod-ops.js";
import { formatAmount, getOffer, parseTokenAmount, type TokenInfo, tokenInfo } from "./providers.js";

export interface PodChannel {
  podId: Hex;
  provider: Address;
  publisher: Address;
  channel: ChannelState;
  token: TokenInfo;
  /** Tokens the provider has earned so far (claimed or not). */
  accrued: bigint;
  /** deposit − accrued: what is left to run on. */
  remaining: bigint;
  /** Seconds of running left at the current rate (undefined when the rate is 0). */
  secondsLeft?: bigint;
  /** "open", "closing" (notice period running) or "closed". */
  state: "open" | "closing" | "closed";
  formatted: { deposit: string; accrued: string; remaining: string; perHour: string };
}

const MAX_CHANNELS = 200;
const channelOpened = getAbiItem({ abi: paymentsAbi, name: "ChannelOpened" });

/** Channels `publisher` opened on this Payments contract, newest first (at most 200). */
export async function loadPodChannels(ctx: ChainContext, publisher: Address): Promise<PodChannel[]> {
  let logs: { args: { podId?: Hex; provider?: Address } }[];
  try {
    logs = (await ctx.publicClient.getLogs({
      address: ctx.addresses.payments,
      event: channelOpened,
      args: { publisher },
      fromBlock: 0n,
      toBlock: "latest",
    })) as never;
  } catch (err) {
    throw explainChainError(err);
  }
  const out: PodChannel[] = [];
  for (const log of logs.slice(-MAX_CHANNELS).reverse()) {
    const { podId, provider } = log.args;
    if (!podId || !provider) continue;
    const key = { publisher, provider, podId };
    const { channel, spent, remaining, secondsLeft } = await channelRunway(ctx, key);
    const token = await tokenInfo(ctx.publicClient, channel.token);
    const state = channel.finalized ? "closed" : channel.closeAt !== 0n ? "closing" : "open";
    out.push({
      podId,
      provider,
      publisher,
      channel,
      token,
      accrued: spent,
      remaining,
      ...(secondsLeft !== undefined ? { secondsLeft } : {}),
      state,
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

/** "3 h 20 min" style, for time left. */
export function formatDuration(seconds: bigint): string {
  const s = Number(seconds > 10n ** 12n ? 10n ** 12n : seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
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
 * Starts the channel's notice period: the provider may still claim what accrues until then, and the rest comes
 * back to the publisher. (Stopping the pod itself is the provider's delete call, made by the SDK's deploy flow.)
 */
export async function closePodChannel(ctx: ChainContext, pod: PodChannel): Promise<Hex> {
  if (pod.state !== "open")
    throw new PublisherError("POD_RECORD", `pod ${pod.podId.slice(0, 10)}… is already ${pod.state}`);
  return (await requestClose(ctx, pod.provider, pod.podId)).hash;
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
