/**
 * Provider discovery: registered providers from the Registry with their pricing tables, filtered by region, TEE
 * type, token and price, and priced for a pod with the same bigint math the provider bills with (podPrice).
 */
import {
  type ChainContext,
  findProviders,
  getProvider,
  isRegistered,
  listProviders,
  type ProviderInfo,
  Resource,
} from "@trustedpods/chain";
import {
  type Pod,
  type PodPrice,
  type PricedResource,
  type Pricing,
  PricingError,
  podPrice,
} from "@trustedpods/protocol";
import { type Address, erc20Abi, getAddress, type Hex, type PublicClient, parseUnits } from "viem";
import { PublisherError } from "./errors.js";

export interface ProviderOffer {
  address: Address;
  name: string;
  regions: string[];
  teeTypes: string[];
  multiaddrs: string[];
  metadataCid: string;
  minNoticeSeconds: number;
  /** Prices in the provider's token (base units per unit per second). */
  pricing: Pricing & { token: Address };
  registeredAt: bigint;
  updatedAt: bigint;
  /** The release id the provider declares it runs (zero: none). Its evidence is what counts. */
  release: Hex;
}

export interface ProviderFilter {
  region?: string;
  /** TEE type as the Registry spells it, e.g. "sev-snp", "tdx", "insecure-dev". */
  teeType?: string;
  token?: Address;
}

export interface PricedOffer extends ProviderOffer {
  /** The pod's price with this provider, when a pod was given and the provider offers every resource it needs. */
  price?: PodPrice;
  /** Whether the provider can take the pod within the price limit. */
  fits: boolean;
  /** Why it does not fit. */
  reason?: string;
}

export interface TokenInfo {
  address: Address;
  symbol: string;
  decimals: number;
}

const SECONDS_PER_HOUR = 3600n;

const CHAIN_RESOURCE: Record<PricedResource, number> = {
  cpu: Resource.cpu,
  memory: Resource.memory,
  storage: Resource.storage,
  gpu: Resource.gpu,
};

/** A Registry entry in the SDK's shape: the pricing table keyed by resource name. */
export function offerFromRegistry(info: ProviderInfo): ProviderOffer {
  const prices: Pricing["prices"] = {};
  for (const [name, id] of Object.entries(CHAIN_RESOURCE) as [PricedResource, number][]) {
    const p = info.prices.find((x) => Number(x.resource) === id);
    if (p) prices[name] = p.pricePerUnitSecond;
  }
  return {
    address: getAddress(info.provider),
    name: info.name,
    regions: [...info.regions],
    teeTypes: [...info.teeTypes],
    multiaddrs: [...info.multiaddrs],
    metadataCid: info.metadataCid,
    minNoticeSeconds: Number(info.minNoticeSeconds),
    pricing: { token: getAddress(info.token), prices },
    registeredAt: info.registeredAt,
    updatedAt: info.updatedAt,
    release: info.release,
  };
}

/** Registered providers matching the filter (the Registry filters on chain; empty fields match all). */
export async function listOffers(ctx: ChainContext, filter: ProviderFilter = {}): Promise<ProviderOffer[]> {
  const any = filter.region || filter.teeType || filter.token;
  const infos = any ? await findProviders(ctx, filter) : await listProviders(ctx);
  return infos.map(offerFromRegistry);
}

/** One provider's entry; PROVIDER_NOT_FOUND when the address is not registered. */
export async function getOffer(ctx: ChainContext, provider: Address): Promise<ProviderOffer> {
  if (!(await isRegistered(ctx, provider)))
    throw new PublisherError("PROVIDER_NOT_FOUND", `${provider} is not a registered provider`);
  return offerFromRegistry(await getProvider(ctx, provider));
}

export interface PriceOptions {
  /**
   * Upper bound on the pod's price per hour in token base units (providers above it do not fit); a function
   * gives one bound per token (e.g. "0.5 tokens" in each token's own decimals).
   */
  maxPerHour?: bigint | ((token: Address) => bigint);
}

/**
 * Prices `pod` on every offer. Offers that lack a resource the pod needs, or cost more than `maxPerHour`, are
 * kept with `fits: false` and a reason. The result is sorted: fitting offers first, cheapest first, then by address.
 */
