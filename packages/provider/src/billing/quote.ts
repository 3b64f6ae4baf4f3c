import { type ChainContext, type Quote, signQuoteFor, type TypedDataSigner } from "@trustedpods/chain";
import { type Pod, type PodPrice, type Pricing, podPrice } from "@trustedpods/protocol";
import type { Address } from "viem";
import type { BillingConfig, Hex } from "./types.js";

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

/**
 * The billing terms a quote carries next to the signed ones (Quote.min_deposit_seconds, Quote.confirmations),
 * so a publisher can meet them before it opens a channel. Unsigned: the Payments contract does not enforce
 * them (the gate below does), and they travel over the libp2p stream of the peer the publisher attested.
 */
export interface QuoteTerms {
  /** A new channel's deposit must pay at least this long at the quoted rate. */
  minDepositSeconds: bigint;
  /** Blocks on top of the channel's block before the provider accepts it. */
  confirmations: number;
}

/**
 * What the daemon's payment gate enforces: the running billing's config when there is one (tests may override
 * it), else the config file's `billing.minDepositSeconds` and `chain.confirmations`.
 */
export function quoteTerms(
  billing: Pick<BillingConfig, "minRunSeconds" | "confirmations"> | undefined,
  config: { billing: { minDepositSeconds: number }; chain: { confirmations: number } },
): QuoteTerms {
  if (billing)
    return { minDepositSeconds: billing.minRunSeconds, confirmations: Math.max(0, billing.confirmations) };
  return {
    minDepositSeconds: BigInt(config.billing.minDepositSeconds),
    confirmations: Math.max(0, config.chain.confirmations),
  };
}
