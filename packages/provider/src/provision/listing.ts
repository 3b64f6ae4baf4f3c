/**
 * Marketplace listing images on the provider (docs/marketplace.md). A pod container may name `listing: ID`
 * instead of an image. The provider then:
 *  - reads the listing at a CONFIRMED block, and refuses when its view of the chain is older than
 *    `chain.maxHeadAgeSeconds` (a stale fork must not let a developer's software run unpaid);
 *  - refuses unless the listing is active and this provider is authorized for it;
 *  - refuses containers that would change what the listed image executes (entrypoint/command, exec probes,
 *    dynamic-loader env vars) unless the listing allows entrypoint overrides; args are always allowed;
 *  - pulls the image named by the listing metadata and compares its manifest digest with the listing's
 *    (exactly the listed image: no extra layers, no re-tagging);
 *  - unwraps the layer keys from the developer's per-provider key envelope with the daemon's own key.
 * The decrypted image is loaded into the engine under the pod's own engine name only (never exported, never
 * shared: a later pod cannot name it, and it is removed with the pod).
 */
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { type ChainContext, marketplaceAbi } from "@trustedpods/chain";
import { type ContentStore, getSecret, pullImageToLayout } from "@trustedpods/ipfs";
import {
  decryptLayout,
  isEncryptedLayer,
  JWE_KEYS_ANNOTATION,
  parseManifest,
  parseWrappedKeys,
  sha256Digest,
} from "@trustedpods/oci";
import { RpcError } from "@trustedpods/p2p";
import { type Container, ErrorCode } from "@trustedpods/protocol";
import type { Address, Hex } from "viem";
import { asChainFailure, chainPoints } from "../billing/chain-read.js";
import type { EncryptionKey } from "../keys.js";

/** `type` of the listing metadata JSON the developer publishes (its CID is the listing's metadataCid). */
export const LISTING_METADATA_TYPE = "trusted-pods/listing/v1";
/** `type` of the per-provider key envelope (its CID is the listing's wrappedKeyCid for that provider). */
export const LISTING_KEYS_TYPE = "trusted-pods/listing-keys/v1";
/** Both documents are small JSON raw blocks; bounded so a hostile CID cannot make us read much. */
export const MAX_LISTING_DOC = 256 * 1024;
/** Default bound on how old the provider's chain head may be when it decides on a listing image. */
export const DEFAULT_MAX_HEAD_AGE_SECONDS = 900;

export interface ListingMetadata {
  type: typeof LISTING_METADATA_TYPE;
  name: string;
  description: string;
  /** The encrypted image on IPFS: root CID and its OCI manifest digest (the listing's manifestDigest). */
  image: { cid: string; digest: string };
  /** A sample manifest (YAML text) publishers can start from. */
  sampleManifest?: string;
}

export interface ListingKeyEnvelope {
  type: typeof LISTING_KEYS_TYPE;
  listingId: string;
  provider: Address;
  /** The encrypted image's manifest digest these keys belong to. */
  manifestDigest: string;
  /** Encrypted layer digest → that layer's wrapped private options (ocicrypt JWE entries) for this provider. */
  layers: Record<string, string>;
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;

export class ListingDocError extends Error {
  readonly code = "INVALID_LISTING_DOC";
  override name = "ListingDocError";
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (!v || typeof v !== "object" || Array.isArray(v))
    throw new ListingDocError(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, k: string, what: string, max = 4096): string {
  const v = o[k];
  if (typeof v !== "string" || v.length > max) throw new ListingDocError(`${what}.${k} must be a string`);
  return v;
}

function parseJsonDoc(bytes: Uint8Array, what: string): Record<string, unknown> {
  if (bytes.byteLength > MAX_LISTING_DOC) throw new ListingDocError(`${what} is too large`);
  try {
    return obj(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)), what);
  } catch (err) {
    if (err instanceof ListingDocError) throw err;
    throw new ListingDocError(`${what} is not UTF-8 JSON`);
  }
}

