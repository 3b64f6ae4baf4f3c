// Marketplace listings from the publisher's side (browser-safe): browse listings, and what a pod that uses
// listings requires of its payment channel and provider (docs/marketplace.md).
import {
  type ChainContext,
  getListing,
  type Listing,
  marketplaceAbi,
  paymentsAbi,
  type Royalty,
} from "@trustedpods/chain";
import { checkManifest, type Pod } from "@trustedpods/protocol";
import { type Address, getAddress } from "viem";

export type MarketErrorCode =
  /** A listing is missing, inactive, or its metadata is not a listing document. */
  | "INVALID_LISTING"
  /** The chosen provider is not authorized for every listing the pod uses. */
  | "PROVIDER_NOT_AUTHORIZED"
  /** A developer operation failed (image, key, envelope, IPFS). */
  | "DEVELOPER"
  /** No IPFS node or gateway the client knows served the listing's metadata (intact). */
  | "METADATA_UNAVAILABLE";

/** Every failure the marketplace SDK raises on purpose; codes are stable, messages say what to do. */
export class MarketError extends Error {
  override readonly name = "MarketError";
  constructor(
    readonly code: MarketErrorCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }
}

/** `type` of the listing metadata JSON a developer publishes (the listing's metadataCid). */
export const LISTING_METADATA_TYPE = "trusted-pods/listing/v1";
/** `type` of a per-provider key envelope (the listing's wrappedKeyCid for that provider). */
export const LISTING_KEYS_TYPE = "trusted-pods/listing-keys/v1";
export const MAX_LISTING_DOC = 256 * 1024;

export const MARKETPLACE_WARNING =
  "This pod uses the Marketplace: part of every payment to the provider goes to each listing's developer (royalty), " +
  "fixed fees are paid once when the channel opens, and only providers the developers authorized can run it.";

export const DEVELOPER_ARGS_WARNING =
  "Publishers can change the arguments passed to your image's entrypoint (its CMD), its environment (except " +
  "dynamic-loader variables), volumes and ports. With --allow-entrypoint-override they can also replace the " +
  "entrypoint and use exec health checks, which lets them run any program inside your decrypted image.";

export interface ListingMetadataDoc {
  type: typeof LISTING_METADATA_TYPE;
  name: string;
  description: string;
  image: { cid: string; digest: string };
  sampleManifest?: string;
}

/** Validates listing metadata fetched from IPFS (same rules as the provider's). */
export function parseListingMetadataDoc(bytes: Uint8Array): ListingMetadataDoc {
  if (bytes.byteLength > MAX_LISTING_DOC)
    throw new MarketError("INVALID_LISTING", "listing metadata is too large");
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as Record<string, unknown>;
  } catch {
    throw new MarketError("INVALID_LISTING", "listing metadata is not UTF-8 JSON");
  }
  const image = o?.image as Record<string, unknown> | undefined;
  if (
    o?.type !== LISTING_METADATA_TYPE ||
    typeof o.name !== "string" ||
    typeof image?.cid !== "string" ||
    typeof image.digest !== "string" ||
    !/^sha256:[0-9a-f]{64}$/.test(image.digest)
  )
    throw new MarketError("INVALID_LISTING", `listing metadata is not a ${LISTING_METADATA_TYPE} document`);
  const out: ListingMetadataDoc = {
    type: LISTING_METADATA_TYPE,
    name: o.name.slice(0, 200),
    description: typeof o.description === "string" ? o.description.slice(0, 4096) : "",
    image: { cid: image.cid, digest: image.digest },
  };
  if (typeof o.sampleManifest === "string") out.sampleManifest = o.sampleManifest;
  return out;
}

export interface ListingInfo extends Listing {
  listingId: bigint;
  /** Providers authorized now (from the authorization events, each confirmed with isAuthorized). */
  authorizedProviders: Address[];
  metadata?: ListingMetadataDoc;
  /** Why the metadata is missing, when a fetcher was given but failed. */
  metadataError?: string;
}

export interface ListListingsOptions {
  developer?: Address;
  /** Fetches a small IPFS blob by CID (metadata); absent: metadata is not read. */
  fetchDoc?: (cid: string) => Promise<Uint8Array>;
  includeInactive?: boolean;
}

