import { type FileHandle, open } from "node:fs/promises";
import {
  BlobNotFoundError,
  InvalidImageError,
  NoMatchingKeyError,
  OciError,
  RecipientNotFoundError,
  UnsupportedError,
} from "../errors.js";
import { encodeJson } from "../json.js";
import type { OciLayoutWriter } from "../layout.js";
import {
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type ImageSource,
  MediaType,
} from "../types.js";
import { type WalkedNode, walkImage } from "../walk.js";
import {
  ENC_ANNOTATION_PREFIX,
  JWE_KEYS_ANNOTATION,
  PUBOPTS_ANNOTATION,
  parseWrappedKeys,
  removeWrappedKeys,
  unwrapKey,
  wrapKeys,
} from "./jwe.js";
import type { PrivateKey, RecipientKey } from "./keys.js";
import {
  decodePrivateOptions,
  decodePublicOptions,
  decryptLayer,
  encodePrivateOptions,
  encodePublicOptions,
  encryptLayer,
} from "./layer.js";

export const ENCRYPTED_SUFFIX = "+encrypted";

export interface CryptoProgress {
  /** A layer started (phase "layer") or a blob was copied unchanged (phase "copy"). */
  phase: "layer" | "copy";
  desc: Descriptor;
}

export interface CryptoOptions {
  onProgress?: (p: CryptoProgress) => void;
}

export function isEncryptedLayer(desc: Descriptor): boolean {
  return desc.mediaType.endsWith(ENCRYPTED_SUFFIX);
}

const DOCKER_TO_OCI_LAYER: Record<string, string> = {
  [MediaType.dockerLayer]: MediaType.layerTar,
  [MediaType.dockerLayerGzip]: MediaType.layerTarGzip,
};

/** An image source that can hand out unverified bytes (we hash them ourselves in the same pass). */
type RawSource = ImageSource & {
  openBlob(digest: string, opts?: { verify?: boolean }): AsyncIterable<Uint8Array>;
  walk?: () => Promise<WalkedNode[]>;
  blobPath?: (digest: string) => string;
};

const READ_CHUNK = 1024 * 1024;

/**
 * Unverified bytes of a blob for the single-pass crypto loops. From a layout on disk, reads go into two
 * alternating buffers and the next read is already running while the caller works on the current chunk,
 * so disk time hides behind crypto time; the loops consume each chunk before asking for the next.
 */
async function* openRaw(src: RawSource, digest: string): AsyncGenerator<Uint8Array> {
  if (!src.blobPath) {
    yield* src.openBlob(digest, { verify: false });
    return;
  }
  let fh: FileHandle;
  try {
    fh = await open(src.blobPath(digest), "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new BlobNotFoundError(digest);
    throw err;
  }
  const buffers = [Buffer.allocUnsafe(READ_CHUNK), Buffer.allocUnsafe(READ_CHUNK)] as const;
  let position = 0;
  const readInto = async (buf: Buffer) => {
    const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, position);
    position += bytesRead;
    return bytesRead;
  };
  let pending: Promise<number> | undefined;
  try {
    pending = readInto(buffers[0]);
    for (let i = 0; ; i++) {
      const n = await pending;
      pending = undefined;
      if (n === 0) return;
      const buf = buffers[i % 2]!;
      pending = readInto(buffers[(i + 1) % 2]!);
      yield buf.subarray(0, n);
    }
  } finally {
    await pending?.catch(() => 0);
    await fh.close();
  }
}

async function walk(src: RawSource): Promise<Map<string, WalkedNode>> {
  const nodes = src.walk ? await src.walk() : await walkImage(src.root, (d) => src.openBlob(d));
  return new Map(nodes.map((n) => [n.desc.digest, n]));
}

type LayerFn = (layer: Descriptor) => Promise<Descriptor>;

/**
 * Rewrites an image manifest by manifest: each layer goes through `onLayer`, configs are copied, manifests
 * and indexes re-serialized. Returns the new root descriptor (the caller finishes the writer).
 */