/** Validates listing metadata fetched from IPFS. */
export function parseListingMetadata(bytes: Uint8Array): ListingMetadata {
  const o = parseJsonDoc(bytes, "listing metadata");
  if (o.type !== LISTING_METADATA_TYPE)
    throw new ListingDocError(`listing metadata type is not ${LISTING_METADATA_TYPE}`);
  const image = obj(o.image, "listing metadata.image");
  const digest = str(image, "digest", "image");
  if (!DIGEST_RE.test(digest))
    throw new ListingDocError("listing metadata image.digest is not sha256:<64 hex>");
  const out: ListingMetadata = {
    type: LISTING_METADATA_TYPE,
    name: str(o, "name", "listing metadata", 200),
    description: typeof o.description === "string" ? o.description.slice(0, 4096) : "",
    image: { cid: str(image, "cid", "image", 200), digest },
  };
  if (typeof o.sampleManifest === "string") out.sampleManifest = o.sampleManifest.slice(0, 64 * 1024);
  return out;
}

/** Validates a key envelope fetched from IPFS. */
export function parseKeyEnvelope(bytes: Uint8Array): ListingKeyEnvelope {
  const o = parseJsonDoc(bytes, "key envelope");
  if (o.type !== LISTING_KEYS_TYPE)
    throw new ListingDocError(`key envelope type is not ${LISTING_KEYS_TYPE}`);
  const provider = str(o, "provider", "key envelope");
  if (!ADDRESS_RE.test(provider)) throw new ListingDocError("key envelope provider is not an address");
  const manifestDigest = str(o, "manifestDigest", "key envelope");
  if (!DIGEST_RE.test(manifestDigest))
    throw new ListingDocError("key envelope manifestDigest is not a digest");
  const layersIn = obj(o.layers, "key envelope.layers");
  const layers: Record<string, string> = {};
  for (const [d, v] of Object.entries(layersIn)) {
    if (!DIGEST_RE.test(d) || typeof v !== "string" || v.length > 64 * 1024)
      throw new ListingDocError("key envelope layers must map layer digests to wrapped keys");
    layers[d] = v;
  }
  return {
    type: LISTING_KEYS_TYPE,
    listingId: str(o, "listingId", "key envelope", 80),
    provider: provider as Address,
    manifestDigest,
    layers,
  };
}

/** The listing as this provider decides on it (confirmed chain state). */
export interface ListingView {
  listingId: bigint;
  developer: Address;
  /** sha256:<hex> of the encrypted image's OCI manifest. */
  manifestDigest: string;
  metadataCid: string;
  wrappedKeyCid: string;
  allowEntrypointOverride: boolean;
  /** The confirmed block the view was read at. */
  block: bigint;
}

export interface ListingImagesOptions {
  /** The provider's chain context, or how to build it on first use. */
  chain: ChainContext | (() => Promise<ChainContext>);
  provider: Address;
  store: ContentStore;
  key: EncryptionKey;
  confirmations: number;
  /** Refuse listing images when the chain head is older than this (seconds); 0 disables the check. */
  maxHeadAgeSeconds: number;
  peers?: () => string[];
  /** Wall clock in seconds (test hook). */
  now?: () => number;
}

function refuse(code: ErrorCode, message: string, details: Record<string, string>): RpcError {
  return new RpcError(code, message, { details });
}

/** Env vars that make the dynamic loader run other code inside the listed image's process. */
const LOADER_ENV = /^(LD_|GCONV_PATH$|MALLOC_|GLIBC_TUNABLES$)/;

/**
 * Checks what a publisher may change on a listing container. Without allowEntrypointOverride: no command
 * (entrypoint), no exec health probe (it runs a command inside the decrypted image), no dynamic-loader env
 * var (LD_PRELOAD & co. run publisher code in the listed process). Args (the image's CMD) may always change.
 */
