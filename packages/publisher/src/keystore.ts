/**
 * Ethereum Web3 Secret Storage v3 ("keystore") files: the private key encrypted with AES-128-CTR under a key
 * derived from a passphrase by scrypt (pbkdf2 accepted when reading), authenticated by keccak-256(dk[16..32] ‖
 * ciphertext). Pure TypeScript over @noble/hashes and WebCrypto, so the web app can open the same files.
 */
import { pbkdf2Async } from "@noble/hashes/pbkdf2";
import { scryptAsync } from "@noble/hashes/scrypt";
import { sha256 } from "@noble/hashes/sha2";
import { keccak_256 } from "@noble/hashes/sha3";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes, isHex } from "viem";
import { type LocalAccount, privateKeyToAccount } from "viem/accounts";
import { PublisherError } from "./errors.js";

export interface ScryptParams {
  dklen: number;
  n: number;
  r: number;
  p: number;
  salt: string;
}

export interface Pbkdf2Params {
  dklen: number;
  c: number;
  prf: "hmac-sha256";
  salt: string;
}

/** A keystore document as written to disk (hex fields without 0x, as the spec and geth write them). */
export interface KeystoreV3 {
  version: 3;
  id: string;
  /** Lowercase hex without 0x; optional in the spec, always written by us. */
  address?: string;
  crypto: {
    cipher: "aes-128-ctr";
    cipherparams: { iv: string };
    ciphertext: string;
    kdf: "scrypt" | "pbkdf2";
    kdfparams: ScryptParams | Pbkdf2Params;
    mac: string;
  };
  /** tpod's own field (other tools ignore it): a name for the key shown by `tpod keys list`. */
  label?: string;
}

/** A scrypt implementation; the default is @noble/hashes' (pure JS), the Node entry passes node:crypto's (faster). */
export type ScryptFn = (
  password: Uint8Array,
  salt: Uint8Array,
  params: { N: number; r: number; p: number; dkLen: number },
) => Promise<Uint8Array>;

export const nobleScrypt: ScryptFn = (password, salt, params) =>
  scryptAsync(password, salt, { ...params, maxmem: MAX_SCRYPT_MEMORY + 1024 });

export interface KdfOptions {
  scrypt?: ScryptFn;
}

export interface EncryptOptions extends KdfOptions {
  /** scrypt N (a power of two); default 2^18 like geth's standard parameters. */
  scryptN?: number;
  scryptR?: number;
  scryptP?: number;
  label?: string;
  /** Fixed salt, IV and id: only for reproducing test vectors. */
  salt?: Uint8Array;
  iv?: Uint8Array;
  id?: string;
}

export interface DecryptedKey {
  address: Address;
  privateKey: Hex;
  account: LocalAccount;
}

export const DEFAULT_SCRYPT = { n: 1 << 18, r: 8, p: 1 } as const;

// Bounds on what a file may ask of us: a hostile keystore must not make us allocate gigabytes or spin for hours.
const MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024;
const MAX_SCRYPT_N = 1 << 21;
const MAX_PBKDF2_ITERATIONS = 10_000_000;
/** Largest keystore document accepted, in characters. */
export const MAX_KEYSTORE_BYTES = 16 * 1024;

const malformed = (message: string, field?: string): never => {
  throw new PublisherError("KEYSTORE_MALFORMED", `keystore: ${message}`, field ? { field } : {});
};

function hexField(value: unknown, field: string, bytes?: { min: number; max: number }): Uint8Array {
  if (typeof value !== "string" || !/^(0x)?([0-9a-fA-F]{2})*$/.test(value))
    malformed(`${field} is not hex`, field);
  const out = hexToBytes(((value as string).startsWith("0x") ? value : `0x${value}`) as Hex);
  if (bytes && (out.length < bytes.min || out.length > bytes.max))
    malformed(
      `${field} must be ${bytes.min === bytes.max ? bytes.min : `${bytes.min}..${bytes.max}`} bytes`,
      field,
    );
  return out;
}

function intField(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)
    malformed(`${field} must be an integer from ${min} to ${max}`, field);
  return value as number;
}

function record(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    malformed(`${field} must be an object`, field);
  return value as Record<string, unknown>;
}

