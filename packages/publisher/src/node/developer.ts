// The developer side of the Marketplace (Node only: files, node:crypto). A developer encrypts an image with
// fresh layer keys (its own key the first recipient), publishes it and its listing metadata to IPFS, creates
// the listing on chain, and authorizes attested providers by wrapping the layer keys to each provider's
// attested encryption key in a per-provider key envelope (docs/marketplace.md).
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  authorizeProvider,
  type ChainContext,
  createListing,
  getListing,
  type Listing,
  revokeProvider,
} from "@trustedpods/chain";
import { type ContentStore, getSecret, openIpfsImage, pushImage, putSecret } from "@trustedpods/ipfs";
import {
  encryptImage,
  isEncryptedLayer,
  JWE_KEYS_ANNOTATION,
  openArchive,
  openOciLayout,
  openPodmanImage,
  type PrivateKey,
  parseManifest,
  parsePrivateKey,
  parsePublicKey,
  parseWrappedKeys,
  type RecipientKey,
  readBlobBytes,
  withLayoutWriter,
} from "@trustedpods/oci";
import { FlattenedEncrypt, flattenedDecrypt } from "jose";
import type { Address, Hex } from "viem";
import {
  LISTING_KEYS_TYPE,
  LISTING_METADATA_TYPE,
  type ListingMetadataDoc,
  MAX_LISTING_DOC,
  MarketError,
  parseListingMetadataDoc,
} from "../listings.js";
import { assertPrivateFile, ensurePrivateDir, writeFileAtomic } from "./files.js";

export interface DeveloperKey {
  /** The developer's image key (EC P-256/P-384 or RSA): first recipient of every layer, so it can re-wrap. */
  privateKey: PrivateKey;
  publicKey: RecipientKey;
}

/** Where the developer's image key lives by default: $TPOD_HOME/developer/image-key.pem (0600). */
export function defaultDeveloperKeyFile(home: string): string {
  return path.join(home, "developer", "image-key.pem");
}

/**
 * Loads the developer's image key (PEM PKCS#8), creating a fresh EC P-256 key 0600 when the file is missing.
 * Losing it means the developer can no longer authorize providers for its existing listings.
 */
