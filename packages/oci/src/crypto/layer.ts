import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import {
  DigestMismatchError,
  InvalidImageError,
  LayerIntegrityError,
  SizeMismatchError,
  UnsupportedError,
} from "../errors.js";

/** The only layer cipher ocicrypt defines. */
export const LAYER_CIPHER = "AES_256_CTR_HMAC_SHA256";
const KEY_SIZE = 32;
const NONCE_SIZE = 16;

/** Private layer options, wrapped for each recipient: the JSON shape ocicrypt marshals. */
export interface PrivateLayerOptions {
  symkey: Buffer;
  /** Digest of the plain (unencrypted) layer blob. */
  digest: string;
  nonce: Buffer;
}

/** Public layer options, in the pubopts annotation. */
export interface PublicLayerOptions {
  cipher: string;
  hmac: Buffer;
}

export function encodePrivateOptions(o: PrivateLayerOptions): Uint8Array {
  // Field order and base64 ([]byte in Go) match what ocicrypt's json.Marshal produces.
  return Buffer.from(
    JSON.stringify({
      symkey: o.symkey.toString("base64"),
      digest: o.digest,
      cipheroptions: { nonce: o.nonce.toString("base64") },
    }),
  );
}

function b64field(v: unknown, what: string): Buffer {
  if (typeof v !== "string") throw new InvalidImageError(`layer options: ${what} missing`);
  return Buffer.from(v, "base64");
}

