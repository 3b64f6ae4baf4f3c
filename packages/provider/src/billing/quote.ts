import { type ChainContext, type Quote, signQuoteFor, type TypedDataSigner } from "@trustedpods/chain";
import { type Pod, type PodPrice, type Pricing, podPrice } from "@trustedpods/protocol";
import type { Address } from "viem";
import type { Hex } from "./types.js";

export interface QuoteParams {
  pod: Pod;
  pricing: Pricing;
  /** The provider's signer (its address is the quote's provider). */
  signer: TypedDataSigner & { address?: Address };
  provider: Address;
  publisher: Address;
  podId: Hex;
  minNoticeSeconds: number;
  /** Chain time now (seconds) and how long the quote stays usable. */
  now: bigint;
  ttlSeconds: bigint;
}

export interface SignedQuote {
  quote: Quote;
  signature: Hex;
  price: PodPrice;
}

/**
 * Prices a pod from the provider's pricing table (bigint, per second) and signs the EIP-712 Quote the publisher
 * opens the channel with, bound to this publisher and pod id, with a short expiry.
 */
export async function quotePod(ctx: ChainContext, p: QuoteParams): Promise<SignedQuote> {
  const price = podPrice(p.pod, p.pricing);
  const quote: Quote = {
    provider: p.provider,
    publisher: p.publisher,
    podId: p.podId,
    token: p.pricing.token as Address,
    ratePerSecond: price.perSecond,
    minNoticeSeconds: p.minNoticeSeconds,
    expiry: p.now + p.ttlSeconds,
  };
  const signature = await signQuoteFor(ctx, p.signer, quote);
  return { quote, signature, price };
}
