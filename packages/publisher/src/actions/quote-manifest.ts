// A manifest priced on every registered provider, each price split into the provider's and the developers'
// parts when the pod runs marketplace listings.
import { type ChainContext, getListing } from "@trustedpods/chain";
import { checkManifest, type ManifestCheck, type Pod } from "@trustedpods/protocol";
import { formatAmount } from "../format.js";
import {
  listOffers,
  type PricedOffer,
  perHour,
  priceOffers,
  type TokenInfo,
  tokenInfo,
} from "../providers.js";
import { type ListingRow, listingIdsOf } from "./load-listings.js";

export interface PriceBreakdownRow {
  offer: PricedOffer;
  token: TokenInfo;
  /** Whole pod per hour, formatted; absent when the provider does not fit. */
  perHour?: string;
  /** The developers' part of each payment per hour (royalties), formatted. */
  developerPerHour?: string;
  providerPerHour?: string;
}

export interface ManifestQuote {
  check: ManifestCheck;
  pod?: Pod;
  listings: ListingRow[];
  /** Total royalty in basis points over all listings the pod uses (what the developers take of each payment). */
  royaltyBps: number;
  /** Shown whenever the pod uses marketplace software. */
  marketplaceWarning?: string;
  rows: PriceBreakdownRow[];
}

/**
 * Checks a manifest and prices it on every registered provider, splitting each price into the provider's and
 * the developers' parts for listing images. Manifest problems come back in `check` (with line numbers).
 */
export async function quoteManifest(
  ctx: ChainContext,
  text: string,
  file = "pod.yaml",
): Promise<ManifestQuote> {
  const check = checkManifest(text, file);
  if (!check.pod) return { check, listings: [], royaltyBps: 0, rows: [] };
  const pod = check.pod;
  const listings: ListingRow[] = [];
  for (const id of listingIdsOf(pod)) listings.push({ id, ...(await getListing(ctx, id)) });
  const royaltyBps = listings.reduce((s, l) => s + l.royaltyBps, 0);
  const priced = priceOffers(await listOffers(ctx), pod);
  const rows: PriceBreakdownRow[] = [];
  for (const offer of priced) {
    const token = await tokenInfo(ctx.publicClient, offer.pricing.token);
    if (!offer.price || !offer.fits) {
      rows.push({ offer, token });
      continue;
    }
    const hour = perHour(offer.price);
    const dev = (hour * BigInt(royaltyBps)) / 10_000n;
    rows.push({
      offer,
      token,
      perHour: formatAmount(hour, token),
      developerPerHour: formatAmount(dev, token),
      providerPerHour: formatAmount(hour - dev, token),
    });
  }
  const inactive = listings.filter((l) => !l.active).map((l) => `#${l.id}`);
  const marketplaceWarning =
    listings.length === 0
      ? undefined
      : `This pod runs marketplace software (listing ${listings.map((l) => `#${l.id}`).join(", ")}): ` +
        `${(royaltyBps / 100).toFixed(2)}% of every payment goes to the developer, only providers the developer ` +
        `authorized can run it, and its entrypoint and command cannot be changed.` +
        (inactive.length ? ` Listing ${inactive.join(", ")} is not active: deploying it will fail.` : "");
  return {
    check,
    pod,
    listings,
    royaltyBps,
    rows,
    ...(marketplaceWarning ? { marketplaceWarning } : {}),
  };
}
