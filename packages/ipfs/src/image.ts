import * as dagCbor from "@ipld/dag-cbor";
import type { AbortOptions } from "@libp2p/interface";
import {
  BlobNotFoundError,
  type Descriptor,
  type ImageSink,
  type ImageSource,
  DigestMismatchError as OciDigestMismatchError,
  withLayoutWriter,
} from "@trustedpods/oci";
import { CID } from "multiformats/cid";
import { sha256 } from "multiformats/hashes/sha2";
import { type BlobProgress, importBlob, readUnixfsFile, rechunk, verifyBlobStream } from "./blob.js";
import type { BulkMode } from "./bulk.js";
import { BlobDigestMismatchError, InvalidRootError, IpfsTimeoutError, SizeLimitError } from "./errors.js";
import { DEFAULT_BULK_MODES, fetchBlobFromPeer, type PeerTransport } from "./fastpath.js";
import type { IpfsNode } from "./node.js";
import {
  assertSupportedCid,
  type ContentStore,
  DAG_CBOR_CODEC,
  DAG_PB_CODEC,
  parseCid,
  RAW_CODEC,
} from "./store.js";

/** The `type` field of an image root object; bump the version on any incompatible change. */
export const IMAGE_ROOT_TYPE = "trusted-pods/oci-image/v1";

/** One blob of the image: its OCI identity and the UnixFS file that holds its bytes. */
export interface ImageBlobEntry {
  digest: string;
  size: number;
  mediaType: string;
  cid: CID;
}

/**
 * The dag-cbor object a root CID names. Blob CIDs are real IPLD links, so pinning the root pins the image and
 * any IPFS node can walk it. The blob digests (sha256 of the exact bytes) are what a puller verifies.
 */
export interface ImageRoot {
  type: typeof IMAGE_ROOT_TYPE;
  /** The image manifest or index descriptor that roots the OCI image. */
  root: Descriptor;
  blobs: ImageBlobEntry[];
}

export interface PullLimits {
  /** Bytes of the root object (default 1 MiB). */
  maxRootSize: number;
  /** Number of blobs (default 10 000). */
  maxBlobs: number;
  /** Sum of declared blob sizes (default 64 GiB). */
  maxImageSize: number;
}

export const DEFAULT_PULL_LIMITS: PullLimits = {
  maxRootSize: 1024 * 1024,
  maxBlobs: 10_000,
  maxImageSize: 64 * 1024 ** 3,
};

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** A store that may also be our own node (then published blobs are recorded for the fast path). */
type PushStore = ContentStore & Partial<Pick<IpfsNode, "recordBlob">>;

export interface PushOptions extends AbortOptions {
  /** Pin the root (and so every blob) in the store (default true). */
  pin?: boolean;
  onProgress?: (p: BlobProgress) => void;
}

export interface PushResult {
  cid: CID;
  root: ImageRoot;
}

/** Stores every blob of `source` as a UnixFS file, then the root object; returns the root CID. */
export async function pushImage(
  store: PushStore,
  source: ImageSource,
  opts: PushOptions = {},
): Promise<PushResult> {
  const descs = await source.listBlobs();
  const blobs: ImageBlobEntry[] = [];
  for (const desc of descs) {
    if (!DIGEST_RE.test(desc.digest))
      throw new InvalidRootError(`only sha256 blobs can be pushed: ${desc.digest}`);
    // Sizes are enforced here; the digest is not hashed a second time: an ImageSource's openBlob verifies it
    // (and a puller re-verifies every byte anyway).
    const data = verifyBlobStream(
      source.openBlob(desc.digest),
      desc,
      (done) =>
        opts.onProgress?.({ digest: desc.digest, bytesDone: done, bytesTotal: desc.size, via: "ipfs" }),
      { hash: false },
    );
    // Only the signal goes down: Helia would feed its own progress events to our onProgress.
    const { cid } = await importBlob(store, data, { signal: opts.signal });
    await store.recordBlob?.(desc.digest, cid, desc.size);
    blobs.push({ digest: desc.digest, size: desc.size, mediaType: desc.mediaType, cid });
  }
  const root: ImageRoot = { type: IMAGE_ROOT_TYPE, root: cleanDescriptor(source.root), blobs };
  const bytes = dagCbor.encode(root);
  const cid = CID.createV1(DAG_CBOR_CODEC, await sha256.digest(bytes));
  await store.putBlock(cid, bytes, { signal: opts.signal });
  if (opts.pin ?? true) await store.pin(cid, { signal: opts.signal });
  return { cid, root };
}

