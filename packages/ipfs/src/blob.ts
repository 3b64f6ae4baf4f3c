import { createHash } from "node:crypto";
import type { AbortOptions } from "@libp2p/interface";
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
}

/**
 * Passes bytes through while enforcing the declared size (never reads past it) and checking the sha256 digest
 * before signalling the end, so a consumer that writes atomically keeps nothing from a bad blob.
 */
export async function* verifyBlobStream(
  data: AsyncIterable<Uint8Array>,
  expected: { digest: string; size: number },
  onBytes?: (done: number) => void,
): AsyncGenerator<Uint8Array> {
  if (!expected.digest.startsWith("sha256:"))
    throw new InvalidRootError(`unsupported digest ${expected.digest}`);
  const hash = createHash("sha256");
  let done = 0;
  for await (const chunk of data) {
    done += chunk.byteLength;
    if (done > expected.size) {
      throw new SizeLimitError(
        `blob ${expected.digest} is longer than its declared ${expected.size} bytes`,
        expected.size,
      );
    }
    hash.update(chunk);
    onBytes?.(done);
    yield chunk;
  }
  if (done < expected.size) throw new TruncatedError(`blob ${expected.digest}`, expected.size, done);
  const actual = `sha256:${hash.digest("hex")}`;
  if (actual !== expected.digest) throw new BlobDigestMismatchError(expected.digest, actual);
}
