import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { calculateJwkThumbprint } from "jose";
import { InvalidKeyError } from "../errors.js";

/** JWE key-management algorithms used when wrapping layer keys, per key type (the ones ocicrypt picks). */
export type WrapAlgorithm = "RSA-OAEP" | "ECDH-ES+A256KW";

export interface RecipientKey {
  /** The public key as a Node KeyObject. */
  key: KeyObject;
  alg: WrapAlgorithm;
  /** RFC 7638 SHA-256 JWK thumbprint; recorded as the JWE `kid` so the recipient can be removed later. */
  kid: string;
}

export interface PrivateKey {
  key: KeyObject;
  kid: string;
}

const MAX_KEY_FILE = 64 * 1024;
const EC_CURVES = new Set(["prime256v1", "secp384r1", "secp521r1"]);

function keyAlgorithm(key: KeyObject): WrapAlgorithm {
  const type = key.asymmetricKeyType;
  if (type === "rsa") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new InvalidKeyError(`RSA keys must have at least 2048 bits, got ${bits}`);
    return "RSA-OAEP";
  }
  if (type === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? "";
    if (!EC_CURVES.has(curve))
      throw new InvalidKeyError(`unsupported EC curve ${curve} (use P-256, P-384 or P-521)`);
    return "ECDH-ES+A256KW";
  }
  if (type === "x25519") return "ECDH-ES+A256KW";
  throw new InvalidKeyError(`unsupported key type ${type} (use RSA, EC P-256/P-384/P-521 or X25519)`);
}

/** The public key's RFC 7638 thumbprint, the same whether computed from the public or the private key. */
export async function keyThumbprint(key: KeyObject): Promise<string> {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return calculateJwkThumbprint(
    pub.export({ format: "jwk" }) as Parameters<typeof calculateJwkThumbprint>[0],
  );
}

function parseJwk(text: string): JsonWebKey | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith("{")) return undefined;
  try {
    return JSON.parse(trimmed) as JsonWebKey;
  } catch (err) {
    throw new InvalidKeyError("key file looks like JSON but does not parse", { cause: err });
  }
}

/** Parses a recipient public key: PEM (SPKI, PKCS#1, or a private key PEM/JWK whose public half is used) or JWK. */
export async function parsePublicKey(data: string | Uint8Array): Promise<RecipientKey> {
  const text = typeof data === "string" ? data : Buffer.from(data).toString("utf8");
  let key: KeyObject;
  try {
    const jwk = parseJwk(text);
    key = jwk ? createPublicKey({ key: jwk, format: "jwk" }) : createPublicKey(text);
  } catch (err) {
    if (err instanceof InvalidKeyError) throw err;
    throw new InvalidKeyError(`not a PEM or JWK public key: ${(err as Error).message}`, { cause: err });
  }
  return { key, alg: keyAlgorithm(key), kid: await keyThumbprint(key) };
}

/** Parses a private key: PEM (PKCS#8; PKCS#1 and SEC1 are accepted too) or a JWK with its private part. */
export async function parsePrivateKey(data: string | Uint8Array): Promise<PrivateKey> {
  const text = typeof data === "string" ? data : Buffer.from(data).toString("utf8");
  let key: KeyObject;
  try {
    const jwk = parseJwk(text);
    if (jwk && typeof jwk.d !== "string") throw new InvalidKeyError("JWK has no private part (d)");
    key = jwk ? createPrivateKey({ key: jwk, format: "jwk" }) : createPrivateKey(text);
  } catch (err) {
    if (err instanceof InvalidKeyError) throw err;
    throw new InvalidKeyError(`not a PEM or JWK private key: ${(err as Error).message}`, { cause: err });
  }
  keyAlgorithm(key);
  return { key, kid: await keyThumbprint(key) };
}

async function readKeyFile(path: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new InvalidKeyError(`cannot read key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (data.byteLength > MAX_KEY_FILE) throw new InvalidKeyError(`key file ${path} is too large`);
  return data;
}

export async function readPublicKeyFile(path: string): Promise<RecipientKey> {
  try {
    return await parsePublicKey(await readKeyFile(path));
  } catch (err) {
    if (err instanceof InvalidKeyError) throw new InvalidKeyError(`${path}: ${err.message}`, { cause: err });
    throw err;
  }
}

export async function readPrivateKeyFile(path: string): Promise<PrivateKey> {
  try {
    return await parsePrivateKey(await readKeyFile(path));
  } catch (err) {
    if (err instanceof InvalidKeyError) throw new InvalidKeyError(`${path}: ${err.message}`, { cause: err });
    throw err;
  }
}
