import {
  type ChainContext,
  ChainError,
  type ChannelKey,
  type ChannelState,
  channelId,
  explainError,
  marketplaceAbi,
  paymentsAbi,
  type Royalty,
} from "@trustedpods/chain";
import type { Abi, Address } from "viem";
import { ChainUnavailableError } from "./errors.js";
import type { Hex } from "./types.js";

/** A block the provider decides on: its number and its timestamp (chain time, seconds). */
export interface ChainPoint {
  number: bigint;
  time: bigint;
}

/** Contract reverts stay ChainError; everything else (RPC down, timeouts, bad JSON) becomes ChainUnavailableError. */
export function asChainFailure(err: unknown, what: string): Error {
  const e = explainError(err);
  if (e instanceof ChainError || e instanceof ChainUnavailableError) return e;
  const msg = e instanceof Error ? (e.message.split("\n")[0] ?? e.message) : String(e);
  return new ChainUnavailableError(`cannot ${what}: ${msg}`, { cause: err });
}

async function readAt<T>(
  ctx: ChainContext,
  call: { address: Address; abi: Abi; functionName: string; args: readonly unknown[] },
  blockNumber: bigint | undefined,
  what: string,
): Promise<T> {
  try {
    return (await ctx.publicClient.readContract({
      ...call,
      ...(blockNumber !== undefined ? { blockNumber } : {}),
    } as never)) as T;
  } catch (err) {
    throw asChainFailure(err, what);
  }
}

/** The latest block and the block `confirmations` below it (what the provider decides on). */
export async function chainPoints(
  ctx: ChainContext,
  confirmations: number,
): Promise<{ head: ChainPoint; confirmed: ChainPoint }> {
  try {
    const head = await ctx.publicClient.getBlock({ blockTag: "latest" });
    const headPoint = { number: head.number, time: head.timestamp };
    if (confirmations <= 0) return { head: headPoint, confirmed: headPoint };
    const n = head.number > BigInt(confirmations) ? head.number - BigInt(confirmations) : 0n;
    const b = await ctx.publicClient.getBlock({ blockNumber: n });
    return { head: headPoint, confirmed: { number: b.number, time: b.timestamp } };
  } catch (err) {
    throw asChainFailure(err, "read the chain head");
  }
}

/** getChannel at a given block (undefined = latest). */
export async function channelAt(
  ctx: ChainContext,
  key: ChannelKey,
  blockNumber: bigint | undefined,
): Promise<ChannelState> {
  const v = await readAt<Omit<ChannelState, "id">>(
    ctx,
    {
      address: ctx.addresses.payments,
      abi: paymentsAbi,
      functionName: "getChannel",
      args: [key.publisher, key.provider, key.podId],
    },
    blockNumber,
    "read the payment channel",
  );
  return { id: channelId(key), ...v };
}

/**
 * Channels per eth_call of `channelsAt`. Deployless code returns its results as the "deployed code" of a contract
 * creation, which nodes cap at 24,576 bytes (EIP-170); a getChannel entry takes ~512 bytes of aggregate3's answer.
 */
const CHANNELS_PER_CALL = 40;

/**
 * getChannel of many channels at one block, one eth_call per CHANNELS_PER_CALL channels, the calls concurrent (Multicall3's aggregate3
 * run as deployless code, so no contract needs to be deployed on the chain). What the billing tick reads for every
 * pod: one RPC round trip per call instead of one per channel. Each entry is the channel or, when that one read
 * failed, the error (a failed eth_call fails all of its channels alike).
 */
export async function channelsAt(
  ctx: ChainContext,
  keys: readonly ChannelKey[],
  blockNumber: bigint | undefined,
): Promise<(ChannelState | Error)[]> {
  const chunks: ChannelKey[][] = [];
  for (let i = 0; i < keys.length; i += CHANNELS_PER_CALL) chunks.push(keys.slice(i, i + CHANNELS_PER_CALL));
  return (await Promise.all(chunks.map((chunk) => channelChunkAt(ctx, chunk, blockNumber)))).flat();
}

