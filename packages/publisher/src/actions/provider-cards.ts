// The providers page: every registered provider with its token and its prices per whole resource-hour.
import type { ChainContext } from "@trustedpods/chain";
import { formatAmount } from "../format.js";
import { listOffers, type ProviderOffer, type TokenInfo, tokenInfo } from "../providers.js";

/** A provider as the providers page shows it: the Registry entry, its token and its price for a reference pod. */
export interface ProviderCard {
  offer: ProviderOffer;
  token: TokenInfo;
  /** Price per resource unit per hour, formatted ("0.0036 TPOD per CPU core-hour" style lines). */
  priceLines: string[];
}

const RESOURCE_LABEL: Record<string, { unit: string; per: bigint }> = {
  // The Registry prices per millicore-second, MiB-second, GiB-second and GPU-second; people read per hour of
  // a whole core, a GiB and a GPU.
  cpu: { unit: "CPU core-hour", per: 1000n * 3600n },
  memory: { unit: "GiB-hour of memory", per: 1024n * 3600n },
  storage: { unit: "GiB-hour of storage", per: 3600n },
  gpu: { unit: "GPU-hour", per: 3600n },
};

export async function loadProviderCards(ctx: ChainContext): Promise<ProviderCard[]> {
  const offers = await listOffers(ctx);
  return Promise.all(
    offers.map(async (offer) => {
      const token = await tokenInfo(ctx.publicClient, offer.pricing.token);
      const priceLines: string[] = [];
      for (const [res, label] of Object.entries(RESOURCE_LABEL)) {
        const p = (offer.pricing.prices as Record<string, bigint | undefined>)[res];
        if (p !== undefined) priceLines.push(`${formatAmount(p * label.per, token)} per ${label.unit}`);
      }
      return { offer, token, priceLines };
    }),
  );
}