/** dag-cbor cannot hold `undefined`; keep the fields an index.json entry needs. */
function cleanDescriptor(desc: Descriptor): Descriptor {
  const out: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (desc.annotations && Object.keys(desc.annotations).length > 0) out.annotations = { ...desc.annotations };
  if (desc.artifactType !== undefined) out.artifactType = desc.artifactType;
  return out;
}

/** Validates a decoded root object from the network: every field, every bound. */
export function parseImageRoot(value: unknown, limits: PullLimits = DEFAULT_PULL_LIMITS): ImageRoot {
  const fail = (msg: string): never => {
    throw new InvalidRootError(`image root: ${msg}`);
  };
  if (!isRecord(value)) return fail("not a map");
  if (value.type !== IMAGE_ROOT_TYPE)
    return fail(`type is ${JSON.stringify(value.type)}, want ${IMAGE_ROOT_TYPE}`);
  const root = parseDescriptor(value.root, "root", fail);
  if (!Array.isArray(value.blobs)) return fail("blobs is not a list");
  if (value.blobs.length > limits.maxBlobs) {
    throw new SizeLimitError(
      `image root lists ${value.blobs.length} blobs, over ${limits.maxBlobs}`,
      limits.maxBlobs,
    );
  }
  const seen = new Set<string>();
  let total = 0;
  const blobs = value.blobs.map((b, i): ImageBlobEntry => {
    const d = parseDescriptor(b, `blobs[${i}]`, fail);
    if (!isRecord(b)) return fail(`blobs[${i}] is not a map`);
    const cid = CID.asCID(b.cid);
    if (!cid) return fail(`blobs[${i}].cid is not a link`);
    assertSupportedCid(cid, [RAW_CODEC, DAG_PB_CODEC]);
    if (seen.has(d.digest)) fail(`blob ${d.digest} listed twice`);
    seen.add(d.digest);
    total += d.size;
    if (total > limits.maxImageSize) {
      throw new SizeLimitError(`image is over the ${limits.maxImageSize} byte limit`, limits.maxImageSize);
    }
    return { digest: d.digest, size: d.size, mediaType: d.mediaType, cid };
  });
  if (!seen.has(root.digest)) fail(`root ${root.digest} is not among the blobs`);
  return { type: IMAGE_ROOT_TYPE, root, blobs };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function parseDescriptor(v: unknown, where: string, fail: (msg: string) => never): Descriptor {
  if (!isRecord(v)) return fail(`${where} is not a map`);
  const { mediaType, digest, size, annotations, artifactType } = v;
  if (typeof mediaType !== "string" || !MEDIA_TYPE_RE.test(mediaType)) fail(`${where}.mediaType is invalid`);
  if (typeof digest !== "string" || !DIGEST_RE.test(digest)) fail(`${where}.digest is not a sha256 digest`);
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) fail(`${where}.size is invalid`);
  const out: Descriptor = { mediaType: mediaType as string, digest: digest as string, size: size as number };
  if (annotations !== undefined) {
    if (!isRecord(annotations)) return fail(`${where}.annotations is not a map`);
    const entries = Object.entries(annotations);
    if (entries.length > 256 || entries.some(([, val]) => typeof val !== "string")) {
      fail(`${where}.annotations must be at most 256 strings`);
    }
    out.annotations = Object.fromEntries(entries) as Record<string, string>;
  }
  if (artifactType !== undefined) {
    if (typeof artifactType !== "string" || !MEDIA_TYPE_RE.test(artifactType))
      fail(`${where}.artifactType is invalid`);
    out.artifactType = artifactType as string;
  }
  return out;
}