export async function loadOrCreateDeveloperKey(file: string): Promise<DeveloperKey & { created: boolean }> {
  let pem: string | undefined;
  try {
    await assertPrivateFile(file, "developer image key");
    pem = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  let created = false;
  if (pem === undefined) {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    pem = String(privateKey.export({ type: "pkcs8", format: "pem" }));
    await ensurePrivateDir(path.dirname(file));
    await writeFileAtomic(file, pem, { mode: 0o600, exclusive: true });
    created = true;
  }
  return { privateKey: await parsePrivateKey(pem), publicKey: await parsePublicKey(pem), created };
}

export interface PublishListingOptions {
  chain: ChainContext;
  store: ContentStore;
  /** An OCI layout directory, an oci-archive/docker-archive file, or `podman:REF` (a local Podman image). */
  image: string;
  key: DeveloperKey;
  name: string;
  description?: string;
  sampleManifest?: string;
  royaltyBps: number;
  feeToken?: Address;
  fixedFee?: bigint;
  allowEntrypointOverride?: boolean;
  /** Where to write the encrypted layout (a temp dir, removed afterwards, when absent). */
  workDir?: string;
  onProgress?: (line: string) => void;
}

export interface PublishedListing {
  listingId: bigint;
  imageCid: string;
  /** sha256:<hex> of the encrypted image's manifest, as pinned on chain. */
  manifestDigest: string;
  metadataCid: string;
  txHash: Hex;
}

async function openImageSource(image: string) {
  if (image.startsWith("podman:")) return openPodmanImage(image.slice("podman:".length));
  const s = await stat(image).catch(() => undefined);
  if (!s)
    throw new MarketError(
      "DEVELOPER",
      `image ${image} is neither a layout directory, an archive nor podman:REF`,
    );
  return s.isDirectory() ? openOciLayout(image) : openArchive(image);
}

async function putDoc(store: ContentStore, doc: unknown): Promise<string> {
  const bytes = new TextEncoder().encode(JSON.stringify(doc));
  if (bytes.byteLength > MAX_LISTING_DOC) throw new MarketError("DEVELOPER", "listing document is too large");
  return (await putSecret(store, bytes, { maxSize: MAX_LISTING_DOC })).toString();
}

/** Encrypts, pushes, describes and lists an image; returns the listing id. */
export async function publishListing(o: PublishListingOptions): Promise<PublishedListing> {
  if (!Number.isInteger(o.royaltyBps) || o.royaltyBps < 0 || o.royaltyBps > 10000)
    throw new MarketError("DEVELOPER", `royalty must be 0..10000 bps, got ${o.royaltyBps}`);
  const work = o.workDir ?? (await mkdtemp(path.join(tmpdir(), "tpod-dev-publish-")));
  const encDir = path.join(work, "encrypted");
  try {
    o.onProgress?.(`encrypting ${o.image} with fresh layer keys`);
    const src = await openImageSource(o.image);
    await withLayoutWriter(encDir, async (w) => {
      const root = await encryptImage(src as Parameters<typeof encryptImage>[0], w, [o.key.publicKey]);
      await w.finish(root);
    });
    const enc = await openOciLayout(encDir);
    o.onProgress?.(`pushing the encrypted image to IPFS`);
    const pushed = await pushImage(o.store, enc);
    const manifestDigest = pushed.root.root.digest;
    const metadata: ListingMetadataDoc = {
      type: LISTING_METADATA_TYPE,
      name: o.name,
      description: o.description ?? "",
      image: { cid: pushed.cid.toString(), digest: manifestDigest },
      ...(o.sampleManifest !== undefined ? { sampleManifest: o.sampleManifest } : {}),
    };
    const metadataCid = await putDoc(o.store, metadata);
    o.onProgress?.(`creating the listing on chain`);
    const sent = await createListing(o.chain, {
      manifestDigest: `0x${manifestDigest.slice("sha256:".length)}`,
      metadataCid,
      royaltyBps: o.royaltyBps,
      ...(o.feeToken ? { feeToken: o.feeToken } : {}),
      ...(o.fixedFee !== undefined ? { fixedFee: o.fixedFee } : {}),
      allowEntrypointOverride: o.allowEntrypointOverride ?? false,
    });
    return {
      listingId: sent.listingId,
      imageCid: pushed.cid.toString(),
      manifestDigest,
      metadataCid,
      txHash: sent.hash,
    };
  } finally {
    if (!o.workDir) await rm(work, { recursive: true, force: true });
  }
}

/** A provider's attested encryption key (SPKI DER, as verifyProvider returns it) as an image recipient. */
export async function recipientFromSpki(der: Uint8Array): Promise<RecipientKey> {
  const pem = createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" }).export({
    type: "spki",
    format: "pem",
  });
  return parsePublicKey(String(pem));
}

async function rewrap(annotation: string, key: PrivateKey, to: RecipientKey): Promise<string> {
  for (const e of parseWrappedKeys(annotation)) {
    if (e.kid !== undefined && e.kid !== key.kid) continue;
    let plaintext: Uint8Array;
    try {
      ({ plaintext } = await flattenedDecrypt(e.jwe, key.key as KeyObject, {
        keyManagementAlgorithms: ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES+A256KW"],
        contentEncryptionAlgorithms: ["A256GCM"],
      }));
    } catch {
      continue;
    }
    const jwe = await new FlattenedEncrypt(plaintext)
      .setProtectedHeader({ alg: to.alg, enc: "A256GCM", kid: to.kid })
      .encrypt(to.key);
    plaintext.fill(0);
    return Buffer.from(JSON.stringify(jwe)).toString("base64");
  }
  throw new MarketError("DEVELOPER", "the developer key does not unwrap this listing's layer keys");
}

export interface ListingImageInfo {
  listing: Listing;
  metadata: ListingMetadataDoc;
}