/** Parses and bounds a keystore document (text or already-parsed JSON). */
export function parseKeystore(input: string | unknown): KeystoreV3 {
  let doc: unknown = input;
  if (typeof input === "string") {
    if (input.length > MAX_KEYSTORE_BYTES) malformed(`document is larger than ${MAX_KEYSTORE_BYTES} bytes`);
    try {
      doc = JSON.parse(input);
    } catch {
      malformed("not JSON");
    }
  }
  const root = record(doc, "document");
  if (root.version !== 3) malformed(`version ${String(root.version)} is not 3`, "version");
  // Some older wallets wrote "Crypto".
  const c = record(root.crypto ?? root.Crypto, "crypto");
  if (c.cipher !== "aes-128-ctr") malformed(`cipher ${String(c.cipher)} is not aes-128-ctr`, "crypto.cipher");
  const iv = hexField(record(c.cipherparams, "crypto.cipherparams").iv, "crypto.cipherparams.iv", {
    min: 16,
    max: 16,
  });
  hexField(c.ciphertext, "crypto.ciphertext", { min: 32, max: 32 });
  hexField(c.mac, "crypto.mac", { min: 32, max: 32 });
  const kp = record(c.kdfparams, "crypto.kdfparams");
  let kdfparams: ScryptParams | Pbkdf2Params;
  const salt = bytesToHex(hexField(kp.salt, "crypto.kdfparams.salt", { min: 8, max: 128 })).slice(2);
  const dklen = intField(kp.dklen, "crypto.kdfparams.dklen", 32, 64);
  if (c.kdf === "scrypt") {
    const n = intField(kp.n, "crypto.kdfparams.n", 2, MAX_SCRYPT_N);
    if ((n & (n - 1)) !== 0) malformed("scrypt n must be a power of two", "crypto.kdfparams.n");
    const r = intField(kp.r, "crypto.kdfparams.r", 1, 32);
    const p = intField(kp.p, "crypto.kdfparams.p", 1, 16);
    if (128 * n * r > MAX_SCRYPT_MEMORY)
      malformed("scrypt parameters need more than 1 GiB", "crypto.kdfparams");
    kdfparams = { dklen, n, r, p, salt };
  } else if (c.kdf === "pbkdf2") {
    if (kp.prf !== "hmac-sha256") malformed("pbkdf2 prf must be hmac-sha256", "crypto.kdfparams.prf");
    const iterations = intField(kp.c, "crypto.kdfparams.c", 1, MAX_PBKDF2_ITERATIONS);
    kdfparams = { dklen, c: iterations, prf: "hmac-sha256", salt };
  } else {
    return malformed(`kdf ${String(c.kdf)} is not scrypt or pbkdf2`, "crypto.kdf");
  }
  const out: KeystoreV3 = {
    version: 3,
    id: typeof root.id === "string" ? root.id : "",
    crypto: {
      cipher: "aes-128-ctr",
      cipherparams: { iv: bytesToHex(iv).slice(2) },
      ciphertext: (c.ciphertext as string).replace(/^0x/, "").toLowerCase(),
      kdf: c.kdf,
      kdfparams,
      mac: (c.mac as string).replace(/^0x/, "").toLowerCase(),
    },
  };
  if (root.address !== undefined) {
    const a = hexField(root.address, "address", { min: 20, max: 20 });
    out.address = bytesToHex(a).slice(2);
  }
  if (root.label !== undefined) {
    if (typeof root.label !== "string" || root.label.length > 128)
      malformed("label must be a short string", "label");
    out.label = root.label as string;
  }
  return out;
}

/** The address a keystore says it holds (without decrypting), checksummed; undefined when absent. */
export function keystoreAddress(ks: KeystoreV3): Address | undefined {
  return ks.address ? getAddress(`0x${ks.address}`) : undefined;
}

function deriveKey(passphrase: Uint8Array, ks: KeystoreV3, kdf: KdfOptions): Promise<Uint8Array> {
  const p = ks.crypto.kdfparams;
  const salt = hexToBytes(`0x${p.salt}`);
  if ("n" in p)
    return (kdf.scrypt ?? nobleScrypt)(passphrase, salt, { N: p.n, r: p.r, p: p.p, dkLen: p.dklen });
  return pbkdf2Async(sha256, passphrase, salt, { c: p.c, dkLen: p.dklen });
}

async function aes128Ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await globalThis.crypto.subtle.importKey("raw", new Uint8Array(key), { name: "AES-CTR" }, false, [
    "encrypt",
  ]);
  // CTR is its own inverse; the whole 16-byte block is the counter, as in geth's aes-128-ctr.
  const out = await globalThis.crypto.subtle.encrypt(
    { name: "AES-CTR", counter: new Uint8Array(iv), length: 128 },
    k,
    new Uint8Array(data),
  );
  return new Uint8Array(out);
}

