// WebCrypto only (globalThis.crypto.subtle): the same code runs in Node >= 22 and in browsers.
import { fail } from "./errors.js";

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) fail("UNSUPPORTED", "WebCrypto (crypto.subtle) is not available in this environment");
  return s;
}

/** WebCrypto wants ArrayBuffer-backed views; copying also detaches callers' buffers from the key material. */
function buf(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(b) as Uint8Array<ArrayBuffer>;
}

export type HashName = "SHA-256" | "SHA-384" | "SHA-512";

export async function digest(hash: HashName, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle().digest(hash, buf(data)));
}

export const sha256 = (d: Uint8Array) => digest("SHA-256", d);
export const sha384 = (d: Uint8Array) => digest("SHA-384", d);
export const sha512 = (d: Uint8Array) => digest("SHA-512", d);

export type Curve = "P-256" | "P-384";

export async function importEcdsaSpki(spki: Uint8Array, curve: Curve): Promise<CryptoKey> {
  try {
    return await subtle().importKey("spki", buf(spki), { name: "ECDSA", namedCurve: curve }, false, [
      "verify",
    ]);
  } catch {
    return fail("MALFORMED", `not a valid ${curve} public key`, "publicKey");
  }
}

/** Imports an uncompressed point given as X||Y (as in Intel quotes) or 0x04||X||Y. */
export async function importEcdsaRaw(xy: Uint8Array, curve: Curve): Promise<CryptoKey> {
  const point = xy.length % 2 === 0 ? new Uint8Array([4, ...xy]) : xy;
  try {
    return await subtle().importKey("raw", buf(point), { name: "ECDSA", namedCurve: curve }, false, [
      "verify",
    ]);
  } catch {
    return fail("MALFORMED", `not a valid ${curve} point`, "publicKey");
  }
}

/** Verifies an ECDSA signature given as r||s (IEEE P1363), each half the curve size. */
export async function verifyEcdsa(
  key: CryptoKey,
  hash: HashName,
  rs: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  try {
    return await subtle().verify({ name: "ECDSA", hash }, key, buf(rs), buf(data));
  } catch {
    return false;
  }
}

export async function importRsaSpki(
  spki: Uint8Array,
  scheme: "RSA-PSS" | "RSASSA-PKCS1-v1_5",
  hash: HashName,
): Promise<CryptoKey> {
  try {
    return await subtle().importKey("spki", buf(spki), { name: scheme, hash }, false, ["verify"]);
  } catch {
    return fail("MALFORMED", "not a valid RSA public key", "publicKey");
  }
}

export async function verifyRsa(
  key: CryptoKey,
  scheme: "RSA-PSS" | "RSASSA-PKCS1-v1_5",
  saltLength: number,
  sig: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  try {
    const alg = scheme === "RSA-PSS" ? { name: scheme, saltLength } : { name: scheme };
    return await subtle().verify(alg, key, buf(sig), buf(data));
  } catch {
    return false;
  }
}

/** DER ECDSA-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }) to fixed-width r||s. */
export function ecdsaDerToRaw(der: Uint8Array, size: number): Uint8Array {
  const bad = () =>
    fail("MALFORMED", "ECDSA signature is not a valid DER SEQUENCE of two INTEGERs", "signature");
  if (der[0] !== 0x30) bad();
  let off = der[1]! & 0x80 ? 2 + (der[1]! & 0x7f) : 2;
  const out = new Uint8Array(2 * size);
  for (let i = 0; i < 2; i++) {
    if (der[off] !== 0x02) bad();
    const len = der[off + 1];
    if (len === undefined || len > 0x7f || off + 2 + len > der.length) bad();
    let int = der.subarray(off + 2, off + 2 + len!);
    while (int.length > size && int[0] === 0) int = int.subarray(1);
    if (int.length > size) bad();
    out.set(int, i * size + size - int.length);
    off += 2 + len!;
  }
  return out;
}