export interface FetchRootOptions extends AbortOptions {
  limits?: Partial<PullLimits>;
  timeoutMs?: number;
}

/** Fetches and validates the root object named by `cid` (what `tpod image inspect CID` shows). */
export async function inspectImage(store: ContentStore, cid: CID | string, opts: FetchRootOptions = {}) {
  const rootCid = typeof cid === "string" ? parseCid(cid) : cid;
  return withTimeout(`fetching image root ${rootCid}`, opts, (signal) =>
    fetchRoot(store, rootCid, { ...DEFAULT_PULL_LIMITS, ...opts.limits }, signal),
  );
}

async function fetchRoot(
  store: ContentStore,
  cid: CID,
  limits: PullLimits,
  signal: AbortSignal,
): Promise<ImageRoot> {
  assertSupportedCid(cid, [DAG_CBOR_CODEC]);
  const bytes = await store.getBlock(cid, { signal, maxSize: limits.maxRootSize });
  let value: unknown;
  try {
    value = dagCbor.decode(bytes);
  } catch (err) {
    throw new InvalidRootError(`image root ${cid} is not dag-cbor: ${(err as Error).message}`);
  }
  return parseImageRoot(value, limits);
}

export interface PullOptions extends FetchRootOptions {
  /**
   * Multiaddrs (with /p2p/PEER_ID) of peers that published the image. With an embedded node, each blob is asked
   * of them over /trusted-pods/blob/1.0.0 first; bitswap (which also asks them) is the fallback.
   */
  peers?: string[];
  /** Use the direct blob stream when peers are known (default true). */
  fastPath?: boolean;
  /**
   * Bulk channel modes accepted from a peer, in order of preference (default ["plain", "tls"]; `[]`: bytes
   * only inside libp2p). The peer serves the first one it offers; the digest check is the same on every path
   * (docs/ipfs.md).
   */
  bulk?: BulkMode[];
  /** Abort a blob when no byte arrives for this long (default 30 s). */
  idleTimeoutMs?: number;
  /** Blobs fetched at once (default 4). */
  concurrency?: number;
  /**
   * The sink verifies every blob's sha256 itself (the OCI layout writer does): skip our own hash pass and
   * translate the sink's digest errors into BlobDigestMismatchError. Sizes are always enforced here.
   */
  sinkVerifies?: boolean;
  /**
   * The sink is done with each chunk when it asks for the next one (the OCI layout writer is: it hashes and
   * writes a chunk, then reads on). The bulk channel then reuses its receive buffers: a fresh MiB per MiB
   * costs a full garbage collection every ~64 MiB. Never set it for a sink that keeps chunks.
   */
  sinkReleasesChunks?: boolean;
  /** Name written as the image's org.opencontainers.image.ref.name in the sink. */
  refName?: string;
  onProgress?: (p: BlobProgress) => void;
}

/**
 * Fetches the image named by `cid` into `sink`, verifying the size and sha256 digest of every blob while
 * streaming. Declared sizes are enforced: a malicious root cannot make this read more than it declared, and the
 * total is bounded by `limits`. On failure `sink.finish` is never called.
 */