async function listingCount(ctx: ChainContext): Promise<bigint> {
  return ctx.publicClient.readContract({
    address: ctx.addresses.marketplace,
    abi: marketplaceAbi,
    functionName: "listingCount",
  }) as Promise<bigint>;
}

/** Providers currently authorized for a listing. */
export async function authorizedProviders(ctx: ChainContext, listingId: bigint): Promise<Address[]> {
  const logs = await ctx.publicClient.getContractEvents({
    address: ctx.addresses.marketplace,
    abi: marketplaceAbi,
    eventName: "ProviderAuthorized",
    args: { listingId },
    fromBlock: 0n,
  });
  const candidates = new Set<Address>();
  for (const l of logs) {
    const p = (l.args as { provider?: Address }).provider;
    if (p) candidates.add(getAddress(p));
  }
  const out: Address[] = [];
  for (const p of candidates) {
    const ok = (await ctx.publicClient.readContract({
      address: ctx.addresses.marketplace,
      abi: marketplaceAbi,
      functionName: "isAuthorized",
      args: [listingId, p],
    })) as boolean;
    if (ok) out.push(p);
  }
  return out;
}

/** One listing with its authorized providers and (with fetchDoc) its metadata. */
export async function describeListing(
  ctx: ChainContext,
  listingId: bigint,
  fetchDoc?: (cid: string) => Promise<Uint8Array>,
): Promise<ListingInfo> {
  let listing: Listing;
  try {
    listing = await getListing(ctx, listingId);
  } catch (err) {
    throw new MarketError("INVALID_LISTING", `listing ${listingId} does not exist`, { cause: err });
  }
  const info: ListingInfo = {
    ...listing,
    listingId,
    authorizedProviders: await authorizedProviders(ctx, listingId),
  };
  if (fetchDoc) {
    try {
      info.metadata = parseListingMetadataDoc(await fetchDoc(listing.metadataCid));
    } catch (err) {
      info.metadataError = (err as Error).message;
    }
  }
  return info;
}

/** Browses the Marketplace: every listing (active ones unless includeInactive), newest last. */
export async function listListings(
  ctx: ChainContext,
  opts: ListListingsOptions = {},
): Promise<ListingInfo[]> {
  const n = await listingCount(ctx);
  const out: ListingInfo[] = [];
  for (let id = 1n; id <= n; id++) {
    const listing = await getListing(ctx, id);
    if (!opts.includeInactive && !listing.active) continue;
    if (opts.developer && listing.developer.toLowerCase() !== opts.developer.toLowerCase()) continue;
    out.push(await describeListing(ctx, id, opts.fetchDoc));
  }
  return out;
}

/** The listing ids a pod uses, each once, in container order. */
export function listingsOfPod(pod: Pod): bigint[] {
  const ids: bigint[] = [];
  for (const c of pod.containers)
    if (c.image.kind === "listing" && !ids.includes(c.image.listingId)) ids.push(c.image.listingId);
  return ids;
}

export interface ListingFee {
  listingId: bigint;
  developer: Address;
  token: Address;
  amount: bigint;
}

export interface ListingRequirements {
  listings: ListingInfo[];
  /** What the channel must carry: one royalty per listing, at exactly the listing's terms. */
  royalties: Royalty[];
  /** Fixed fees the channel pulls at opening (credited to each developer). */
  fees: ListingFee[];
  /** Providers authorized for every listing (offer only these). */
  providers: Address[];
  /** Per listing: may the publisher replace the entrypoint (command)? */
  entrypoint: { listingId: bigint; allowOverride: boolean }[];
}

/**
 * What a pod using `listingIds` requires: the channel's royalties and fees, and which providers may run it.
 * With `provider`, refuses (PROVIDER_NOT_AUTHORIZED) when that provider is not authorized for every listing.
 */