export function priceOffers(
  offers: ProviderOffer[],
  pod: Pod | undefined,
  options: PriceOptions = {},
): PricedOffer[] {
  const priced = offers.map((offer): PricedOffer => {
    if (!pod) return { ...offer, fits: true };
    let price: PodPrice;
    try {
      price = podPrice(pod, offer.pricing);
    } catch (err) {
      if (err instanceof PricingError) return { ...offer, fits: false, reason: err.message };
      throw err;
    }
    const max =
      typeof options.maxPerHour === "function" ? options.maxPerHour(offer.pricing.token) : options.maxPerHour;
    if (max !== undefined && price.perSecond * SECONDS_PER_HOUR > max) {
      return { ...offer, price, fits: false, reason: "above the maximum price" };
    }
    return { ...offer, price, fits: true };
  });
  return priced.sort(compareOffers);
}

function compareOffers(a: PricedOffer, b: PricedOffer): number {
  if (a.fits !== b.fits) return a.fits ? -1 : 1;
  const pa = a.price?.perSecond;
  const pb = b.price?.perSecond;
  if (pa !== undefined && pb !== undefined && pa !== pb) return pa < pb ? -1 : 1;
  return a.address.toLowerCase() < b.address.toLowerCase() ? -1 : a.address === b.address ? 0 : 1;
}

/**
 * The cheapest offer that fits. Prices in different tokens cannot be compared: when the fitting offers use more
 * than one token and none was chosen, this fails with AMBIGUOUS_TOKEN listing them.
 */
export function cheapestOffer(priced: PricedOffer[], token?: Address): PricedOffer {
  const fitting = priced.filter(
    (o) =>
      o.fits && o.price && (token === undefined || o.pricing.token.toLowerCase() === token.toLowerCase()),
  );
  if (fitting.length === 0) {
    const why = priced
      .slice(0, 5)
      .map((o) => `${o.name} (${o.address}): ${o.reason ?? "other token"}`)
      .join("; ");
    throw new PublisherError(
      "NO_PROVIDER_FITS",
      priced.length === 0
        ? "no registered provider matches the filters"
        : `none of the ${priced.length} matching provider(s) fits the pod: ${why}`,
    );
  }
  const tokens = [...new Set(fitting.map((o) => o.pricing.token))];
  if (tokens.length > 1) {
    throw new PublisherError(
      "AMBIGUOUS_TOKEN",
      `fitting providers price in ${tokens.length} tokens (${tokens.join(", ")}): choose one with a token filter`,
    );
  }
  return fitting.reduce((best, o) => (o.price!.perSecond < best.price!.perSecond ? o : best));
}

/** The pod's price per hour with this offer, in token base units. */
export function perHour(price: PodPrice): bigint {
  return price.perSecond * SECONDS_PER_HOUR;
}

/**
 * Reads an ERC-20's symbol and decimals (cached per client and token). A token that does not answer is shown in
 * base units: symbol "units", decimals 0.
 */
export async function tokenInfo(client: PublicClient, token: Address): Promise<TokenInfo> {
  const key = `${client.chain?.id ?? "?"}:${token.toLowerCase()}`;
  const cached = tokenCache.get(key);
  if (cached) return cached;
  let info: TokenInfo;
  try {
    const [symbol, decimals] = await Promise.all([
      client.readContract({ address: token, abi: erc20Abi, functionName: "symbol" }),
      client.readContract({ address: token, abi: erc20Abi, functionName: "decimals" }),
    ]);
    const safeSymbol = /^[\w.$-]{1,16}$/.test(symbol) ? symbol : "tokens";
    info = { address: token, symbol: safeSymbol, decimals: Math.min(Number(decimals), 77) };
  } catch {
    info = { address: token, symbol: "units", decimals: 0 };
  }
  tokenCache.set(key, info);
  return info;
}
const tokenCache = new Map<string, TokenInfo>();

/** "0.036" with 18 decimals → 36000000000000000n; PublisherError-free RangeError on malformed input. */
export function parseTokenAmount(text: string, decimals: number): bigint {
  const t = text.trim();
  if (!/^\d+(\.\d+)?$/.test(t)) throw new RangeError(`"${text}" is not a decimal amount`);
  const frac = t.split(".")[1] ?? "";
  if (frac.length > decimals) throw new RangeError(`"${text}" has more than ${decimals} decimals`);
  return parseUnits(t, decimals);
}
