import type { AbortOptions } from "@libp2p/interface";
import { CID } from "multiformats/cid";
import { sha256 } from "multiformats/hashes/sha2";
import { BlobDigestMismatchError, InvalidRootError, SizeLimitError } from "./errors.js";

/** Largest block we accept from anywhere: bitswap's own message limit is 2 MiB, and we chunk at 1 MiB. */
export const MAX_BLOCK_SIZE = 2 * 1024 * 1024;

export const RAW_CODEC = 0x55;
export const DAG_PB_CODEC = 0x70;
export const DAG_CBOR_CODEC = 0x71;
const SHA2_256 = 0x12;

export interface GetBlockOptions extends AbortOptions {
  /** Refuse blocks above this many bytes (default MAX_BLOCK_SIZE). */
  maxSize?: number;
}

/**
 * The few block operations images and secrets need, over either an embedded Helia node or a Kubo node's
 * RPC API. Every block returned has been checked against its CID's sha2-256 multihash.
 */
export interface ContentStore {
  readonly kind: "helia" | "kubo";
  putBlock(cid: CID, bytes: Uint8Array, opts?: AbortOptions): Promise<void>;
  getBlock(cid: CID, opts?: GetBlockOptions): Promise<Uint8Array>;
  hasBlock(cid: CID, opts?: AbortOptions): Promise<boolean>;
  /** Pins `cid` and everything it links to (dag-cbor links, UnixFS children). */
  pin(cid: CID, opts?: AbortOptions): Promise<void>;
  unpin(cid: CID, opts?: AbortOptions): Promise<void>;
  isPinned(cid: CID, opts?: AbortOptions): Promise<boolean>;
}

/** Only sha2-256 CIDs of the codecs we produce are accepted from roots we did not write. */
export function assertSupportedCid(
  cid: CID,
  codecs: number[] = [RAW_CODEC, DAG_PB_CODEC, DAG_CBOR_CODEC],
): void {
  if (cid.multihash.code !== SHA2_256) {
    throw new InvalidRootError(`unsupported hash 0x${cid.multihash.code.toString(16)} in ${cid}`);
  }
  if (!codecs.includes(cid.code))
    throw new InvalidRootError(`unsupported codec 0x${cid.code.toString(16)} in ${cid}`);
}

export function parseCid(text: string): CID {
  try {
    return CID.parse(text.trim()).toV1();
  } catch (err) {
    throw new InvalidRootError(
      `not a CID: ${JSON.stringify(text.slice(0, 100))} (${(err as Error).message})`,
    );
  }
}

/** Checks a block against its CID; stores and networks are not trusted to have done it. */
export async function verifyBlock(cid: CID, bytes: Uint8Array, maxSize = MAX_BLOCK_SIZE): Promise<void> {
  if (bytes.byteLength > maxSize) {
    throw new SizeLimitError(
      `block ${cid} is ${bytes.byteLength} bytes, over the ${maxSize} byte limit`,
      maxSize,
    );
  }
  assertSupportedCid(cid);
  const digest = await sha256.digest(bytes);
  const expected = Buffer.from(cid.multihash.digest).toString("hex");
  const actual = Buffer.from(digest.digest).toString("hex");
  if (expected !== actual) throw new BlobDigestMismatchError(`block ${cid}`, `sha2-256:${actual}`);
}

/** Computes a raw-codec CIDv1 for bytes. */
export async function rawCid(bytes: Uint8Array): Promise<CID> {
  return CID.createV1(RAW_CODEC, await sha256.digest(bytes));
}

/** Collects a (possibly chunked) block stream into one buffer, refusing to grow past `max`. */
export async function collectBounded(
  chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  max: number,
  what: string,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size > max) throw new SizeLimitError(`${what} is over the ${max} byte limit`, max);
    parts.push(chunk);
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}
