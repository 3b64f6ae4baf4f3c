// The keystore directory `$TPOD_HOME/keys`: one Web3 Secret Storage v3 file per key, named by address, mode 0600
// in a 0700 directory, written atomically and never overwritten.
import { scrypt } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { type Address, getAddress, isAddress } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { PublisherError } from "../errors.js";
import {
  type DecryptedKey,
  decryptKeystore,
  type EncryptOptions,
  encryptKeystore,
  type KeystoreV3,
  keystoreAddress,
  MAX_KEYSTORE_BYTES,
  nobleScrypt,
  normalizePrivateKey,
  parseKeystore,
  type ScryptFn,
} from "../keystore.js";
import { assertPrivateFile, ensurePrivateDir, readTextBounded, writeFileAtomic } from "./files.js";

export interface KeyEntry {
  address: Address;
  label?: string;
  file: string;
  /** scrypt or pbkdf2 */
  kdf: string;
}

export interface KeyListing {
  keys: KeyEntry[];
  /** Files in the directory that are not readable keystores, with the reason (listed, never fatal). */
  problems: { file: string; reason: string }[];
}

export type NewKeyOptions = Pick<EncryptOptions, "scryptN" | "scryptR" | "scryptP" | "label">;

const MAX_LABEL = 128;

/**
 * node:crypto's scrypt (native, faster than pure JS; same results). OpenSSL refuses N >= 2^(16 r)
 * (the spec's own test vector has r = 1, N = 2^18): those go to the pure-JS implementation, checked up front
 * because a refused call leaves an OpenSSL error queued that later crashes an unrelated WebCrypto job.
 */
export const nodeScrypt: ScryptFn = (password, salt, params) => {
  const { N, r, p, dkLen } = params;
  if (16 * r < 31 && N >= 2 ** (16 * r)) return nobleScrypt(password, salt, params);
  return new Promise((resolve, reject) => {
    scrypt(password, salt, dkLen, { N, r, p, maxmem: 256 * N * r + 64 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(new Uint8Array(key)),
    );
  });
};
const NODE_KDF = { scrypt: nodeScrypt };

/** Reads and parses one keystore file (bounded, permission-checked). */
export async function readKeystoreFile(file: string, checkPermissions = true): Promise<KeystoreV3> {
  const text = await readTextBounded(file, MAX_KEYSTORE_BYTES, "keystore file", "KEYSTORE_MALFORMED");
  if (text === undefined) throw new PublisherError("KEY_NOT_FOUND", `no keystore file ${file}`);
  if (checkPermissions) await assertPrivateFile(file, "keystore file");
  return parseKeystore(text);
}

export class KeyStore {
  constructor(readonly dir: string) {}

  private fileFor(address: Address): string {
    return join(this.dir, `${address.slice(2).toLowerCase()}.json`);
  }

  async list(): Promise<KeyListing> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { keys: [], problems: [] };
      throw err;
    }
    const listing: KeyListing = { keys: [], problems: [] };
    for (const name of names.filter((n) => n.endsWith(".json")).sort()) {
      const file = join(this.dir, name);
      try {
        const ks = await readKeystoreFile(file);
        const address = keystoreAddress(ks);
        if (!address) throw new PublisherError("KEYSTORE_MALFORMED", "no address field");
        listing.keys.push({
          address,
          file,
          kdf: ks.crypto.kdf,
          ...(ks.label === undefined ? {} : { label: ks.label }),
        });
      } catch (err) {
        listing.problems.push({ file, reason: (err as Error).message });
      }
    }
    return listing;
  }

  /** The entry for an address; KEY_NOT_FOUND when the keystore has none. */
  async find(address: string): Promise<KeyEntry> {
    if (!isAddress(address, { strict: false }))
      throw new PublisherError("KEY_NOT_FOUND", `${address} is not an address`);
    const want = getAddress(address);
    const { keys } = await this.list();
    const found = keys.find((k) => k.address === want);
    if (!found)
      throw new PublisherError("KEY_NOT_FOUND", `no key ${want} in ${this.dir} (see \`tpod keys list\`)`);
    return found;
  }

  /** Generates a new key and stores it encrypted; returns its entry. */
  async create(passphrase: string, options: NewKeyOptions = {}): Promise<KeyEntry> {
    return this.store(generatePrivateKey(), passphrase, options);
  }

  /** Stores a raw private key (hex text) encrypted. */
  async importPrivateKey(
    privateKeyText: string,
    passphrase: string,
    options: NewKeyOptions = {},
  ): Promise<KeyEntry> {
    return this.store(normalizePrivateKey(privateKeyText), passphrase, options);
  }

  /**
   * Imports another v3 keystore document: it must open with `passphrase` (proving the file is what it claims),
   * and is stored re-encrypted with the same passphrase under tpod's parameters and label.
   */
  async importKeystore(text: string, passphrase: string, options: NewKeyOptions = {}): Promise<KeyEntry> {
    const parsed = parseKeystore(text);
    const key = await decryptKeystore(parsed, passphrase, NODE_KDF);
    const label = options.label ?? parsed.label;
    return this.store(key.privateKey, passphrase, { ...options, ...(label === undefined ? {} : { label }) });
  }

  async unlock(address: string, passphrase: string): Promise<DecryptedKey> {
    const entry = await this.find(address);
    return decryptKeystore(await readKeystoreFile(entry.file), passphrase, NODE_KDF);
  }

  private async store(
    privateKey: `0x${string}`,
    passphrase: string,
    options: NewKeyOptions,
  ): Promise<KeyEntry> {
    if (options.label !== undefined && (options.label.length > MAX_LABEL || /[\p{Cc}]/u.test(options.label)))
      throw new PublisherError("KEYSTORE_MALFORMED", `a label is at most ${MAX_LABEL} printable characters`);
    const address = privateKeyToAccount(privateKey).address;
    const file = this.fileFor(address);
    // Fail fast before the (slow) KDF; the exclusive link below still settles a race.
    if (await stat(file).catch(() => undefined))
      throw new PublisherError("KEY_EXISTS", `the keystore already holds ${address} (${file})`);
    const ks = await encryptKeystore(privateKey, passphrase, { ...NODE_KDF, ...options });
    await ensurePrivateDir(this.dir);
    try {
      await writeFileAtomic(file, `${JSON.stringify(ks, null, 2)}\n`, { mode: 0o600, exclusive: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST")
        throw new PublisherError("KEY_EXISTS", `the keystore already holds ${address} (${file})`);
      throw err;
    }
    return { address, file, kdf: "scrypt", ...(options.label === undefined ? {} : { label: options.label }) };
  }
}
