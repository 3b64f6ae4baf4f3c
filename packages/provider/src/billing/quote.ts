import {
  type ChainContext,
  domainOf,
  type Quote,
  type Royalty,
  royaltiesHash,
  signQuote,
  specHash,
  type TypedDataSigner,
} from "@trustedpods/chain";
import { RpcError } from "@trustedpods/p2p";
import {
  billedUnits,
  ErrorCode,
  type Pod,
  type PodPrice,
  type Pricing,
  podPrice,
} from "@trustedpods/protocol";
import { type Address, getAddress, type TypedDataDomain } from "viem";
import { listingTermsAt } from "./chain-read.js";
import type { BillingConfig, Hex } from "./types.js";

const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";

/** What a quote's rate prices: the spec hash of the pod's billed units (CPU, memory, storage, GPU, all replicas). */
export function podSpecHash(pod: Pod): Hex {
  return specHash(billedUnits(pod));
}

/** Listings a pod runs, ascending (each needs exactly one royalty entry in the channel). */
export function listingsOf(pod: Pod): bigint[] {
  const ids = new Set<bigint>();
  for (const c of pod.containers) if (c.image.kind === "listing") ids.add(c.image.listingId);
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The royalty list a channel for `pod` must carry, and the only one the provider signs: one entry per listing the
 * pod runs (ascending id), paying the listing's developer exactly its terms. A listing that does not exist, is
 * inactive or does not authorize this provider is refused (FAILED_PRECONDITION naming the listing): the provider
 * would not run it, so it quotes nothing for it.
 */
export async function royaltiesForPod(
  ctx: ChainContext,
  pod: Pod,
  provider: Address,
  blockNumber?: bigint,
): Promise<Royalty[]> {
  const out: Royalty[] = [];
  for (const listingId of listingsOf(pod)) {
    const t = await listingTermsAt(ctx, listingId, provider, blockNumber);
    const field = `listings[${listingId}]`;
    if (t.developer === ZERO_ADDRESS)
      throw new RpcError(ErrorCode.FAILED_PRECONDITION, `listing ${listingId} does not exist`, {
        details: { field },
      });
    if (!t.active)
      throw new RpcError(ErrorCode.FAILED_PRECONDITION, `listing ${listingId} is inactive`, {
        details: { field },
      });
    if (!t.authorized)
      throw new RpcError(
        ErrorCode.FAILED_PRECONDITION,
        `this provider (${provider}) is not authorized for listing ${listingId}: pick a provider the developer authorized`,
        { details: { field } },
      );
    out.push({ recipient: getAddress(t.developer), bps: t.royaltyBps, listingId });
  }
  const total = out.reduce((sum, r) => sum + r.bps, 0);
  if (total > 10_000)
    throw new RpcError(
      ErrorCode.FAILED_PRECONDITION,
      `the pod's listings take ${total} bps of every payment together, more than 100%: no channel can pay them all`,
      { details: { field: "royalties" } },
    );
  return out;
}

export interface QuoteParams {
  pod: Pod;
  pricing: Pricing;
  /** The provider's signer (its address is the quote's provider). */
  signer: TypedDataSigner & { address?: Address };
  provider: Address;
  publisher: Address;
  podId: Hex;
  minNoticeSeconds: number;
  /** The royalty list the channel must carry (royaltiesForPod); default none (a pod without listings). */
  royalties?: Royalty[];
  /** Chain time now (seconds) and how long the quote stays usable. */
  now: bigint;
  ttlSeconds: bigint;
}

export interface SignedQuote {
  quote: Quote;
  signature: Hex;
  price: PodPrice;
  royalties: Royalty[];
}

/**
 * Prices a pod from the provider's pricing table (bigint, per second) and signs the EIP-712 Quote the publisher
 * opens the channel with, bound to this publisher and pod id (both required: the contract refuses an unbound
 * quote), to the spec it priced and to the royalty list the channel must carry, with a short expiry.
 */
export async function quotePod(ctx: ChainContext, p: QuoteParams): Promise<SignedQuote> {
  return signPodQuote(p.signer, await domainOf(ctx), {
    pod: p.pod,
    price: podPrice(p.pod, p.pricing),
    royalties: p.royalties ?? [],
    provider: p.provider,
    publisher: p.publisher,
    podId: p.podId,
    token: p.pricing.token as Address,
    minNoticeSeconds: p.minNoticeSeconds,
    expiry: p.now + p.ttlSeconds,
  });
}

/** Signs the EIP-712 Quote for a priced pod in a Payments domain (the daemon's quote handler and quotePod). */
export async function signPodQuote(
  signer: TypedDataSigner,
  domain: TypedDataDomain,
  p: {
    pod: Pod;
    price: PodPrice;
    royalties: Royalty[];
    provider: Address;
    publisher: Address;
    podId: Hex;
    token: Address;
    minNoticeSeconds: number;
    expiry: bigint;
  },
): Promise<SignedQuote> {
  const quote: Quote = {
    provider: p.provider,
    publisher: p.publisher,
    podId: p.podId,
    token: p.token,
    ratePerSecond: p.price.perSecond,
    minNoticeSeconds: p.minNoticeSeconds,
    expiry: p.expiry,
    specHash: podSpecHash(p.pod),
    royaltiesHash: royaltiesHash(p.royalties),
  };
  const signature = await signQuote(signer, domain, quote);
  return { quote, signature, price: p.price, royalties: p.royalties };
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
