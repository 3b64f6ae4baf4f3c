// Which key signs: --key ADDRESS (the keystore) or --key FILE (a v3 keystore file or a raw hex key file), else
// TPOD_KEY, else the network file's key, else on the devnet its funded publisher key.
import { stat } from "node:fs/promises";
import { type Address, getAddress, isAddress } from "viem";
import { type LocalAccount, privateKeyToAccount } from "viem/accounts";
import { PublisherError } from "../errors.js";
import { decryptKeystore, MAX_KEYSTORE_BYTES, normalizePrivateKey } from "../keystore.js";
import type { ResolvedNetwork } from "../network.js";
import { assertPrivateFile, type Env, readTextBounded, tpodHome, tpodPaths } from "./files.js";
import { KeyStore, nodeScrypt, readKeystoreFile } from "./keystore.js";
import { getPassphrase, type PassphraseOptions } from "./passphrase.js";

export type KeyRef =
  | { kind: "keystore"; address: Address; file: string; source: string }
  | { kind: "keystore-file"; file: string; address?: Address; source: string }
  | { kind: "raw-file"; file: string; source: string }
  | { kind: "devnet"; address: Address; source: string };

export interface KeyOptions {
  /** --key ADDRESS|FILE */
  key?: string;
  home?: string;
  env?: Env;
}

export interface ResolvedAccount {
  account: LocalAccount;
  address: Address;
  /** Where the key came from (never the key): "--key 0x…", "devnet publisher key"... */
  source: string;
}

/** Decides which key a command uses, without unlocking it (so `--json` output can name it first). */
export async function resolveKeyRef(
  network: ResolvedNetwork | undefined,
  o: KeyOptions = {},
): Promise<KeyRef> {
  const env = o.env ?? process.env;
  const home = o.home ?? tpodHome(env);
  const [given, label] =
    o.key !== undefined
      ? [o.key, "--key"]
      : env.TPOD_KEY
        ? [env.TPOD_KEY, "TPOD_KEY"]
        : network?.defaultKey
          ? [network.defaultKey, `network ${network.name}`]
          : [undefined, ""];
  if (given !== undefined) {
    if (isAddress(given, { strict: false })) {
      const entry = await new KeyStore(tpodPaths(home).keys).find(given);
      return {
        kind: "keystore",
        address: entry.address,
        file: entry.file,
        source: `${label} ${entry.address}`,
      };
    }
    const st = await stat(given).catch(() => undefined);
    if (!st?.isFile()) {
      throw new PublisherError("KEY_NOT_FOUND", `${label} ${given} is neither an address nor a key file`);
    }
    const text = (await readTextBounded(given, MAX_KEYSTORE_BYTES, "key file", "KEYSTORE_MALFORMED")) ?? "";
    if (text.trimStart().startsWith("{")) {
      const ks = await readKeystoreFile(given);
      return {
        kind: "keystore-file",
        file: given,
        ...(ks.address ? { address: getAddress(`0x${ks.address}`) } : {}),
        source: `${label} ${given}`,
      };
    }
    return { kind: "raw-file", file: given, source: `${label} ${given}` };
  }
  if (network?.isDevnet && network.devnet?.publisherKey) {
    const address = privateKeyToAccount(network.devnet.publisherKey).address;
    return { kind: "devnet", address, source: "devnet publisher key (a public test key)" };
  }
  throw new PublisherError(
    "NO_KEY",
    "no key: pass --key ADDRESS|FILE or set TPOD_KEY (create one with `tpod keys new`)" +
      (network && !network.isDevnet ? "" : "; on a running devnet its publisher key is used"),
  );
}

/** Unlocks a key reference (asking for the passphrase where the key is encrypted). */
export async function unlockKey(
  ref: KeyRef,
  network: ResolvedNetwork | undefined,
  passphrase: PassphraseOptions = {},
): Promise<ResolvedAccount> {
  switch (ref.kind) {
    case "devnet": {
      const account = privateKeyToAccount(network!.devnet!.publisherKey!);
      return { account, address: account.address, source: ref.source };
    }
    case "raw-file": {
      await assertPrivateFile(ref.file, "key file");
      const text = (await readTextBounded(ref.file, 1024, "key file", "INVALID_PRIVATE_KEY")) ?? "";
      const account = privateKeyToAccount(normalizePrivateKey(text));
      return { account, address: account.address, source: ref.source };
    }
    case "keystore":
    case "keystore-file": {
      const { passphrase: p } = await getPassphrase({
        ...passphrase,
        purpose: passphrase.purpose ?? `key ${ref.source}`,
      });
      const key = await decryptKeystore(await readKeystoreFile(ref.file), p, { scrypt: nodeScrypt });
      return { account: key.account, address: key.address, source: ref.source };
    }
  }
}

/** resolveKeyRef then unlockKey. */
export async function resolveAccount(
  network: ResolvedNetwork | undefined,
  o: KeyOptions & { passphrase?: PassphraseOptions } = {},
): Promise<ResolvedAccount> {
  return unlockKey(await resolveKeyRef(network, o), network, {
    ...(o.env ? { env: o.env } : {}),
    ...o.passphrase,
  });
}