export async function listingRequirements(
  ctx: ChainContext,
  listingIds: readonly bigint[],
  provider?: Address,
): Promise<ListingRequirements> {
  // Ascending: the order of the royalty list a provider's quote signs.
  const ids = [...new Set(listingIds)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const listings: ListingInfo[] = [];
  for (const id of ids) {
    const info = await describeListing(ctx, id);
    if (!info.active)
      throw new MarketError("INVALID_LISTING", `listing ${id} is not active: its developer withdrew it`);
    listings.push(info);
  }
  let providers: Address[] | undefined;
  for (const l of listings) {
    const set = new Set(l.authorizedProviders.map((p) => p.toLowerCase()));
    providers = (providers ?? l.authorizedProviders).filter((p) => set.has(p.toLowerCase()));
  }
  const req: ListingRequirements = {
    listings,
    royalties: listings.map((l) => ({ recipient: l.developer, bps: l.royaltyBps, listingId: l.listingId })),
    fees: listings
      .filter((l) => l.fixedFee > 0n)
      .map((l) => ({
        listingId: l.listingId,
        developer: l.developer,
        token: l.feeToken,
        amount: l.fixedFee,
      })),
    providers: providers ?? [],
    entrypoint: listings.map((l) => ({ listingId: l.listingId, allowOverride: l.allowEntrypointOverride })),
  };
  if (provider) {
    const missing = listings.filter(
      (l) => !l.authorizedProviders.some((p) => p.toLowerCase() === provider.toLowerCase()),
    );
    if (missing.length > 0)
      throw new MarketError(
        "PROVIDER_NOT_AUTHORIZED",
        `provider ${provider} is not authorized for listing ${missing.map((l) => l.listingId).join(", ")}; authorized for all: ${req.providers.join(", ") || "none"}`,
      );
  }
  return req;
}

/** Refuses a pod whose listing containers override an entrypoint their listing fixes (before paying). */
export function checkPodAgainstListings(pod: Pod, req: ListingRequirements): void {
  for (const c of pod.containers) {
    if (c.image.kind !== "listing") continue;
    const id = c.image.listingId;
    const rule = req.entrypoint.find((e) => e.listingId === id);
    if (rule && !rule.allowOverride && c.command.length > 0)
      throw new MarketError(
        "INVALID_LISTING",
        `container ${c.name} overrides the entrypoint of listing ${id}, which does not allow it: remove "command" (use "args")`,
      );
  }
}

export interface PriceLine {
  payee: Address;
  role: "provider" | "developer";
  listingId?: bigint;
  /** Tokens per second to this payee out of the channel rate. */
  perSecond: bigint;
  /** One-time amount at opening. */
  once: bigint;
  bps?: number;
  what: string;
}

/**
 * The price breakdown of a pod at `ratePerSecond`: each claim splits floor(amount × bps / 10000) to each
 * developer and the rest to the provider, as the Payments contract does; fixed fees are paid once at opening.
 */
export function priceBreakdown(
  provider: Address,
  ratePerSecond: bigint,
  req: ListingRequirements,
): PriceLine[] {
  const lines: PriceLine[] = [];
  let toDevelopers = 0n;
  for (const l of req.listings) {
    const perSecond = (ratePerSecond * BigInt(l.royaltyBps)) / 10000n;
    toDevelopers += perSecond;
    const name = l.metadata?.name ? ` "${l.metadata.name}"` : "";
    lines.push({
      payee: l.developer,
      role: "developer",
      listingId: l.listingId,
      perSecond,
      once: l.fixedFee,
      bps: l.royaltyBps,
      what: `developer of listing ${l.listingId}${name}: ${l.royaltyBps / 100}% of what the provider claims (royalty for the software)${l.fixedFee > 0n ? ", plus a fixed fee once at opening" : ""}`,
    });
  }
  lines.unshift({
    payee: provider,
    role: "provider",
    perSecond: ratePerSecond - toDevelopers,
    once: 0n,
    what: "provider: runs the pod (CPU, memory, storage, network) inside its TEE",
  });
  return lines;
}

export interface DeveloperEarnings {
  developer: Address;
  token: Address;
  /** Royalties credited by provider claims, over every channel (all tokens: channels name their own). */
  royalties: bigint;
  /** Fixed fees credited when channels opened. */
  fees: bigint;
  /** Withdrawn so far in `token`. */
  withdrawn: bigint;
  /** What `withdraw` would pay now in `token`. */
  balance: bigint;
}

/** A developer's earnings from the Payments contract's events and its internal balance. */
export async function developerEarnings(
  ctx: ChainContext,
  developer: Address,
  token: Address,
): Promise<DeveloperEarnings> {
  const base = { address: ctx.addresses.payments, abi: paymentsAbi, fromBlock: 0n } as const;
  const [royaltyLogs, feeLogs, withdrawLogs, balance] = await Promise.all([
    ctx.publicClient.getContractEvents({ ...base, eventName: "RoyaltyPaid", args: { recipient: developer } }),
    ctx.publicClient.getContractEvents({ ...base, eventName: "FixedFeePaid" }),
    ctx.publicClient.getContractEvents({
      ...base,
      eventName: "Withdrawn",
      args: { account: developer, token },
    }),
    ctx.publicClient.readContract({ ...base, functionName: "balanceOf", args: [developer, token] }),
  ]);
  const sum = (xs: readonly { args: unknown }[], pick = (_a: Record<string, unknown>) => true) =>
    xs.reduce((t, l) => {
      const a = l.args as Record<string, unknown>;
      return pick(a) ? t + ((a.amount as bigint | undefined) ?? 0n) : t;
    }, 0n);
  return {
    developer,
    token,
    royalties: sum(royaltyLogs),
    fees: sum(feeLogs, (a) => String(a.recipient).toLowerCase() === developer.toLowerCase()),
    withdrawn: sum(withdrawLogs),
    balance: balance as bigint,
  };
}

/** What the deploy flow needs for a pod that uses listings: requirements plus the warning to show. */
export interface MarketplacePlan extends ListingRequirements {
  warning: string;
}

/**
 * The deploy flow's hook: undefined for a pod without listings; otherwise the listings' requirements (checked
 * against `provider` when one is chosen) after refusing entrypoint overrides the listings forbid.
 */
export async function marketplacePlan(
  ctx: ChainContext,
  pod: Pod,
  provider?: Address,
): Promise<MarketplacePlan | undefined> {
  const ids = listingsOfPod(pod);
  if (ids.length === 0) return undefined;
  const req = await listingRequirements(ctx, ids, provider);
  checkPodAgainstListings(pod, req);
  if (req.providers.length === 0)
    throw new MarketError(
      "PROVIDER_NOT_AUTHORIZED",
      `no provider is authorized for every listing this pod uses (${ids.join(", ")})`,
    );
  return { ...req, warning: MARKETPLACE_WARNING };
}

/** The fixed fees the channel pulls at opening, all in the channel's token (the contract refuses others). */
export function listingFeesIn(plan: ListingRequirements | undefined, token: Address): bigint {
  let total = 0n;
  for (const f of plan?.fees ?? []) {
    if (f.token.toLowerCase() !== token.toLowerCase())
      throw new MarketError(
        "INVALID_LISTING",
        `listing ${f.listingId} charges its fixed fee in token ${f.token}, but the provider's channel token is ${token}: pick a provider pricing in ${f.token}`,
      );
    total += f.amount;
  }
  return total;
}

/** Human lines for a price breakdown; `fmt` formats a token amount. */
export function breakdownLines(lines: PriceLine[], fmt: (amount: bigint) => string): string[] {
  return lines.map(
    (l) =>
      `${fmt(l.perSecond * 3600n)}/hour${l.once > 0n ? ` + ${fmt(l.once)} once` : ""} to ${l.payee}: ${l.what}`,
  );
}

/** A manifest for a listing whose developer gave no usable sample: one container running the listed image. */
export function genericListingManifest(listingId: bigint): string {
  return `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: listing-${listingId}
spec:
  containers:
    - name: app
      image:
        listing: "${listingId}"
      resources:
        cpu: 250m
        memory: 128Mi
`;
}

/** `listing: VALUE` in YAML (block or flow style): VALUE quoted or bare, up to a comma, brace or comment. */
const LISTING_REF = /(\blisting:[ \t]*)("[^"\n]*"|'[^'\n]*'|[^\s,}#]+)/g;

/**
 * The manifest "Deploy this" starts from: the developer's sample (its ports, arguments, volumes and resources are
 * what the software needs), with every listing reference pointed at this listing. The developer wrote the sample
 * before the listing had an id, so whatever it put there is replaced. A sample that does not parse as a pod
 * running this listing gives the generic manifest, with `source` saying so.
 */
export function manifestForListing(
  listingId: bigint,
  sample?: string,
): { text: string; source: "developer" | "generic" } {
  if (sample && /\blisting:/.test(sample)) {
    const text = sample.replace(LISTING_REF, (_m, key: string) => `${key}"${listingId}"`);
    const pod = checkManifest(text, "sample.yaml").pod;
    if (pod && listingsOfPod(pod).every((id) => id === listingId) && listingsOfPod(pod).length === 1)
      return { text, source: "developer" };
  }
  return { text: genericListingManifest(listingId), source: "generic" };
}
