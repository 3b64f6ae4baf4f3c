/**
 * Keys the daemon holds: the encryption key pair (generated inside the TEE at first start; publishers and
 * developers encrypt image keys and secrets to its public half, which attestation binds) and the provider's
 * Ethereum account key (signs quotes and claims). Both live in 0600 files; anything group/other-readable is refused.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { chmod, link, mkdir, open, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { type PrivateKey, parsePrivateKey } from "@trustedpods/oci";
import { calculateJwkThumbprint, type JWK } from "jose";
import type { Hex, LocalAccount } from "viem";
import { privateKeyToAccount } from "viem/accounts";

export class KeyError extends Error {
  override readonly name = "KeyError";
  constructor(
    readonly code: "KEY_FILE_PERMISSIONS" | "KEY_FILE_MALFORMED" | "KEY_FILE_MISSING",
    message: string,
  ) {
    super(message);
  }
}

/** The daemon's encryption key: P-256, used with JWE ECDH-ES+A256KW (image layer keys, secrets). */
export interface EncryptionKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Public key as SPKI DER: the bytes attestation's report data binds and AttestResponse carries. */
  publicKeyDer: Uint8Array;
  publicJwk: JWK;
  /** RFC 7638 thumbprint: the JWE `kid` and the manifest's secret `keyRef`. */
  kid: string;
  /** The same key in @trustedpods/oci's form, for decryptImage. */
  ociKey: PrivateKey;
}

async function assertPrivateFile(file: string): Promise<void> {
  const st = await stat(file);
  if ((st.mode & 0o077) !== 0) {
    throw new KeyError(
      "KEY_FILE_PERMISSIONS",
      `${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`,
    );
  }
}

/** Writes a new file 0600 atomically; never replaces an existing one (two starts cannot race to two keys). */
export async function writePrivateFileExclusive(file: string, data: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    // link() fails with EEXIST instead of replacing: the first writer wins, the loser reads its key.
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  await chmod(file, 0o600);
}

async function fromPrivateJwk(jwk: JWK, file: string): Promise<EncryptionKey> {
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || typeof jwk.d !== "string")
    throw new KeyError("KEY_FILE_MALFORMED", `${file} is not a P-256 private JWK`);
  const privateKey = createPrivateKey({ key: jwk as import("node:crypto").JsonWebKey, format: "jwk" });
  const publicKey = createPublicKey(privateKey);
  const publicJwk = publicKey.export({ format: "jwk" }) as JWK;
  const kid = await calculateJwkThumbprint(publicJwk as Parameters<typeof calculateJwkThumbprint>[0]);
  return {
    privateKey,
    publicKey,
    publicKeyDer: new Uint8Array(publicKey.export({ format: "der", type: "spki" })),
    publicJwk: { ...publicJwk, kid, alg: "ECDH-ES+A256KW", use: "enc" },
    kid,
    ociKey: await parsePrivateKey(JSON.stringify(jwk)),
  };
}

/** Loads the encryption key from `file`, or generates a P-256 key pair and stores it (0600) at first start. */
export async function loadOrCreateEncryptionKey(file: string): Promise<EncryptionKey> {
  let text: string | undefined;
  try {
    await assertPrivateFile(file);
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (text === undefined) {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await writePrivateFileExclusive(file, `${JSON.stringify(privateKey.export({ format: "jwk" }))}\n`);
    text = await readFile(file, "utf8");
  }
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch {
    throw new KeyError("KEY_FILE_MALFORMED", `${file} is not JSON`);
  }
  return fromPrivateJwk(jwk, file);
}

/** Reads the provider account key: one 0x-prefixed 32-byte hex private key, in a 0600 file. */
export async function loadAccountKey(file: string): Promise<LocalAccount> {
  try {
    await assertPrivateFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT")
      throw new KeyError(
        "KEY_FILE_MISSING",
        `account key file ${file} does not exist (tpod provider init creates one)`,
      );
    throw err;
  }
  const text = (await readFile(file, "utf8")).trim();
  if (!/^0x[0-9a-fA-F]{64}$/.test(text))
    throw new KeyError("KEY_FILE_MALFORMED", `${file} must hold one 0x-prefixed 32-byte hex private key`);
  return privateKeyToAccount(text as Hex);
}
