import { isValidDigest } from "./digest.js";
import { InvalidImageError } from "./errors.js";
import {
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  isIndexMediaType,
  isManifestMediaType,
} from "./types.js";

/** Manifests, indexes and configs are small; anything larger is refused before parsing. */
export const MAX_JSON_BLOB = 4 * 1024 * 1024;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isRecord(v) || !Object.values(v).every((x) => typeof x === "string")) {
    throw new InvalidImageError(`${what}: annotations must map strings to strings`);
  }
  return v as Record<string, string>;
}

/** Validates a descriptor from untrusted JSON and returns a clean copy. */
export function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isRecord(v)) throw new InvalidImageError(`${what}: descriptor is not an object`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== "string" || mediaType.length === 0 || mediaType.length > 255) {
    throw new InvalidImageError(`${what}: bad mediaType`);
  }
  if (typeof digest !== "string" || !isValidDigest(digest)) {
    throw new InvalidImageError(`${what}: bad digest ${JSON.stringify(String(digest).slice(0, 100))}`);
  }
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw new InvalidImageError(`${what}: bad size`);
  }
  // Keep the original field order and any fields newer specs add (e.g. "data"), so re-serializing a
  // manifest we only pass through (decryption, re-keying) reproduces its bytes and digest.
  const desc = { ...v, mediaType, digest, size } as Descriptor;
  const annotations = stringMap(v.annotations, what);
  if (annotations) desc.annotations = annotations;
  if (v.platform !== undefined && !isRecord(v.platform)) throw new InvalidImageError(`${what}: bad platform`);
  if (v.urls !== undefined && !(Array.isArray(v.urls) && v.urls.every((u) => typeof u === "string"))) {
    throw new InvalidImageError(`${what}: bad urls`);
  }
  return desc;
}

export function parseJsonBytes(bytes: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch (err) {
    throw new InvalidImageError(`${what} is not valid JSON`, { cause: err });
  }
  if (!isRecord(value)) throw new InvalidImageError(`${what} is not a JSON object`);
  return value;
}

/** Parses an image manifest, keeping unknown fields so re-serialization loses nothing. */
export function parseManifest(bytes: Uint8Array, what = "manifest"): ImageManifest {
  const v = parseJsonBytes(bytes, what);
  if (v.schemaVersion !== 2) throw new InvalidImageError(`${what}: schemaVersion must be 2`);
  if (v.mediaType !== undefined && (typeof v.mediaType !== "string" || !isManifestMediaType(v.mediaType))) {
    throw new InvalidImageError(`${what}: unexpected mediaType ${String(v.mediaType)}`);
  }
  if (!Array.isArray(v.layers)) throw new InvalidImageError(`${what}: layers must be an array`);
  return {
    ...v,
    schemaVersion: 2,
    config: parseDescriptor(v.config, `${what} config`),
    layers: v.layers.map((l, i) => parseDescriptor(l, `${what} layer ${i}`)),
  } as ImageManifest;
}

export function parseIndex(bytes: Uint8Array, what = "index"): ImageIndex {
  const v = parseJsonBytes(bytes, what);
  if (v.schemaVersion !== 2) throw new InvalidImageError(`${what}: schemaVersion must be 2`);
  if (v.mediaType !== undefined && (typeof v.mediaType !== "string" || !isIndexMediaType(v.mediaType))) {
    throw new InvalidImageError(`${what}: unexpected mediaType ${String(v.mediaType)}`);
  }
  if (!Array.isArray(v.manifests)) throw new InvalidImageError(`${what}: manifests must be an array`);
  return {
    ...v,
    schemaVersion: 2,
    manifests: v.manifests.map((m, i) => parseDescriptor(m, `${what} manifest ${i}`)),
  } as ImageIndex;
}

export function encodeJson(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value), "utf8");
}