export function decodePrivateOptions(data: Uint8Array): PrivateLayerOptions {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(Buffer.from(data).toString("utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidImageError("unwrapped layer options are not JSON", { cause: err });
  }
  const symkey = b64field(v.symkey, "symkey");
  const opts = (v.cipheroptions ?? {}) as Record<string, unknown>;
  const nonce = b64field(opts.nonce, "nonce");
  if (symkey.byteLength !== KEY_SIZE)
    throw new InvalidImageError(`layer key has ${symkey.byteLength} bytes, need 32`);
  if (nonce.byteLength !== NONCE_SIZE)
    throw new InvalidImageError(`layer nonce has ${nonce.byteLength} bytes`);
  if (typeof v.digest !== "string") throw new InvalidImageError("layer options: digest missing");
  return { symkey, nonce, digest: v.digest };
}

export function encodePublicOptions(o: PublicLayerOptions): string {
  // skopeo 1.9.3 (ocicrypt 1.1) writes and reads the HMAC in the top-level "hmac" field.
  const json = JSON.stringify({ cipher: o.cipher, hmac: o.hmac.toString("base64"), cipheroptions: {} });
  return Buffer.from(json).toString("base64");
}

export function decodePublicOptions(annotation: string | undefined): PublicLayerOptions {
  if (!annotation) throw new InvalidImageError("encrypted layer has no pubopts annotation");
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(Buffer.from(annotation, "base64").toString("utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidImageError("pubopts annotation is not base64 JSON", { cause: err });
  }
  if (v.cipher !== LAYER_CIPHER) throw new UnsupportedError(`unsupported layer cipher ${String(v.cipher)}`);
  // Newer ocicrypt keeps the HMAC in cipheroptions.hmac; accept both.
  const hmac = v.hmac ?? (v.cipheroptions as Record<string, unknown> | undefined)?.hmac;
  return { cipher: LAYER_CIPHER, hmac: b64field(hmac, "hmac") };
}

/** At most this many output chunks (1 MiB each) are being written while the next is computed. */
const MAX_PENDING_WRITES = 3;

/**
 * Writes chunks at explicit positions without waiting for each write, so the disk works while the next chunk
 * is encrypted; memory stays bounded by MAX_PENDING_WRITES. Chunks must not be reused by the caller.
 */
class WriteBehind {
  #position = 0;
  #pending: Promise<void>[] = [];
  #failed: unknown;
  constructor(readonly out: FileHandle) {}
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#failed) throw this.#failed;
    if (chunk.byteLength === 0) return;
    const at = this.#position;
    this.#position += chunk.byteLength;
    const p = this.#writeAt(chunk, at);
    p.catch((err) => {
      this.#failed ??= err;
    });
    this.#pending.push(p);
    if (this.#pending.length >= MAX_PENDING_WRITES) await this.#pending.shift();
  }
  async #writeAt(chunk: Uint8Array, at: number): Promise<void> {
    let off = 0;
    while (off < chunk.byteLength) {
      const { bytesWritten } = await this.out.write(chunk, off, chunk.byteLength - off, at + off);
      off += bytesWritten;
    }
  }
  async flush(): Promise<void> {
    const all = this.#pending;
    this.#pending = [];
    await Promise.all(all);
    if (this.#failed) throw this.#failed;
  }
}

export interface EncryptedLayer {
  digest: string;
  size: number;
  priv: PrivateLayerOptions;
  pub: PublicLayerOptions;
}

/**
 * Encrypts one layer in a single streaming pass over 1 MiB chunks: each chunk is hashed (to verify the
 * source), encrypted, then the ciphertext HMACed and hashed (for its new digest) while still in cache.
 * Measured here, this beats hashing in a worker thread: the second core is busy with file I/O anyway.
 */
export async function encryptLayer(
  input: AsyncIterable<Uint8Array>,
  plainDigest: string,
  plainSize: number,
  out: FileHandle,
): Promise<EncryptedLayer> {
  const symkey = randomBytes(KEY_SIZE);
  const nonce = randomBytes(NONCE_SIZE);
  const cipher = createCipheriv("aes-256-ctr", symkey, nonce);
  const plainHash = plainDigest.startsWith("sha512:") ? createHash("sha512") : createHash("sha256");
  const hmac = createHmac("sha256", symkey);
  const encHash = createHash("sha256");
  const writer = new WriteBehind(out);
  let size = 0;
  for await (const chunk of input) {
    size += chunk.byteLength;
    if (size > plainSize) throw new SizeMismatchError(plainDigest, plainSize, size);
    plainHash.update(chunk);
    const enc = cipher.update(chunk);
    hmac.update(enc);
    encHash.update(enc);
    await writer.write(enc);
  }
  await writer.flush();
  // CTR is a stream mode: final() yields nothing, but call it so the cipher is properly closed.
  cipher.final();
  if (size !== plainSize) throw new SizeMismatchError(plainDigest, plainSize, size);
  const actual = `${plainDigest.split(":")[0]}:${plainHash.digest("hex")}`;
  if (actual !== plainDigest) throw new DigestMismatchError(plainDigest, actual, "layer");
  return {
    digest: `sha256:${encHash.digest("hex")}`,
    size,
    priv: { symkey, nonce, digest: plainDigest },
    pub: { cipher: LAYER_CIPHER, hmac: hmac.digest() },
  };
}

/**
 * Decrypts one layer in a single pass: each ciphertext chunk is hashed and HMACed, decrypted, and the
 * plaintext hashed. Every check (blob digest, HMAC, plain digest) runs before the caller commits the file.
 */
export async function decryptLayer(
  input: AsyncIterable<Uint8Array>,
  encDigest: string,
  encSize: number,
  priv: PrivateLayerOptions,
  pub: PublicLayerOptions,
  out: FileHandle,
): Promise<{ digest: string; size: number }> {
  if (!encDigest.startsWith("sha256:")) throw new UnsupportedError(`encrypted layer digest ${encDigest}`);
  const decipher = createDecipheriv("aes-256-ctr", priv.symkey, priv.nonce);
  const plainHash = priv.digest.startsWith("sha512:") ? createHash("sha512") : createHash("sha256");
  const hmacState = createHmac("sha256", priv.symkey);
  const encHash = createHash("sha256");
  const writer = new WriteBehind(out);
  let size = 0;
  for await (const chunk of input) {
    size += chunk.byteLength;
    if (size > encSize) throw new SizeMismatchError(encDigest, encSize, size);
    encHash.update(chunk);
    hmacState.update(chunk);
    const plain = decipher.update(chunk);
    plainHash.update(plain);
    await writer.write(plain);
  }
  await writer.flush();
  decipher.final();
  const sha256 = encHash.digest("hex");
  const hmac = hmacState.digest();
  if (size !== encSize) throw new SizeMismatchError(encDigest, encSize, size);
  if (`sha256:${sha256}` !== encDigest)
    throw new DigestMismatchError(encDigest, `sha256:${sha256}`, "encrypted layer");
  if (hmac.byteLength !== pub.hmac.byteLength || !timingSafeEqual(hmac, pub.hmac)) {
    throw new LayerIntegrityError(encDigest);
  }
  const actual = `${priv.digest.split(":")[0]}:${plainHash.digest("hex")}`;
  if (actual !== priv.digest) throw new DigestMismatchError(priv.digest, actual, "decrypted layer");
  return { digest: priv.digest, size };
}