export function checkListingContainer(c: Container, index: number, view: ListingView): void {
  if (view.allowEntrypointOverride) return;
  const field = `spec.containers[${index}]`;
  const base = { listing: String(view.listingId), reason: "listing-entrypoint-fixed" };
  if (c.command.length > 0)
    throw refuse(
      ErrorCode.PERMISSION_DENIED,
      `container ${c.name} runs listing ${view.listingId}, which does not allow overriding the entrypoint: remove "command" (use "args" to pass arguments)`,
      { ...base, field: `${field}.command` },
    );
  if (c.healthCheck?.probe.kind === "exec")
    throw refuse(
      ErrorCode.PERMISSION_DENIED,
      `container ${c.name} runs listing ${view.listingId}: an exec health check would run a command inside the listed image; use an http probe`,
      { ...base, field: `${field}.healthCheck` },
    );
  for (const e of c.env)
    if (LOADER_ENV.test(e.name))
      throw refuse(
        ErrorCode.PERMISSION_DENIED,
        `container ${c.name} runs listing ${view.listingId}: env var ${e.name} would change what the listed image executes`,
        { ...base, field: `${field}.env.${e.name}` },
      );
}

interface RawListing {
  developer: Address;
  royaltyBps: number;
  allowEntrypointOverride: boolean;
  active: boolean;
  manifestDigest: Hex;
  metadataCid: string;
}

export class ListingImages {
  private chainCtx: Promise<ChainContext> | undefined;

  constructor(private readonly o: ListingImagesOptions) {}

  private chain(): Promise<ChainContext> {
    const c = this.o.chain;
    this.chainCtx ??= typeof c === "function" ? c() : Promise.resolve(c);
    // A failed build (RPC down at first use) is retried next time.
    this.chainCtx.catch(() => {
      this.chainCtx = undefined;
    });
    return this.chainCtx;
  }

  private async readAt<T>(
    functionName: string,
    args: readonly unknown[],
    block: bigint,
    what: string,
  ): Promise<T> {
    try {
      const chain = await this.chain();
      return (await chain.publicClient.readContract({
        address: chain.addresses.marketplace,
        abi: marketplaceAbi,
        functionName,
        args,
        blockNumber: block,
      } as never)) as T;
    } catch (err) {
      throw asChainFailure(err, what);
    }
  }

  /**
   * The listing at a confirmed block, refusing when the chain view is stale, the listing is missing or
   * inactive, or this provider is not (or no longer) authorized.
   */
  async resolve(listingId: bigint): Promise<ListingView> {
    const id = String(listingId);
    let points: Awaited<ReturnType<typeof chainPoints>>;
    try {
      points = await chainPoints(await this.chain(), this.o.confirmations);
    } catch (err) {
      throw refuse(
        ErrorCode.UNAVAILABLE,
        `cannot read the chain to check listing ${id}: ${(err as Error).message}`,
        {
          listing: id,
          reason: "chain-unavailable",
        },
      );
    }
    const now = this.o.now?.() ?? Math.floor(Date.now() / 1000);
    const age = now - Number(points.head.time);
    if (this.o.maxHeadAgeSeconds > 0 && age > this.o.maxHeadAgeSeconds)
      throw refuse(
        ErrorCode.UNAVAILABLE,
        `this provider's chain view is stale (head block ${points.head.number} is ${age} s old, over chain.maxHeadAgeSeconds=${this.o.maxHeadAgeSeconds}): it does not run listing images until its RPC catches up`,
        { listing: id, reason: "chain-view-stale", field: "chain" },
      );
    const block = points.confirmed.number;
    let l: RawListing;
    try {
      l = await this.readAt<RawListing>("getListing", [listingId], block, `read listing ${id}`);
    } catch (err) {
      if ((err as Error).name === "ChainUnavailableError")
        throw refuse(ErrorCode.UNAVAILABLE, (err as Error).message, {
          listing: id,
          reason: "chain-unavailable",
        });
      throw refuse(ErrorCode.NOT_FOUND, `listing ${id} does not exist (at confirmed block ${block})`, {
        listing: id,
        reason: "listing-not-found",
        field: "image.listing",
      });
    }
    if (!l.active)
      throw refuse(ErrorCode.FAILED_PRECONDITION, `listing ${id} is not active: its developer withdrew it`, {
        listing: id,
        reason: "listing-inactive",
      });
    const [authorized, wrappedKeyCid] = await Promise.all([
      this.readAt<boolean>("isAuthorized", [listingId, this.o.provider], block, "read the authorization"),
      this.readAt<string>("wrappedKeyCid", [listingId, this.o.provider], block, "read the key envelope CID"),
    ]);
    if (!authorized || !wrappedKeyCid)
      throw refuse(
        ErrorCode.PERMISSION_DENIED,
        `this provider (${this.o.provider}) is not authorized for listing ${id} at confirmed block ${block}: pick a provider the developer authorized`,
        { listing: id, reason: "provider-not-authorized" },
      );
    return {
      listingId,
      developer: l.developer,
      manifestDigest: `sha256:${l.manifestDigest.slice(2).toLowerCase()}`,
      metadataCid: l.metadataCid,
      wrappedKeyCid,
      allowEntrypointOverride: l.allowEntrypointOverride,
      block,
    };
  }