/** Reads a listing and its metadata (from IPFS), checking that the metadata names the pinned image. */
export async function readListing(
  chain: ChainContext,
  store: ContentStore,
  listingId: bigint,
  signal?: AbortSignal,
): Promise<ListingImageInfo> {
  const listing = await getListing(chain, listingId).catch((err) => {
    throw new MarketError("INVALID_LISTING", `listing ${listingId} does not exist`, { cause: err });
  });
  const metadata = parseListingMetadataDoc(
    await getSecret(store, listing.metadataCid, { maxSize: MAX_LISTING_DOC, ...(signal ? { signal } : {}) }),
  );
  if (metadata.image.digest !== `sha256:${listing.manifestDigest.slice(2).toLowerCase()}`)
    throw new MarketError(
      "INVALID_LISTING",
      `listing ${listingId}'s metadata names another image than the one it pins`,
    );
  return { listing, metadata };
}

export interface BuildEnvelopeOptions {
  store: ContentStore;
  listingId: bigint;
  manifestDigest: string;
  imageCid: string;
  provider: Address;
  providerKey: RecipientKey;
  key: PrivateKey;
  peers?: string[];
  signal?: AbortSignal;
}

/**
 * The per-provider key envelope: for each encrypted layer of the listed image, its private layer options
 * unwrapped with the developer's key and wrapped again (JWE, as ocicrypt does) to the provider's key. Reads
 * only the manifest from IPFS; no layer is downloaded or re-encrypted.
 */
export async function buildKeyEnvelope(o: BuildEnvelopeOptions): Promise<Record<string, unknown>> {
  const src = await openIpfsImage(o.store, o.imageCid, {
    ...(o.peers ? { peers: o.peers } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  if (src.root.digest !== o.manifestDigest)
    throw new MarketError(
      "INVALID_LISTING",
      `image ${o.imageCid} has manifest ${src.root.digest}, but listing ${o.listingId} pins ${o.manifestDigest}`,
    );
  const manifest = parseManifest(await readBlobBytes(src.openBlob(src.root.digest), src.root));
  const layers: Record<string, string> = {};
  for (const layer of manifest.layers) {
    const annotation = layer.annotations?.[JWE_KEYS_ANNOTATION];
    if (!isEncryptedLayer(layer) || !annotation)
      throw new MarketError(
        "INVALID_LISTING",
        `layer ${layer.digest} of listing ${o.listingId} is not encrypted`,
      );
    layers[layer.digest] = await rewrap(annotation, o.key, o.providerKey);
  }
  return {
    type: LISTING_KEYS_TYPE,
    listingId: String(o.listingId),
    provider: o.provider,
    manifestDigest: o.manifestDigest,
    layers,
  };
}

export interface AuthorizeOptions {
  chain: ChainContext;
  store: ContentStore;
  listingId: bigint;
  provider: Address;
  /** The provider's encryption key as its attestation bound it (verifyProvider's encryptionPublicKey). */
  providerEncryptionKey: Uint8Array;
  key: PrivateKey;
  peers?: string[];
  signal?: AbortSignal;
}

/** Publishes the provider's key envelope to IPFS and authorizes the provider on chain with its CID. */
export async function authorizeListingProvider(
  o: AuthorizeOptions,
): Promise<{ envelopeCid: string; txHash: Hex }> {
  const { listing, metadata } = await readListing(o.chain, o.store, o.listingId, o.signal);
  const envelope = await buildKeyEnvelope({
    store: o.store,
    listingId: o.listingId,
    manifestDigest: metadata.image.digest,
    imageCid: metadata.image.cid,
    provider: o.provider,
    providerKey: await recipientFromSpki(o.providerEncryptionKey),
    key: o.key,
    ...(o.peers ? { peers: o.peers } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  void listing;
  const envelopeCid = await putDoc(o.store, envelope);
  const sent = await authorizeProvider(o.chain, o.listingId, o.provider, envelopeCid);
  return { envelopeCid, txHash: sent.hash };
}

/** Stops future deployments of the listing on `provider` (running pods are not stopped by the chain). */
export async function revokeListingProvider(
  chain: ChainContext,
  listingId: bigint,
  provider: Address,
): Promise<{ txHash: Hex }> {
  const sent = await revokeProvider(chain, listingId, provider);
  return { txHash: sent.hash };
}
