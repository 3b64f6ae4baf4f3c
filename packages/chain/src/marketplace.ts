import type { Address, Hex } from "viem";
import { type ChainContext, read, type Sent, send } from "./client.js";
import { eventsOf } from "./events.js";
import { marketplaceAbi } from "./gen/index.js";
import { paysListing } from "./payments.js";

export interface Listing {
  developer: Address;
  royaltyBps: number;
  allowEntrypointOverride: boolean;
  active: boolean;
  feeToken: Address;
  fixedFee: bigint;
  manifestDigest: Hex;
  metadataCid: string;
}

export interface CreateListingParams {
  /** sha256 digest of the encrypted image's OCI manifest, as 0x + 64 hex. */
  manifestDigest: Hex;
  metadataCid: string;
  royaltyBps: number;
  feeToken?: Address;
  fixedFee?: bigint;
  allowEntrypointOverride?: boolean;
}

const ZERO = "0x0000000000000000000000000000000000000000" as const;
const m = (ctx: ChainContext) => ({ address: ctx.addresses.marketplace, abi: marketplaceAbi });

/** Developer: creates a listing; resolves with its id. */
export async function createListing(
  ctx: ChainContext,
  params: CreateListingParams,
): Promise<Sent<bigint> & { listingId: bigint }> {
  const sent = await send<bigint>(ctx, {
    ...m(ctx),
    functionName: "createListing",
    args: [
      params.manifestDigest,
      params.metadataCid,
      params.royaltyBps,
      params.feeToken ?? ZERO,
      params.fixedFee ?? 0n,
      params.allowEntrypointOverride ?? false,
    ],
  });
  const created = eventsOf(marketplaceAbi, sent.receipt, ctx.addresses.marketplace).find(
    (e) => e.eventName === "ListingCreated",
  );
  const listingId = created ? (created.args as { listingId: bigint }).listingId : sent.result;
  return { ...sent, listingId };
}

export function updateTerms(
  ctx: ChainContext,
  listingId: bigint,
  royaltyBps: number,
  feeToken: Address = ZERO,
  fixedFee = 0n,
): Promise<Sent> {
  return send(ctx, {
    ...m(ctx),
    functionName: "updateTerms",
    args: [listingId, royaltyBps, feeToken, fixedFee],
  });
}

export function updateListingMetadata(
  ctx: ChainContext,
  listingId: bigint,
  metadataCid: string,
): Promise<Sent> {
  return send(ctx, { ...m(ctx), functionName: "updateMetadata", args: [listingId, metadataCid] });
}

export function setListingActive(ctx: ChainContext, listingId: bigint, active: boolean): Promise<Sent> {
  return send(ctx, { ...m(ctx), functionName: "setActive", args: [listingId, active] });
}

export function authorizeProvider(
  ctx: ChainContext,
  listingId: bigint,
  provider: Address,
  wrappedKeyCid: string,
): Promise<Sent> {
  return send(ctx, {
    ...m(ctx),
    functionName: "authorizeProvider",
    args: [listingId, provider, wrappedKeyCid],
  });
}

export function revokeProvider(ctx: ChainContext, listingId: bigint, provider: Address): Promise<Sent> {
  return send(ctx, { ...m(ctx), functionName: "revokeProvider", args: [listingId, provider] });
}

export function getListing(ctx: ChainContext, listingId: bigint): Promise<Listing> {
  return read(ctx, { ...m(ctx), functionName: "getListing", args: [listingId] });
}

export function isAuthorized(ctx: ChainContext, listingId: bigint, provider: Address): Promise<boolean> {
  return read(ctx, { ...m(ctx), functionName: "isAuthorized", args: [listingId, provider] });
}

export function wrappedKeyCid(ctx: ChainContext, listingId: bigint, provider: Address): Promise<string> {
  return read(ctx, { ...m(ctx), functionName: "wrappedKeyCid", args: [listingId, provider] });
}

export interface ListingCheck {
  ok: boolean;
  /** One line per listing the channel does not pay, or that does not authorize the provider. */
  problems: string[];
}

/**
 * Provider side: checks that channel `channelId` pays every listing used by a pod (its terms were enforced on
 * chain when the channel opened) and that `provider` is still authorized for each.
 */
export async function checkChannelListings(
  ctx: ChainContext,
  channelId: Hex,
  provider: Address,
  listingIds: readonly bigint[],
): Promise<ListingCheck> {
  const problems: string[] = [];
  for (const id of listingIds) {
    const [{ pays, recipient }, authorized, listing] = await Promise.all([
      paysListing(ctx, channelId, id),
      isAuthorized(ctx, id, provider),
      getListing(ctx, id),
    ]);
    if (!pays) problems.push(`channel does not pay listing ${id}`);
    else if (recipient.toLowerCase() !== listing.developer.toLowerCase()) {
      problems.push(`channel pays ${recipient} for listing ${id}, whose developer is ${listing.developer}`);
    }
    if (!authorized) problems.push(`provider ${provider} is not authorized for listing ${id}`);
  }
  return { ok: problems.length === 0, problems };
}