async function channelChunkAt(
  ctx: ChainContext,
  chunk: readonly ChannelKey[],
  blockNumber: bigint | undefined,
): Promise<(ChannelState | Error)[]> {
  let results: { status: "success" | "failure"; result?: unknown; error?: Error }[];
  try {
    results = (await ctx.publicClient.multicall({
      contracts: chunk.map((key) => ({
        address: ctx.addresses.payments,
        abi: paymentsAbi,
        functionName: "getChannel",
        args: [key.publisher, key.provider, key.podId],
      })),
      deployless: true,
      batchSize: 0,
      ...(blockNumber !== undefined ? { blockNumber } : {}),
    } as never)) as typeof results;
  } catch (err) {
    const e = asChainFailure(err, "read the payment channels");
    return chunk.map(() => e);
  }
  return chunk.map((key, j) => {
    const r = results[j];
    return r?.status === "success"
      ? { id: channelId(key), ...(r.result as Omit<ChannelState, "id">) }
      : asChainFailure(r?.error ?? new Error("no result"), "read the payment channel");
  });
}

export interface ListingPayment {
  pays: boolean;
  recipient: Address;
  bps: number;
  developer: Address;
  royaltyBps: number;
  active: boolean;
  authorized: boolean;
}

/** What a channel pays for one listing and the listing's current state, at a given block. */
export async function listingPaymentAt(
  ctx: ChainContext,
  id: Hex,
  listingId: bigint,
  provider: Address,
  blockNumber: bigint | undefined,
): Promise<ListingPayment> {
  const [[pays, recipient, bps], [developer, royaltyBps, , , active, authorized]] = await Promise.all([
    readAt<readonly [boolean, Address, number]>(
      ctx,
      {
        address: ctx.addresses.payments,
        abi: paymentsAbi,
        functionName: "paysListing",
        args: [id, listingId],
      },
      blockNumber,
      `read the channel's royalty for listing ${listingId}`,
    ),
    // terms() answers for unknown listings too (zero developer) instead of reverting like getListing().
    readAt<readonly [Address, number, Address, bigint, boolean, boolean]>(
      ctx,
      {
        address: ctx.addresses.marketplace,
        abi: marketplaceAbi,
        functionName: "terms",
        args: [listingId, provider],
      },
      blockNumber,
      `read the terms of listing ${listingId}`,
    ),
  ]);
  return {
    pays,
    recipient,
    bps,
    developer,
    royaltyBps,
    active,
    authorized,
  };
}

/** The royalty entries a channel carries, at a given block. */
export async function royaltiesAt(
  ctx: ChainContext,
  id: Hex,
  blockNumber: bigint | undefined,
): Promise<readonly Royalty[]> {
  return readAt<readonly Royalty[]>(
    ctx,
    { address: ctx.addresses.payments, abi: paymentsAbi, functionName: "getRoyalties", args: [id] },
    blockNumber,
    "read the channel's royalties",
  );
}

export interface ListingTerms {
  developer: Address;
  royaltyBps: number;
  active: boolean;
  authorized: boolean;
}

/** A listing's current terms for this provider (a zero developer: no such listing), at a given block. */
export async function listingTermsAt(
  ctx: ChainContext,
  listingId: bigint,
  provider: Address,
  blockNumber: bigint | undefined,
): Promise<ListingTerms> {
  const [developer, royaltyBps, , , active, authorized] = await readAt<
    readonly [Address, number, Address, bigint, boolean, boolean]
  >(
    ctx,
    {
      address: ctx.addresses.marketplace,
      abi: marketplaceAbi,
      functionName: "terms",
      args: [listingId, provider],
    },
    blockNumber,
    `read the terms of listing ${listingId}`,
  );
  return { developer, royaltyBps, active, authorized };
}
