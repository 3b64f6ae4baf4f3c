import type { AbortOptions, Libp2p, Stream } from "@libp2p/interface";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { readUnixfsFile } from "./blob.js";
import { BlobProtocolError, IpfsTimeoutError } from "./errors.js";
import type { IpfsNode } from "./node.js";

/**
 * A direct, digest-addressed blob stream between two peers. The IPFS publication (root object → CIDs) stays the
 * canonical address; this protocol only moves bytes faster than bitswap, and the receiver verifies size and
 * sha256 digest exactly as for bitswap.
 *
 * Wire format (both directions): a 4-byte big-endian length and a UTF-8 JSON header, then (response only) the
 * raw blob bytes until the stream closes.
 *   request:  {"digest":"sha256:<hex>"}
 *   response: {"ok":true,"size":N} + N bytes | {"ok":false,"code":"NOT_FOUND"|"BAD_REQUEST"|"INTERNAL","message":"..."}
 */
export const BLOB_PROTOCOL = "/trusted-pods/blob/1.0.0";
const MAX_HEADER = 4096;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** Inbound blob streams served at once; more wait in libp2p's stream limit and fail fast for the client. */
const MAX_INBOUND_STREAMS = 32;

type Header = { ok: true; size: number } | { ok: false; code: string; message: string };

function encodeFrame(value: unknown): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(value));
  const frame = new Uint8Array(4 + body.byteLength);
  new DataView(frame.buffer).setUint32(0, body.byteLength);
  frame.set(body, 4);
  return frame;
}

type ChunkIterator = AsyncIterator<Uint8Array | { subarray(): Uint8Array }>;

/** Reads one header frame; returns it with any bytes that arrived after it in the same chunk. */
async function readFrame(it: ChunkIterator): Promise<{ header: unknown; rest: Uint8Array }> {
  let buf = new Uint8Array(0);
  for (;;) {
    if (buf.byteLength >= 4) {
      const len = new DataView(buf.buffer, buf.byteOffset).getUint32(0);
      if (len > MAX_HEADER)
        throw new BlobProtocolError("BAD_FRAME", `header of ${len} bytes is over ${MAX_HEADER}`);
      if (buf.byteLength >= 4 + len) {
        const text = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(4, 4 + len));
        let header: unknown;
        try {
          header = JSON.parse(text);
        } catch {
          throw new BlobProtocolError("BAD_FRAME", "header is not JSON");
        }
        return { header, rest: buf.subarray(4 + len) };
      }
    }
    const { value, done } = await it.next();
    if (done) throw new BlobProtocolError("BAD_FRAME", "stream ended inside a header");
    const chunk = value instanceof Uint8Array ? value : value.subarray();
    const next = new Uint8Array(buf.byteLength + chunk.byteLength);
    next.set(buf);
    next.set(chunk, buf.byteLength);
    buf = next;
  }
}

async function sendAll(stream: Stream, data: Uint8Array, opts: AbortOptions): Promise<void> {
  if (!stream.send(data)) await stream.onDrain(opts);
}

/** Serves blobs this node has published (recorded with `recordBlob`) from its local blockstore only. */
export async function registerBlobProtocol(node: IpfsNode): Promise<void> {
  await node.libp2p.handle(
    BLOB_PROTOCOL,
    async (stream) => {
      const signal = AbortSignal.timeout(60 * 60_000);
      try {
        const it = stream[Symbol.asyncIterator]() as ChunkIterator;
        const { header } = await readFrame(it);
        const digest = (header as { digest?: unknown } | null)?.digest;
        if (typeof digest !== "string" || !DIGEST_RE.test(digest)) {
          await sendAll(
            stream,
            encodeFrame({ ok: false, code: "BAD_REQUEST", message: "digest missing or invalid" }),
            {
              signal,
            },
          );
          await stream.close();
          return;
        }
        const entry = await node.lookupBlob(digest);
        if (!entry) {
          await sendAll(
            stream,
            encodeFrame({ ok: false, code: "NOT_FOUND", message: `${digest} not published here` }),
            {
              signal,
            },
          );
          await stream.close();
          return;
        }
        await sendAll(stream, encodeFrame({ ok: true, size: entry.size }), { signal });
        const local = (cid: Parameters<typeof node.getBlock>[0], o: AbortOptions) =>
          collectLocal(node, cid, o);
        for await (const chunk of readUnixfsFile(local, entry.cid, { signal, offline: true })) {
          await sendAll(stream, chunk, { signal });
        }
        await stream.close({ signal });
      } catch (err) {
        stream.abort(err instanceof Error ? err : new Error(String(err)));
      }
    },
    { maxInboundStreams: MAX_INBOUND_STREAMS },
  );
}

/**
 * Reads a block from the local blockstore without verifying it: the receiver verifies the blob digest, and
 * hashing every block here too would halve the sender's throughput.
 */
async function collectLocal(node: IpfsNode, cid: Parameters<IpfsNode["getBlock"]>[0], o: AbortOptions) {
  const parts: Uint8Array[] = [];
  for await (const chunk of node.helia.blockstore.get(cid, { signal: o.signal, offline: true }))
    parts.push(chunk);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

export interface FetchFromPeerOptions extends AbortOptions {
  /** Abort when no byte arrives for this long (default 30 s). */
  idleTimeoutMs?: number;
}

/**
 * Asks `peer` for a blob by digest and yields its bytes as they arrive. Does not verify: wrap it in
 * verifyBlobStream (pullImage does). Fails with BlobProtocolError before yielding anything when the peer does
 * not have the blob or does not speak the protocol, so callers can fall back to bitswap.
 */
export async function* fetchBlobFromPeer(
  libp2p: Libp2p,
  peer: string | Multiaddr,
  digest: string,
  opts: FetchFromPeerOptions = {},
): AsyncGenerator<Uint8Array> {
  const idleMs = opts.idleTimeoutMs ?? 30_000;
  const idle = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const kick = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => idle.abort(new IpfsTimeoutError(`blob ${digest} (no data from peer)`, idleMs)),
      idleMs,
    );
  };
  const signal = opts.signal ? AbortSignal.any([opts.signal, idle.signal]) : idle.signal;
  kick();
  let stream: Stream | undefined;
  try {
    const addr = typeof peer === "string" ? multiaddr(peer) : peer;
    try {
      stream = await libp2p.dialProtocol(addr, BLOB_PROTOCOL, { signal });
    } catch (err) {
      if (idle.signal.aborted) throw idle.signal.reason;
      throw new BlobProtocolError(
        "UNREACHABLE",
        `cannot open ${BLOB_PROTOCOL} to ${addr}: ${(err as Error).message}`,
      );
    }
    const onAbort = () =>
      stream?.abort(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const it = stream[Symbol.asyncIterator]() as ChunkIterator;
      await sendAll(stream, encodeFrame({ digest }), { signal });
      // Half-close: the request is all we send; the peer closes its side after the last byte.
      await stream.close({ signal });
      const { header, rest } = await readFrame(it);
      const h = header as Header;
      if (h?.ok !== true) {
        const code = typeof h?.code === "string" ? h.code : "BAD_FRAME";
        throw new BlobProtocolError(code, `peer refused ${digest}: ${code} ${String(h?.message ?? "")}`);
      }
      kick();
      if (rest.byteLength > 0) yield rest;
      for (;;) {
        const { value, done } = await it.next();
        if (done) break;
        kick();
        yield value instanceof Uint8Array ? value : value.subarray();
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  } catch (err) {
    if (idle.signal.aborted) throw idle.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    if (stream && stream.status === "open") stream.abort(new Error("blob read ended early"));
  }
}