export async function pullImage(
  store: ContentStore,
  cid: CID | string,
  sink: ImageSink,
  opts: PullOptions = {},
): Promise<ImageRoot> {
  const rootCid = typeof cid === "string" ? parseCid(cid) : cid;
  const limits = { ...DEFAULT_PULL_LIMITS, ...opts.limits };
  const node = store.kind === "helia" ? (store as IpfsNode) : undefined;
  return withTimeout(`pulling image ${rootCid}`, opts, async (signal) => {
    const peers = opts.peers ?? [];
    if (node) {
      // Connected peers are the only ones bitswap asks (no routing): dial the publishers first.
      await Promise.allSettled(peers.map((p) => node.dial(p, { signal })));
    }
    const image = await fetchRoot(store, rootCid, limits, signal);
    const others = image.blobs.filter((b) => b.digest !== image.root.digest);
    const rootBlob = image.blobs.find((b) => b.digest === image.root.digest)!;
    // A peer whose bulk channel could not be opened once (a firewall passing only libp2p's port) is not asked
    // for it again during this pull: each attempt would wait out the open timeout first.
    const noBulk = new Set<string>();
    const fetchOne = (b: ImageBlobEntry) => fetchBlob(store, node, b, sink, peers, opts, signal, noBulk);
    await runLimited(others, opts.concurrency ?? 4, fetchOne, signal);
    await fetchOne(rootBlob);
    await sink.finish(image.root, opts.refName);
    return image;
  });
}

/** Errors that mean the bytes are wrong or the caller gave up: never retried elsewhere. */
function isFatal(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted || err instanceof BlobDigestMismatchError || err instanceof SizeLimitError;
}

async function fetchBlob(
  store: ContentStore,
  node: IpfsNode | undefined,
  blob: ImageBlobEntry,
  sink: ImageSink,
  peers: string[],
  opts: PullOptions,
  signal: AbortSignal,
  noBulk: Set<string>,
): Promise<void> {
  if (await sink.hasBlob(blob.digest)) return;
  const hash = !opts.sinkVerifies;
  const write = (data: AsyncIterable<Uint8Array>) =>
    sink.writeBlob(desc, data).catch((err: unknown) => {
      throw err instanceof OciDigestMismatchError
        ? new BlobDigestMismatchError(err.expected, err.actual)
        : err;
    });
  const desc: Descriptor = { mediaType: blob.mediaType, digest: blob.digest, size: blob.size };
  let transport: PeerTransport | undefined;
  const progress = (via: BlobProgress["via"]) => (done: number) =>
    opts.onProgress?.({
      digest: blob.digest,
      bytesDone: done,
      bytesTotal: blob.size,
      via,
      ...(via === "peer" && transport ? { transport } : {}),
    });
  const peerOpts = (peer: string) => ({
    signal,
    idleTimeoutMs: opts.idleTimeoutMs,
    reuseBuffers: opts.sinkReleasesChunks ?? false,
    bulk: noBulk.has(peer) ? [] : (opts.bulk ?? DEFAULT_BULK_MODES),
    onTransport: (t: PeerTransport) => {
      transport = t;
    },
    onBulkRefused: () => noBulk.add(peer),
  });
  if (node && (opts.fastPath ?? true)) {
    for (const peer of peers) {
      try {
        const bytes = fetchBlobFromPeer(node.libp2p, peer, blob.digest, peerOpts(peer));
        await write(rechunk(verifyBlobStream(bytes, blob, progress("peer"), { hash })));
        return;
      } catch (err) {
        if (isFatal(err, signal)) throw err;
        // The peer lacks the blob, does not speak the protocol, or went away: try the next one, then bitswap.
      }
    }
  }
  const getBlock = (c: CID, o: AbortOptions) => store.getBlock(c, { signal: o.signal ?? signal });
  const bytes = readUnixfsFile(getBlock, blob.cid, { signal });
  await write(verifyBlobStream(bytes, blob, progress("ipfs"), { hash }));
}

async function runLimited<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      signal.throwIfAborted();
      await fn(items[next++]!);
    }
  });
  // allSettled first so no worker still writes into the sink when we report the first error.
  const results = await Promise.allSettled(workers);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