  private async getDoc(cid: string, what: string, signal: AbortSignal): Promise<Uint8Array> {
    try {
      return await getSecret(this.o.store, cid, { signal, maxSize: MAX_LISTING_DOC });
    } catch (err) {
      if (signal.aborted) throw err;
      throw refuse(ErrorCode.UNAVAILABLE, `cannot fetch the ${what} ${cid}: ${(err as Error).message}`, {
        cid,
        reason: "listing-doc-unavailable",
      });
    }
  }

  /** Pulls, checks and decrypts the listed image into a new plain OCI layout at `dir`. */
  async fetchImage(view: ListingView, dir: string, signal: AbortSignal): Promise<void> {
    const id = String(view.listingId);
    let meta: ListingMetadata;
    let env: ListingKeyEnvelope;
    try {
      meta = parseListingMetadata(await this.getDoc(view.metadataCid, "listing metadata", signal));
      env = parseKeyEnvelope(await this.getDoc(view.wrappedKeyCid, "key envelope", signal));
    } catch (err) {
      if (err instanceof ListingDocError)
        throw refuse(ErrorCode.FAILED_PRECONDITION, `listing ${id}: ${err.message}`, {
          listing: id,
          reason: "listing-doc-invalid",
        });
      throw err;
    }
    if (
      env.listingId !== id ||
      env.provider.toLowerCase() !== this.o.provider.toLowerCase() ||
      env.manifestDigest !== view.manifestDigest
    )
      throw refuse(
        ErrorCode.FAILED_PRECONDITION,
        `listing ${id}: the key envelope is for listing ${env.listingId}, provider ${env.provider}, image ${env.manifestDigest}; not for this listing, provider and image ${view.manifestDigest}`,
        { listing: id, reason: "envelope-mismatch" },
      );
    const pulled = `${dir}.pulled`;
    await rm(pulled, { recursive: true, force: true });
    try {
      let root: Awaited<ReturnType<typeof pullImageToLayout>>;
      try {
        root = await pullImageToLayout(this.o.store, meta.image.cid, pulled, {
          peers: this.o.peers?.() ?? [],
          signal,
        });
      } catch (err) {
        if (signal.aborted) throw err;
        throw refuse(
          ErrorCode.UNAVAILABLE,
          `cannot pull the image of listing ${id}: ${(err as Error).message}`,
          {
            listing: id,
            cid: meta.image.cid,
          },
        );
      }
      // Exactly the listed image: every blob was verified while pulling, and the root must be the manifest the
      // developer pinned on chain. An extended or re-tagged image has another manifest digest.
      if (root.root.digest !== view.manifestDigest)
        throw refuse(
          ErrorCode.PERMISSION_DENIED,
          `listing ${id} pins image manifest ${view.manifestDigest}, but its metadata names an image with manifest ${root.root.digest}: refused (not the listed image)`,
          { listing: id, reason: "listing-digest-mismatch", field: "image.digest" },
        );
      await this.applyEnvelope(pulled, env, id);
      try {
        await decryptLayout(pulled, dir, [this.o.key.ociKey]);
      } catch (err) {
        throw refuse(
          ErrorCode.FAILED_PRECONDITION,
          `listing ${id}: the key envelope does not unwrap with this provider's key (${(err as Error).name})`,
          { listing: id, reason: "envelope-does-not-unwrap" },
        );
      }
    } finally {
      await rm(pulled, { recursive: true, force: true });
    }
  }

