// What the web app needs beyond the CLI's SDK calls: its config document (served by `serveWebApp`), a chain
// connection through a browser wallet (EIP-1193) or the devnet's dev key, provider cards with in-browser
// attestation, marketplace listings, a manifest's price breakdown per provider and developer, earnings, and
// error messages a user can act on. Browser-safe: no Node built-ins.

import type { Libp2p } from "@libp2p/interface";
import type { Policy } from "@trustedpods/attestation";
import {
  balanceOf,
  type ChainContext,
  getListing,
  type Listing,
  marketplaceAbi,
  read,
  withdraw,
} from "@trustedpods/chain";
import { checkManifest, type ManifestCheck, type Pod } from "@trustedpods/protocol";
import {
  type Account,
  type Address,
  type Chain,
  createWalletClient,
  custom,
  type EIP1193Provider,
  getAddress,
  type Hex,
  isAddress,
  type Transport,
  type WalletClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { PublisherError } from "./errors.js";
import { formatAmount } from "./format.js";
import {
  connectNetwork,
  DEVNET_POLICY,
  type DevnetState,
  isHttpUrl,
  type NetworkClients,
  type NetworkContracts,
  parseContracts,
  type ResolvedNetwork,
  requiringReleases,
  STRICT_POLICY,
  shortMessage,
} from "./network.js";
import {
  listOffers,
  type PricedOffer,
  type ProviderOffer,
  perHour,
  priceOffers,
  type TokenInfo,
  tokenInfo,
} from "./providers.js";
import { chainReleaseCheck } from "./releases.js";
import { describeAttestation, verifyProvider } from "./verify.js";

/** `config.json` next to the web app: which chain it talks to, and on the devnet the dev key. */
export interface WebAppConfig {
  version: 1;
  /** Shown in the header, e.g. "devnet". */
  name: string;
  rpcUrl: string;
  chainId?: number;
  contracts: NetworkContracts;
  /** True on the local devnet: insecure-dev evidence is accepted and loopback provider addresses may be dialed. */
  devnet: boolean;
  /** The devnet's PUBLIC anvil test key, offered as "dev key" instead of a browser wallet. Never on a real chain. */
  devKey?: Hex;
  /**
   * IPFS HTTP gateways serving raw blocks (`GET URL/ipfs/CID?format=raw`): where the app reads listing metadata.
   * Untrusted: every block is checked against its CID.
   */
  ipfsGateways?: string[];
}

const MAX_CONFIG_BYTES = 16 * 1024;

/** Validates a config document (from the network: the page fetched it). */
export function parseWebAppConfig(doc: unknown): WebAppConfig {
  const bad = (message: string, field: string): never => {
    throw new PublisherError("NETWORK_MALFORMED", `config.json: ${field} ${message}`, { field });
  };
  if (typeof doc === "string") {
    if (doc.length > MAX_CONFIG_BYTES) bad(`is larger than ${MAX_CONFIG_BYTES} bytes`, "document");
    try {
      doc = JSON.parse(doc);
    } catch {
      bad("is not JSON", "document");
    }
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    return bad("must be an object", "document");
  const d = doc as Record<string, unknown>;
  if (d.version !== 1) bad("must be 1", "version");
  if (!isHttpUrl(d.rpcUrl)) bad("must be an http(s) URL", "rpcUrl");
  if (d.chainId !== undefined && (!Number.isSafeInteger(d.chainId) || (d.chainId as number) <= 0))
    bad("must be a positive integer", "chainId");
  const contracts = parseContracts(d.contracts, "contracts", bad);
  const name = d.name === undefined ? "custom" : d.name;
  if (typeof name !== "string" || name.length > 64) bad("must be a short string", "name");
  const devnet = d.devnet === true;
  let devKey: Hex | undefined;
  if (d.devKey !== undefined) {
    if (typeof d.devKey !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(d.devKey))
      bad("must be 0x + 64 hex", "devKey");
    if (!devnet) bad("is only allowed on the devnet", "devKey");
    devKey = d.devKey as Hex;
  }
  let ipfsGateways: string[] | undefined;
  if (d.ipfsGateways !== undefined) {
    if (
      !Array.isArray(d.ipfsGateways) ||
      d.ipfsGateways.length > 8 ||
      !d.ipfsGateways.every((u) => isHttpUrl(u))
    )
      bad("must be a list of at most 8 http(s) URLs", "ipfsGateways");
    ipfsGateways = d.ipfsGateways as string[];
  }
  return {
    version: 1,
    name: name as string,
    rpcUrl: d.rpcUrl as string,
    ...(d.chainId !== undefined ? { chainId: d.chainId as number } : {}),
    contracts,
    devnet,
    ...(devKey ? { devKey } : {}),
    ...(ipfsGateways ? { ipfsGateways } : {}),
  };
}

/** The config `tpod devnet up` serves: its chain, contracts and publisher test key. */
export function webAppConfigFromDevnet(state: DevnetState): WebAppConfig {
  return {
    version: 1,
    name: "devnet",
    rpcUrl: state.rpcUrl,
    chainId: state.chainId,
    contracts: state.contracts,
    devnet: true,
    ...(state.publisherKey ? { devKey: state.publisherKey } : {}),
    ...(state.ipfs?.gatewayUrl ? { ipfsGateways: [state.ipfs.gatewayUrl] } : {}),
  };
}

/**
 * The attestation policy the web app verifies with: insecure-dev only on the devnet, and everywhere a published,
 * non-revoked release from the network's release registry.
 */
export function webPolicy(config: WebAppConfig): Policy {
  return requiringReleases(config.devnet ? DEVNET_POLICY : STRICT_POLICY);
}

function resolvedFrom(config: WebAppConfig): ResolvedNetwork {
  return {
    name: config.name,
    rpcUrl: config.rpcUrl,
    ...(config.chainId !== undefined ? { chainId: config.chainId } : {}),
    contracts: config.contracts,
    isDevnet: config.devnet,
    sources: { rpcUrl: "the web app's config.json", contracts: "the web app's config.json" },
  };
}

/** Who signs: nobody (read-only), the devnet's dev key, or a browser wallet (window.ethereum). */
export type WebSigner =
  | { kind: "none" }
  | { kind: "dev-key"; key: Hex }
  | { kind: "wallet"; provider: EIP1193Provider };

export interface WebConnection extends NetworkClients {
  account?: Address;
  signer: WebSigner["kind"];
}

/**
 * Connects to the config's chain. A browser wallet is asked for an account and must be on the config's chain
 * (WRONG_CHAIN is reported as NETWORK_UNREACHABLE with what to switch to).
 */
export async function connectWeb(config: WebAppConfig, signer: WebSigner): Promise<WebConnection> {
  const network = resolvedFrom(config);
  if (signer.kind === "dev-key") {
    const account = privateKeyToAccount(signer.key);
    const c = await connectNetwork(network, { account });
    return { ...c, account: account.address, signer: "dev-key" };
  }
  const base = await connectNetwork(network);
  if (signer.kind === "none") return { ...base, signer: "none" };
  let accounts: unknown;
  try {
    accounts = await signer.provider.request({ method: "eth_requestAccounts" });
  } catch (err) {
    throw new PublisherError("NO_KEY", `the browser wallet did not share an account: ${shortMessage(err)}`, {
      cause: err,
    });
  }
  const first = Array.isArray(accounts) ? accounts[0] : undefined;
  if (typeof first !== "string" || !isAddress(first, { strict: false }))
    throw new PublisherError(
      "NO_KEY",
      "the browser wallet has no account: create or unlock one in the wallet",
    );
  const walletChain = Number.parseInt(String(await signer.provider.request({ method: "eth_chainId" })), 16);
  if (walletChain !== base.chainId)
    throw new PublisherError(
      "NETWORK_UNREACHABLE",
      `the browser wallet is on chain ${walletChain}, but this app talks to chain ${base.chainId} (${config.rpcUrl}): switch the wallet's network`,
    );
  const address = getAddress(first);
  const walletClient = createWalletClient({
    chain: base.chain,
    transport: custom(signer.provider),
    account: address,
  }) as unknown as WalletClient<Transport, Chain | undefined, Account>;
  return {
    ...base,
    walletClient,
    context: { ...base.context, walletClient },
    account: address,
    signer: "wallet",
  };
}

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

export type AttestationStatus =
  | {
      state: "verified";
      tee: string;
      insecure: boolean;
      peerId: string;
      summary: Record<string, unknown>;
      /** The release the evidence matched, when a release registry was consulted. */
      release?: { id: Hex; version: string; imageDigest: Hex; config: string };
      /** What was verified, in words (describeAttestation). */
      lines: string[];
    }
  | { state: "refused" | "unreachable"; message: string };

/**
 * Attests one provider from this browser (fresh nonce, binding checked, release looked up on `ctx`'s release
 * registry) and says the outcome in words.
 */
export async function attestOffer(
  node: Libp2p,
  offer: ProviderOffer,
  policy: Policy,
  ctx?: ChainContext,
): Promise<AttestationStatus> {
  try {
    const releases = ctx ? chainReleaseCheck(ctx, "this network", offer.release) : undefined;
    const r = await verifyProvider({
      node,
      multiaddrs: offer.multiaddrs,
      policy,
      timeoutMs: 20_000,
      ...(releases ? { releases } : {}),
    });
    const rel = r.release;
    return {
      state: "verified",
      tee: r.evidence.tee,
      insecure: r.insecure,
      peerId: r.peerId,
      summary: r.summary,
      ...(rel
        ? {
            release: {
              id: rel.release.id,
              version: rel.release.version,
              imageDigest: rel.release.imageDigest,
              config: rel.measurement.config,
            },
          }
        : {}),
      lines: describeAttestation(r),
    };
  } catch (err) {
    const refused = err instanceof PublisherError && err.code !== "PROVIDER_UNREACHABLE";
    return { state: refused ? "refused" : "unreachable", message: explainError(err) };
  }
}

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

export interface Earning {
  token: TokenInfo;
  amount: bigint;
  formatted: string;
}

/**
 * What `account` can withdraw from the Payments contract in each token (developer royalties and provider claims
 * both land in this balance).
 */
export async function loadEarnings(
  ctx: ChainContext,
  account: Address,
  tokens: Address[],
): Promise<Earning[]> {
  const unique = [...new Set(tokens.map((t) => getAddress(t)))];
  return Promise.all(
    unique.map(async (t) => {
      const token = await tokenInfo(ctx.publicClient, t);
      const amount = await balanceOf(ctx, account, t);
      return { token, amount, formatted: formatAmount(amount, token) };
    }),
  );
}

/** Withdraws the whole balance of `token` to the connected account; returns the transaction hash. */
export async function withdrawEarnings(ctx: ChainContext, token: Address): Promise<Hex> {
  const sent = await withdraw(ctx, token);
  return sent.hash;
}

/**
 * One sentence a user can act on, for any error the app meets: SDK errors keep their own message (written to be
 * acted on); wallet refusals, reverts and network failures get a hint.
 */
export function explainError(err: unknown): string {
  if (err instanceof PublisherError) {
    const said = err.message.replace(/\.+$/, "");
    switch (err.code) {
      case "PROVIDER_UNREACHABLE":
        return `${said}. The provider may be offline, or its address may not accept browser (WebSocket) connections.`;
      case "PROVIDER_REFUSED":
        if (/\(NOT_FOUND\)/.test(said))
          return "The provider does not run this pod (it was never provisioned there, or it was deleted). Its channel can still be closed to get the rest of the deposit back.";
        // The provider's words say why (a missing entrypoint, an image that does not load): the fix is the publisher's.
        if (/\((ENGINE_FAILED|IMAGE_FAILED)\)/.test(said))
          return `${said}. The pod is not running: fix the image or the manifest and deploy again.`;
        if (/\(GATEWAY_FAILED\)/.test(said))
          return `${said}. The provider could not route the pod: try again, or choose another provider.`;
        return `${said}.`;
      case "NETWORK_UNREACHABLE":
        return `${said}. Check that the chain is running (on the devnet: \`tpod devnet up\`) and reload.`;
      default:
        return err.message;
    }
  }
  const e = err as { code?: unknown; message?: unknown; shortMessage?: unknown; name?: unknown };
  if (e && (e.code === 4001 || e.name === "UserRejectedRequestError"))
    return "You rejected the request in your wallet. Nothing was sent; try again when ready.";
  const msg = shortMessage(err);
  if (/insufficient funds/i.test(msg))
    return `Your account cannot pay for this transaction's gas: ${msg}. Fund the account and retry.`;
  if (/Failed to fetch|NetworkError|fetch failed/i.test(msg))
    return `The network request failed (${msg}). Check your connection and that the chain's RPC URL answers.`;
  return msg || "Something failed without a message; reload the page and retry.";
}