/** Runs `fn` under the caller's signal and an optional deadline; a deadline hit becomes IpfsTimeoutError. */
async function withTimeout<T>(
  what: string,
  opts: { signal?: AbortSignal; timeoutMs?: number },
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = new AbortController();
  const timer =
    opts.timeoutMs !== undefined
      ? setTimeout(() => deadline.abort(new IpfsTimeoutError(what, opts.timeoutMs!)), opts.timeoutMs)
      : undefined;
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline.signal]) : deadline.signal;
  try {
    return await fn(signal);
  } catch (err) {
    if (deadline.signal.aborted) throw deadline.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Pulls into a new OCI layout directory `dir`; on any failure nothing is left at `dir`. */
export async function pullImageToLayout(
  store: ContentStore,
  cid: CID | string,
  dir: string,
  opts: PullOptions = {},
): Promise<ImageRoot> {
  return withLayoutWriter(dir, (writer) =>
    pullImage(store, cid, writer, { sinkVerifies: true, sinkReleasesChunks: true, ...opts }),
  );
}

/** An image on IPFS seen as an OCI ImageSource (for inspect, or for copying into any ImageSink). */
export interface IpfsImageSource extends ImageSource {
  readonly cid: CID;
  readonly image: ImageRoot;
}

/**
 * Fetches the root object named by `cid` and returns an ImageSource whose blobs stream from the publisher
 * peers (fast path) or bitswap/Kubo, each verified against its declared size and sha256 digest.
 * `timeoutMs` bounds fetching the root; blob reads are bounded by `idleTimeoutMs` and `signal`.
 */
export async function openIpfsImage(
  store: ContentStore,
  cid: CID | string,
  opts: Omit<PullOptions, "sinkVerifies" | "refName" | "concurrency"> = {},
): Promise<IpfsImageSource> {
  const rootCid = typeof cid === "string" ? parseCid(cid) : cid;
  const limits = { ...DEFAULT_PULL_LIMITS, ...opts.limits };
  const node = store.kind === "helia" ? (store as IpfsNode) : undefined;
  const peers = opts.peers ?? [];
  const image = await withTimeout(`fetching image root ${rootCid}`, opts, async (signal) => {
    if (node) await Promise.allSettled(peers.map((p) => node.dial(p, { signal })));
    return fetchRoot(store, rootCid, limits, signal);
  });
  const byDigest = new Map(image.blobs.map((b) => [b.digest, b]));
  const signal = opts.signal ?? new AbortController().signal;
  return {
    cid: rootCid,
    image,
    root: image.root,
    async listBlobs() {
      return image.blobs.map((b) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size }));
    },
    openBlob(digest) {
      const blob = byDigest.get(digest);
      if (!blob) throw new BlobNotFoundError(digest);
      return openVerifiedBlob(store, node, blob, peers, opts, signal);
    },
  };
}

async function* openVerifiedBlob(
  store: ContentStore,
  node: IpfsNode | undefined,
  blob: ImageBlobEntry,
  peers: string[],
  opts: PullOptions,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  let transport: PeerTransport | undefined;
  const progress = (via: BlobProgress["via"]) => (done: number) =>
    opts.onProgress?.({
      digest: blob.digest,
      bytesDone: done,
      bytesTotal: blob.size,
      via,
      ...(via === "peer" && transport ? { transport } : {}),
    });
  if (node && (opts.fastPath ?? true)) {
    for (const peer of peers) {
      let started = false;
      try {
        const bytes = fetchBlobFromPeer(node.libp2p, peer, blob.digest, {
          signal,
          idleTimeoutMs: opts.idleTimeoutMs,
          ...(opts.bulk ? { bulk: opts.bulk } : {}),
          onTransport: (t) => {
            transport = t;
          },
        });
        for await (const chunk of rechunk(verifyBlobStream(bytes, blob, progress("peer")))) {
          started = true;
          yield chunk;
        }
        return;
      } catch (err) {
        // Once bytes went to the consumer we cannot restart the stream under it.
        if (started || isFatal(err, signal)) throw err;
      }
    }
  }
  const getBlock = (c: CID, o: AbortOptions) => store.getBlock(c, { signal: o.signal ?? signal });
  yield* verifyBlobStream(readUnixfsFile(getBlock, blob.cid, { signal }), blob, progress("ipfs"));
}
