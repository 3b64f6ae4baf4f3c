import { createHash } from "node:crypto";
import * as dagPb from "@ipld/dag-pb";
import type { AbortOptions } from "@libp2p/interface";
import { UnixFS } from "ipfs-unixfs";
import { exporter } from "ipfs-unixfs-exporter";
import { importByteStream } from "ipfs-unixfs-importer";
import type { CID } from "multiformats/cid";
import { BlobDigestMismatchError, InvalidRootError, SizeLimitError, TruncatedError } from "./errors.js";
import { assertSupportedCid, type ContentStore, DAG_PB_CODEC, RAW_CODEC } from "./store.js";

/**
 * Blobs are stored as UnixFS files with the IPIP-499 "unixfs-v1-2025" profile: CIDv1, raw leaves, 1 MiB
 * fixed-size chunks, balanced DAG with up to 1024 links per node. Any IPFS implementation can `cat` them, and
 * `ipfs add --cid-version=1 --raw-leaves --chunker=size-1048576` of the same bytes gives the same leaves.
 */
export const BLOB_PROFILE = "unixfs-v1-2025";
/** How many blocks one blob read keeps in flight: bounds memory to about this many MiB per blob. */
export const BLOCK_READ_CONCURRENCY = 8;

/** Imports a byte stream as a UnixFS file into `store`, returning its root CID and byte count. */
export async function importBlob(
  store: Pick<ContentStore, "putBlock">,
  data: AsyncIterable<Uint8Array>,
  opts: AbortOptions = {},
): Promise<{ cid: CID; size: number }> {
  let size = 0;
  const counted = (async function* () {
    for await (const chunk of data) {
      size += chunk.byteLength;
      yield chunk;
    }
  })();
  const result = await importByteStream(
    counted,
    {
      put: async (cid, bytes, o) => {
        await store.putBlock(cid, bytes as Uint8Array, { signal: o?.signal ?? opts.signal });
        return cid;
      },
    },
    { profile: BLOB_PROFILE },
  );
  return { cid: result.cid, size };
}

export interface ReadBlobOptions extends AbortOptions {
  /** Read only blocks present locally (never ask the network). */
  offline?: boolean;
  blockReadConcurrency?: number;
}

/**
 * Streams a UnixFS file (or raw block) out of `getBlock`. Knows nothing about sizes or digests: callers wrap
 * it in `verifyBlobStream`, which enforces them.
 */
export async function* readUnixfsFile(
  getBlock: (cid: CID, o: AbortOptions & { offline?: boolean }) => Promise<Uint8Array>,
  cid: CID,
  opts: ReadBlobOptions = {},
): AsyncGenerator<Uint8Array> {
  assertSupportedCid(cid, [RAW_CODEC, DAG_PB_CODEC]);
  const blockstore = {
    // interface-blockstore 7 returns blocks as (async) generators of chunks.
    async *get(c: CID, o?: AbortOptions) {
      yield await getBlock(c, { signal: o?.signal ?? opts.signal, offline: opts.offline });
    },
  };
  const entry = await exporter(cid, blockstore, { signal: opts.signal, offline: opts.offline });
  if (entry.type !== "file" && entry.type !== "raw") {
    throw new InvalidRootError(`${cid} is a UnixFS ${entry.type}, not a file`);
  }
  yield* entry.content({
    signal: opts.signal,
    offline: opts.offline,
    blockReadConcurrency: opts.blockReadConcurrency ?? BLOCK_READ_CONCURRENCY,
  });
}

export interface BlobProgress {
  digest: string;
  bytesDone: number;
  bytesTotal: number;
  /** "peer" for the direct stream, "ipfs" for bitswap or Kubo. */
  via: "peer" | "ipfs";
  /** For "peer": the bulk channel ("tls" or "plain") or the libp2p stream itself. */
  transport?: "tls" | "plain" | "libp2p";
}

/**
 * Passes bytes through while enforcing the declared size (never reads past it) and checking the sha256 digest
 * before signalling the end, so a consumer that writes atomically keeps nothing from a bad blob.
 */