  /**
   * Replaces each encrypted layer's wrapped keys in our private copy of the manifest with the envelope's, so
   * the layers decrypt with the daemon's key. Layer blobs and the config are untouched; only the (already
   * digest-checked) manifest is rewritten in the pulled layout, which never leaves this function's caller.
   */
  private async applyEnvelope(layout: string, env: ListingKeyEnvelope, id: string): Promise<void> {
    const indexPath = path.join(layout, "index.json");
    const index = JSON.parse(await readFile(indexPath, "utf8")) as {
      manifests: { digest: string; size: number }[];
    };
    const rootDesc = index.manifests[0];
    if (!rootDesc || index.manifests.length !== 1)
      throw refuse(ErrorCode.FAILED_PRECONDITION, `listing ${id}: the image must be a single manifest`, {
        listing: id,
        reason: "listing-not-single-manifest",
      });
    const blobPath = (d: string) => path.join(layout, "blobs", "sha256", d.slice("sha256:".length));
    const bytes = await readFile(blobPath(rootDesc.digest));
    let manifest: ReturnType<typeof parseManifest>;
    try {
      manifest = parseManifest(bytes);
    } catch {
      throw refuse(ErrorCode.FAILED_PRECONDITION, `listing ${id}: the image root is not an image manifest`, {
        listing: id,
        reason: "listing-not-single-manifest",
      });
    }
    const raw = JSON.parse(new TextDecoder().decode(bytes)) as {
      layers: { digest: string; annotations?: Record<string, string> }[];
    };
    for (const [i, layer] of manifest.layers.entries()) {
      if (!isEncryptedLayer(layer))
        throw refuse(ErrorCode.FAILED_PRECONDITION, `listing ${id}: layer ${layer.digest} is not encrypted`, {
          listing: id,
          reason: "listing-layer-plain",
        });
      const wrapped = env.layers[layer.digest];
      if (!wrapped)
        throw refuse(
          ErrorCode.FAILED_PRECONDITION,
          `listing ${id}: the key envelope has no key for layer ${layer.digest}`,
          { listing: id, reason: "envelope-does-not-unwrap" },
        );
      parseWrappedKeys(wrapped);
      const rl = raw.layers[i];
      if (!rl) throw new RpcError(ErrorCode.INTERNAL, "manifest layers changed while reading");
      rl.annotations = { ...rl.annotations, [JWE_KEYS_ANNOTATION]: wrapped };
    }
    const out = new TextEncoder().encode(JSON.stringify(raw));
    const digest = sha256Digest(out);
    await writeFile(blobPath(digest), out, { mode: 0o600 });
    rootDesc.digest = digest;
    rootDesc.size = out.byteLength;
    const tmp = `${indexPath}.tmp`;
    await writeFile(tmp, JSON.stringify(index), { mode: 0o600 });
    await rename(tmp, indexPath);
  }
}