function macOf(dk: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  const body = new Uint8Array(16 + ciphertext.length);
  body.set(dk.subarray(16, 32), 0);
  body.set(ciphertext, 16);
  return keccak_256(body);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Checks a raw private key (0x + 64 hex) and returns it lowercase; throws INVALID_PRIVATE_KEY otherwise. */
export function normalizePrivateKey(text: string): Hex {
  const t = text.trim();
  const hex = (t.startsWith("0x") || t.startsWith("0X") ? `0x${t.slice(2)}` : `0x${t}`).toLowerCase();
  if (!isHex(hex) || hex.length !== 66)
    throw new PublisherError(
      "INVALID_PRIVATE_KEY",
      "a private key is 32 bytes of hex (64 hex digits, 0x optional)",
    );
  try {
    privateKeyToAccount(hex as Hex);
  } catch {
    throw new PublisherError("INVALID_PRIVATE_KEY", "the private key is not a valid secp256k1 key");
  }
  return hex as Hex;
}

function randomBytes(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** Encrypts a private key into a new keystore document (scrypt, aes-128-ctr, keccak-256 MAC). */
export async function encryptKeystore(
  privateKey: Hex,
  passphrase: string,
  options: EncryptOptions = {},
): Promise<KeystoreV3> {
  const key = normalizePrivateKey(privateKey);
  if (passphrase.length === 0) throw new PublisherError("NO_PASSPHRASE", "the passphrase must not be empty");
  const n = options.scryptN ?? DEFAULT_SCRYPT.n;
  const r = options.scryptR ?? DEFAULT_SCRYPT.r;
  const p = options.scryptP ?? DEFAULT_SCRYPT.p;
  const salt = options.salt ?? randomBytes(32);
  const iv = options.iv ?? randomBytes(16);
  const params: ScryptParams = { dklen: 32, n, r, p, salt: bytesToHex(salt).slice(2) };
  const draft: KeystoreV3 = {
    version: 3,
    id: options.id ?? globalThis.crypto.randomUUID(),
    address: privateKeyToAccount(key).address.slice(2).toLowerCase(),
    crypto: {
      cipher: "aes-128-ctr",
      cipherparams: { iv: bytesToHex(iv).slice(2) },
      ciphertext: "",
      kdf: "scrypt",
      kdfparams: params,
      mac: "",
    },
    ...(options.label === undefined ? {} : { label: options.label }),
  };
  // Re-parse our own parameters so encrypting with out-of-bounds ones fails the same way reading would.
  parseKeystore({ ...draft, crypto: { ...draft.crypto, ciphertext: "00".repeat(32), mac: "00".repeat(32) } });
  const dk = await deriveKey(new TextEncoder().encode(passphrase), draft, options);
  const ciphertext = await aes128Ctr(dk.subarray(0, 16), iv, hexToBytes(key));
  draft.crypto.ciphertext = bytesToHex(ciphertext).slice(2);
  draft.crypto.mac = bytesToHex(macOf(dk, ciphertext)).slice(2);
  return draft;
}

/**
 * Decrypts a keystore. A wrong passphrase is WRONG_PASSPHRASE (the MAC does not match); a document whose
 * address field names another key than the one inside is KEYSTORE_MALFORMED.
 */
export async function decryptKeystore(
  input: string | unknown,
  passphrase: string,
  kdf: KdfOptions = {},
): Promise<DecryptedKey> {
  const ks = parseKeystore(input);
  const ciphertext = hexToBytes(`0x${ks.crypto.ciphertext}`);
  const mac = hexToBytes(`0x${ks.crypto.mac}`);
  // geth hashes the passphrase's bytes as given; ethers normalizes to NFKC first. Try both so either opens.
  const candidates = [passphrase, passphrase.normalize("NFKC")].filter((v, i, a) => a.indexOf(v) === i);
  for (const candidate of candidates) {
    const dk = await deriveKey(new TextEncoder().encode(candidate), ks, kdf);
    if (!equalBytes(macOf(dk, ciphertext), mac)) continue;
    const plain = await aes128Ctr(
      dk.subarray(0, 16),
      hexToBytes(`0x${ks.crypto.cipherparams.iv}`),
      ciphertext,
    );
    const privateKey = normalizePrivateKey(bytesToHex(plain));
    const account = privateKeyToAccount(privateKey);
    if (ks.address && ks.address !== account.address.slice(2).toLowerCase()) {
      malformed(`the address field ${ks.address} is not the address of the key inside`, "address");
    }
    return { address: account.address, privateKey, account };
  }
  throw new PublisherError("WRONG_PASSPHRASE", "wrong passphrase: it does not open this keystore");
}