export async function* verifyBlobStream(
  data: AsyncIterable<Uint8Array>,
  expected: { digest: string; size: number },
  onBytes?: (done: number) => void,
  opts: { hash?: boolean } = {},
): AsyncGenerator<Uint8Array> {
  if (!expected.digest.startsWith("sha256:"))
    throw new InvalidRootError(`unsupported digest ${expected.digest}`);
  // hash: false only when the consumer hashes the same bytes itself (the OCI layout writer): one pass, not two.
  const hash = opts.hash === false ? undefined : createHash("sha256");
  let done = 0;
  for await (const chunk of data) {
    done += chunk.byteLength;
    if (done > expected.size) {
      throw new SizeLimitError(
        `blob ${expected.digest} is longer than its declared ${expected.size} bytes`,
        expected.size,
      );
    }
    hash?.update(chunk);
    onBytes?.(done);
    yield chunk;
  }
  if (done < expected.size) throw new TruncatedError(`blob ${expected.digest}`, expected.size, done);
  if (!hash) return;
  const actual = `sha256:${hash.digest("hex")}`;
  if (actual !== expected.digest) throw new BlobDigestMismatchError(expected.digest, actual);
}

/** UnixFS files we write are two levels deep up to 1 GiB; anything deeper than this is not ours. */
const MAX_DAG_DEPTH = 8;

/** The raw-leaf and inline-data pieces of a UnixFS file, in file order, loading inner nodes as it goes. */
async function* filePieces(
  read: (cid: CID) => Promise<Uint8Array>,
  cid: CID,
  depth = 0,
): AsyncGenerator<CID | Uint8Array> {
  if (cid.code === RAW_CODEC) {
    yield cid;
    return;
  }
  if (cid.code !== DAG_PB_CODEC || depth > MAX_DAG_DEPTH)
    throw new InvalidRootError(`${cid} is not a UnixFS file`);
  const node = dagPb.decode(await read(cid));
  if (!node.Data) throw new InvalidRootError(`${cid} has no UnixFS data`);
  const meta = UnixFS.unmarshal(node.Data);
  if (meta.type !== "file" && meta.type !== "raw")
    throw new InvalidRootError(`${cid} is a UnixFS ${meta.type}`);
  if (meta.data && meta.data.byteLength > 0) yield meta.data;
  for (const link of node.Links) yield* filePieces(read, link.Hash, depth + 1);
}

/**
 * Streams a UnixFS file from local block files with `prefetch` whole-block reads in flight, in order. This is
 * the blob server's sender: one readFile per 1 MiB leaf instead of the exporter's generic path. Inner DAG nodes
 * are read with `read`, the raw leaves whose bytes are yielded with `readLeaf` (which may hand out pooled
 * buffers: only yielded chunks are ever given back to a pool).
 */
export async function* readLocalFile(
  read: (cid: CID) => Promise<Uint8Array>,
  cid: CID,
  prefetch = 4,
  readLeaf: (cid: CID) => Promise<Uint8Array> = read,
): AsyncGenerator<Uint8Array> {
  const pending: Promise<Uint8Array>[] = [];
  const pieces = filePieces(read, cid);
  let exhausted = false;
  const fill = async () => {
    while (!exhausted && pending.length < prefetch) {
      const next = await pieces.next();
      if (next.done) {
        exhausted = true;
        break;
      }
      const piece = next.value;
      const p = piece instanceof Uint8Array ? Promise.resolve(piece) : readLeaf(piece);
      p.catch(() => {}); // surfaced when awaited in order below
      pending.push(p);
    }
  };
  await fill();
  while (pending.length > 0) {
    const bytes = await pending.shift()!;
    await fill();
    yield bytes;
  }
}

/**
 * Regroups small network frames (64 KiB yamux frames) into `target`-byte buffers, so a sink does one file
 * write per MiB instead of one per frame; big chunks pass through without a copy.
 */
export async function* rechunk(
  data: AsyncIterable<Uint8Array>,
  target = 1024 * 1024,
): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of data) {
    if (size === 0 && chunk.byteLength >= target) {
      yield chunk;
      continue;
    }
    parts.push(chunk);
    size += chunk.byteLength;
    if (size >= target) {
      yield Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  if (size > 0) yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}
