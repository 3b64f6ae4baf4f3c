import { randomBytes } from "node:crypto";
import { chmod, link, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import type { Ed25519PrivateKey, PeerId } from "@libp2p/interface";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { KeyFileError } from "./errors.js";

// A protobuf-encoded Ed25519 key is 68 bytes; anything much larger is not a key file of ours.
const MAX_KEY_FILE_BYTES = 1024;

/** A fresh Ed25519 libp2p identity key. */
export async function generatePeerKey(): Promise<Ed25519PrivateKey> {
  return generateKeyPair("Ed25519");
}

/** The peer id of a key: the same key always gives the same id. */
export function peerIdFromKey(key: Ed25519PrivateKey): PeerId {
  return peerIdFromPrivateKey(key);
}

/**
 * Writes the key in libp2p's protobuf key encoding to `path` with mode 0600, atomically (temp file + rename),
 * creating the parent directory with mode 0700 if missing. With `overwrite: false` an existing file is kept
 * and the call fails with EEXIST (the temp file is hard-linked into place instead of renamed).
 */
export async function savePeerKey(
  path: string,
  key: Ed25519PrivateKey,
  options: { overwrite?: boolean } = {},
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${randomBytes(6).toString("hex")}.key.tmp`);
  try {
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.writeFile(privateKeyToProtobuf(key));
      await handle.sync();
    } finally {
      await handle.close();
    }
    // The umask cannot widen 0600, but chmod makes the mode explicit whatever the process umask is.
    await chmod(temp, 0o600);
    if (options.overwrite ?? true) {
      await rename(temp, path);
    } else {
      await link(temp, path);
      await rm(temp, { force: true });
    }
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Reads an Ed25519 key written by savePeerKey. Refuses a file that group or others can read or write, since
 * the key is the provider's network identity (the attestation binds it).
 */
export async function loadPeerKey(path: string): Promise<Ed25519PrivateKey> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new KeyFileError(`peer key file ${path} does not exist`, "KEY_FILE_MISSING", { cause: error });
    }
    throw error;
  }
  if (!info.isFile())
    throw new KeyFileError(`peer key file ${path} is not a regular file`, "KEY_FILE_MALFORMED");
  if ((info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8);
    throw new KeyFileError(`peer key file ${path} has mode ${mode}; it must be 600`, "KEY_FILE_PERMISSIONS");
  }
  if (info.size > MAX_KEY_FILE_BYTES) {
    throw new KeyFileError(`peer key file ${path} is too large to be a key`, "KEY_FILE_MALFORMED");
  }
  const bytes = await readFile(path);
  let key: ReturnType<typeof privateKeyFromProtobuf>;
  try {
    key = privateKeyFromProtobuf(bytes);
  } catch (error) {
    throw new KeyFileError(`peer key file ${path} is not a libp2p private key`, "KEY_FILE_MALFORMED", {
      cause: error,
    });
  }
  if (key.type !== "Ed25519") {
    throw new KeyFileError(
      `peer key file ${path} holds a ${key.type} key, not Ed25519`,
      "KEY_FILE_MALFORMED",
    );
  }
  return key;
}

/** Loads the key at `path`, or generates and saves one if the file does not exist yet. */
export async function loadOrCreatePeerKey(path: string): Promise<Ed25519PrivateKey> {
  try {
    return await loadPeerKey(path);
  } catch (error) {
    if (!(error instanceof KeyFileError && error.code === "KEY_FILE_MISSING")) throw error;
  }
  const key = await generatePeerKey();
  try {
    await savePeerKey(path, key, { overwrite: false });
  } catch (error) {
    // Another process created the key between our check and our write: use theirs, never replace it.
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return loadPeerKey(path);
    throw error;
  }
  return key;
}
