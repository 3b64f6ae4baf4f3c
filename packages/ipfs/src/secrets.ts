import type { KeyObject } from "node:crypto";
import type { AbortOptions } from "@libp2p/interface";
import { CompactEncrypt, type CryptoKey, compactDecrypt, type JWK } from "jose";
import type { CID } from "multiformats/cid";
import { InvalidRootError, SizeLimitError } from "./errors.js";
import { assertSupportedCid, type ContentStore, parseCid, RAW_CODEC, rawCid } from "./store.js";

/** Secrets are small by design (env files, credentials): one raw block, 256 KiB at most by default. */
export const DEFAULT_MAX_SECRET_SIZE = 256 * 1024;

export interface SecretOptions extends AbortOptions {
  maxSize?: number;
}

/**
 * Stores an already encrypted secret as one raw block (CIDv1, sha2-256) and pins it. The store never sees
 * plaintext: callers encrypt first (encryptSecret below, or their own scheme).
 */
export async function putSecret(
  store: ContentStore,
  ciphertext: Uint8Array,
  opts: SecretOptions & { pin?: boolean } = {},
): Promise<CID> {
  const max = opts.maxSize ?? DEFAULT_MAX_SECRET_SIZE;
  if (ciphertext.byteLength > max) {
    throw new SizeLimitError(`secret is ${ciphertext.byteLength} bytes, over the ${max} byte limit`, max);
  }
  const cid = await rawCid(ciphertext);
  await store.putBlock(cid, ciphertext, opts);
  if (opts.pin ?? true) await store.pin(cid, opts);
  return cid;
}

/** Fetches a secret blob by CID: must be a raw block of at most `maxSize` bytes whose hash matches. */
export async function getSecret(
  store: ContentStore,
  cid: CID | string,
  opts: SecretOptions = {},
): Promise<Uint8Array> {
  const c = typeof cid === "string" ? parseCid(cid) : cid;
  assertSupportedCid(c, [RAW_CODEC]);
  return store.getBlock(c, { signal: opts.signal, maxSize: opts.maxSize ?? DEFAULT_MAX_SECRET_SIZE });
}

export type RecipientKey = CryptoKey | KeyObject | JWK;

/** Key-wrapping algorithm for a recipient's public key: ECDH-ES+A256KW for EC/OKP keys, RSA-OAEP-256 for RSA. */
function algFor(key: RecipientKey): string {
  const kty =
    (key as JWK).kty ??
    (key as KeyObject).asymmetricKeyType ??
    ((key as CryptoKey).algorithm?.name?.startsWith("RSA") ? "RSA" : "EC");
  return String(kty).toUpperCase().startsWith("RSA") ? "RSA-OAEP-256" : "ECDH-ES+A256KW";
}

/** Encrypts a secret to one recipient public key as a compact JWE (A256GCM content encryption). */
export async function encryptSecret(plaintext: Uint8Array, recipient: RecipientKey): Promise<Uint8Array> {
  const jwe = await new CompactEncrypt(plaintext)
    .setProtectedHeader({ alg: algFor(recipient), enc: "A256GCM", cty: "application/octet-stream" })
    .encrypt(recipient);
  return new TextEncoder().encode(jwe);
}

/** Decrypts a compact JWE made by encryptSecret; fails if the key is wrong or the ciphertext was altered. */
export async function decryptSecret(ciphertext: Uint8Array, key: RecipientKey): Promise<Uint8Array> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(ciphertext);
  } catch {
    throw new InvalidRootError("secret is not a compact JWE");
  }
  const { plaintext } = await compactDecrypt(text, key, {
    keyManagementAlgorithms: ["ECDH-ES+A256KW", "RSA-OAEP-256"],
    contentEncryptionAlgorithms: ["A256GCM"],
  });
  return plaintext;
}
