// Marketplace listings as the web app lists them, and which listings a pod uses.
import { type ChainContext, getListing, type Listing, marketplaceAbi, read } from "@trustedpods/chain";
import type { Pod } from "@trustedpods/protocol";

/** One marketplace listing with its id. */
export interface ListingRow extends Listing {
  id: bigint;
}

const MAX_LISTINGS = 500;

/** Every listing on the Marketplace (ids 1..listingCount, newest first, at most 500). */
export async function loadListings(ctx: ChainContext): Promise<ListingRow[]> {
  const count = await read<bigint>(ctx, {
    address: ctx.addresses.marketplace,
    abi: marketplaceAbi,
    functionName: "listingCount",
    args: [],
  });
  const rows: ListingRow[] = [];
  for (let id = count; id >= 1n && rows.length < MAX_LISTINGS; id--) {
    rows.push({ id, ...(await getListing(ctx, id)) });
  }
  return rows;
}

/** The listing ids a pod's images reference. */
export function listingIdsOf(pod: Pod): bigint[] {
  const ids = new Set<bigint>();
  for (const c of pod.containers) if (c.image.kind === "listing") ids.add(c.image.listingId);
  return [...ids];
}