async function transformImage(
  src: RawSource,
  writer: OciLayoutWriter,
  onLayer: LayerFn,
  opts: CryptoOptions,
): Promise<Descriptor> {
  const nodes = await walk(src);
  const done = new Map<string, Descriptor>();
  const copy = async (desc: Descriptor) => {
    if (!(await writer.hasBlob(desc.digest))) {
      await writer.writeBlob(desc, src.openBlob(desc.digest));
      opts.onProgress?.({ phase: "copy", desc });
    }
  };
  const visit = async (desc: Descriptor): Promise<Descriptor> => {
    const known = done.get(desc.digest);
    if (known) return { ...desc, digest: known.digest, size: known.size, mediaType: known.mediaType };
    const node = nodes.get(desc.digest);
    let out: Descriptor;
    if (node?.index) {
      const manifests: Descriptor[] = [];
      for (const m of node.index.manifests) manifests.push(await visit(m));
      const index: ImageIndex = { ...node.index, manifests };
      out = { ...desc, ...(await writer.putBytes(desc.mediaType, encodeJson(index))) };
    } else if (node?.manifest) {
      const m = node.manifest;
      await copy(m.config);
      const layers: Descriptor[] = [];
      for (const layer of m.layers) {
        const cached = done.get(layer.digest);
        layers.push(cached ?? (await onLayer(layer)));
        done.set(layer.digest, layers[layers.length - 1]!);
      }
      const docker = desc.mediaType === MediaType.dockerManifest;
      const manifest: ImageManifest = {
        ...m,
        // Encrypted media types only exist for OCI: a Docker manifest becomes an OCI one.
        ...(docker
          ? {
              mediaType: MediaType.imageManifest,
              config: { ...m.config, mediaType: MediaType.imageConfig },
            }
          : {}),
        layers,
      };
      const mediaType = docker ? MediaType.imageManifest : desc.mediaType;
      out = { ...desc, ...(await writer.putBytes(mediaType, encodeJson(manifest))) };
    } else {
      throw new InvalidImageError(`image root ${desc.digest} is neither a manifest nor an index`);
    }
    done.set(desc.digest, out);
    return out;
  };
  return visit(src.root);
}

/**
 * Encrypts every layer of `src` for `recipients` (a fresh AES-256 key and nonce per layer, HMAC-SHA256 over the
 * ciphertext, the key options wrapped as one JWE per recipient) into `writer`. Configs stay plain, as in
 * ocicrypt. Returns the new root descriptor; the caller calls writer.finish (or abort on error).
 */
export async function encryptImage(
  src: RawSource,
  writer: OciLayoutWriter,
  recipients: RecipientKey[],
  opts: CryptoOptions = {},
): Promise<Descriptor> {
  if (recipients.length === 0) throw new OciError("NO_RECIPIENTS", "at least one recipient is needed");
  return transformImage(
    src,
    writer,
    async (layer) => {
      if (isEncryptedLayer(layer)) {
        throw new UnsupportedError(`layer ${layer.digest} is already encrypted (use recipients add)`);
      }
      opts.onProgress?.({ phase: "layer", desc: layer });
      const file = await writer.createBlobFile();
      try {
        const enc = await encryptLayer(openRaw(src, layer.digest), layer.digest, layer.size, file.handle);
        await file.commit(enc.digest);
        const entries = await wrapKeys(encodePrivateOptions(enc.priv), recipients);
        const mediaType = DOCKER_TO_OCI_LAYER[layer.mediaType] ?? layer.mediaType;
        return {
          ...layer,
          mediaType: `${mediaType}${ENCRYPTED_SUFFIX}`,
          digest: enc.digest,
          size: enc.size,
          annotations: {
            ...layer.annotations,
            [JWE_KEYS_ANNOTATION]: entries.join(","),
            [PUBOPTS_ANNOTATION]: encodePublicOptions(enc.pub),
          },
        };
      } catch (err) {
        await file.discard();
        throw err;
      }
    },
    opts,
  );
}

function stripEncAnnotations(
  annotations: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (!annotations) return undefined;
  const kept = Object.entries(annotations).filter(([k]) => !k.startsWith(ENC_ANNOTATION_PREFIX));
  return kept.length > 0 ? Object.fromEntries(kept) : undefined;
}

function wrappedKeysOf(layer: Descriptor): string {
  const annotation = layer.annotations?.[JWE_KEYS_ANNOTATION];
  if (!annotation) {
    throw new UnsupportedError(
      `encrypted layer ${layer.digest} has no JWE-wrapped keys (other key wrappers unsupported)`,
    );
  }
  return annotation;
}

