import { createHash, type Hash } from "node:crypto";
import { DigestMismatchError, InvalidDigestError, SizeMismatchError } from "./errors.js";

// Only sha256 and sha512 are registered algorithms in the image spec; hex is lowercase and exact length.
const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export interface ParsedDigest {
  algorithm: "sha256" | "sha512";
  hex: string;
}

/** Parses and validates a digest; never lets a path separator or odd algorithm through. */
export function parseDigest(digest: string): ParsedDigest {
  if (typeof digest !== "string" || !DIGEST_RE.test(digest)) throw new InvalidDigestError(String(digest));
  const [algorithm, hex] = digest.split(":") as ["sha256" | "sha512", string];
  return { algorithm, hex };
}

export function isValidDigest(digest: string): boolean {
  return typeof digest === "string" && DIGEST_RE.test(digest);
}

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Hashes bytes as they pass and checks digest and (optionally) size once the stream ends. */
export class DigestVerifier {
  readonly #hash: Hash;
  readonly #algorithm: string;
  #size = 0;
  constructor(
    readonly expected: string,
    readonly expectedSize?: number,
  ) {
    this.#algorithm = parseDigest(expected).algorithm;
    this.#hash = createHash(this.#algorithm);
  }
  update(chunk: Uint8Array): void {
    this.#size += chunk.byteLength;
    if (this.expectedSize !== undefined && this.#size > this.expectedSize) {
      throw new SizeMismatchError(this.expected, this.expectedSize, this.#size);
    }
    this.#hash.update(chunk);
  }
  get size(): number {
    return this.#size;
  }
  /** Throws SizeMismatchError or DigestMismatchError; call once at the end. */
  verify(): void {
    if (this.expectedSize !== undefined && this.#size !== this.expectedSize) {
      throw new SizeMismatchError(this.expected, this.expectedSize, this.#size);
    }
    const actual = `${this.#algorithm}:${this.#hash.digest("hex")}`;
    if (actual !== this.expected) throw new DigestMismatchError(this.expected, actual);
  }
}

/** Wraps a byte stream so it fails at its end (before signalling completion) when the bytes are wrong. */
export async function* verifyStream(
  data: AsyncIterable<Uint8Array>,
  digest: string,
  size?: number,
): AsyncGenerator<Uint8Array> {
  const verifier = new DigestVerifier(digest, size);
  for await (const chunk of data) {
    verifier.update(chunk);
    yield chunk;
  }
  verifier.verify();
}