/** Decrypts every encrypted layer of `src` with any of `keys` into `writer`; plain layers are copied. */
export async function decryptImage(
  src: RawSource,
  writer: OciLayoutWriter,
  keys: PrivateKey[],
  opts: CryptoOptions = {},
): Promise<Descriptor> {
  if (keys.length === 0) throw new NoMatchingKeyError("no private key given");
  return transformImage(
    src,
    writer,
    async (layer) => {
      if (!isEncryptedLayer(layer)) {
        await writer.writeBlob(layer, src.openBlob(layer.digest));
        return layer;
      }
      opts.onProgress?.({ phase: "layer", desc: layer });
      const priv = decodePrivateOptions(await unwrapKey(wrappedKeysOf(layer), keys));
      const pub = decodePublicOptions(layer.annotations?.[PUBOPTS_ANNOTATION]);
      const file = await writer.createBlobFile();
      try {
        const plain = await decryptLayer(
          openRaw(src, layer.digest),
          layer.digest,
          layer.size,
          priv,
          pub,
          file.handle,
        );
        await file.commit(plain.digest);
        const out: Descriptor = {
          ...layer,
          mediaType: layer.mediaType.slice(0, -ENCRYPTED_SUFFIX.length),
          digest: plain.digest,
          size: plain.size,
        };
        const annotations = stripEncAnnotations(layer.annotations);
        if (annotations) out.annotations = annotations;
        else delete out.annotations;
        return out;
      } catch (err) {
        await file.discard();
        throw err;
      }
    },
    opts,
  );
}

/**
 * Gives more recipients access to an encrypted image without re-encrypting any layer: each layer key is
 * unwrapped with `keys` and wrapped again for the new recipients. Layer blobs are copied unchanged; only
 * the manifest annotations, and so the manifest digest, change.
 */
export async function addRecipients(
  src: RawSource,
  writer: OciLayoutWriter,
  keys: PrivateKey[],
  recipients: RecipientKey[],
  opts: CryptoOptions = {},
): Promise<Descriptor> {
  if (recipients.length === 0) throw new OciError("NO_RECIPIENTS", "at least one recipient is needed");
  return transformImage(
    src,
    writer,
    async (layer) => {
      if (!isEncryptedLayer(layer)) throw new UnsupportedError(`layer ${layer.digest} is not encrypted`);
      const existing = wrappedKeysOf(layer);
      const present = new Set(parseWrappedKeys(existing).map((e) => e.kid));
      const fresh = recipients.filter((r) => !present.has(r.kid));
      await writer.writeBlob(layer, src.openBlob(layer.digest));
      opts.onProgress?.({ phase: "copy", desc: layer });
      if (fresh.length === 0) return layer;
      const privData = await unwrapKey(existing, keys);
      decodePrivateOptions(privData);
      const entries = await wrapKeys(privData, fresh);
      return {
        ...layer,
        annotations: { ...layer.annotations, [JWE_KEYS_ANNOTATION]: [existing, ...entries].join(",") },
      };
    },
    opts,
  );
}

/**
 * Removes recipients (by their public key) from every layer. Needs no private key: each recipient slot this
 * package writes carries the recipient key's JWK thumbprint as `kid`. Slots other tools wrote carry no kid
 * and cannot be attributed: re-encrypt such an image to control its recipients.
 */
export async function removeRecipients(
  src: RawSource,
  writer: OciLayoutWriter,
  recipients: Pick<RecipientKey, "kid">[],
  opts: CryptoOptions = {},
): Promise<Descriptor> {
  const kids = new Set(recipients.map((r) => r.kid));
  const found = new Set<string>();
  const root = await transformImage(
    src,
    writer,
    async (layer) => {
      if (!isEncryptedLayer(layer)) throw new UnsupportedError(`layer ${layer.digest} is not encrypted`);
      const existing = wrappedKeysOf(layer);
      for (const e of parseWrappedKeys(existing)) if (e.kid && kids.has(e.kid)) found.add(e.kid);
      const { annotation, removed } = removeWrappedKeys(existing, kids);
      if (removed > 0 && annotation === "") {
        throw new OciError("LAST_RECIPIENT", `removing would leave layer ${layer.digest} with no recipient`);
      }
      await writer.writeBlob(layer, src.openBlob(layer.digest));
      opts.onProgress?.({ phase: "copy", desc: layer });
      return { ...layer, annotations: { ...layer.annotations, [JWE_KEYS_ANNOTATION]: annotation } };
    },
    opts,
  );
  const missing = [...kids].filter((k) => !found.has(k));
  if (missing.length > 0) {
    throw new RecipientNotFoundError(
      `no recipient slot with key id ${missing.join(", ")} (slots written by other tools carry no key id)`,
    );
  }
  return root;
}
