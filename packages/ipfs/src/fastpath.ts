import type { AbortOptions, Connection, Libp2p, Stream } from "@libp2p/interface";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import type { CID } from "multiformats/cid";
import { readLocalFile } from "./blob.js";
import { type BulkMode, type BulkServer, type BulkTicket, openBulkStream } from "./bulk.js";
import { BlobProtocolError, IpfsTimeoutError } from "./errors.js";

/**
 * A direct, digest-addressed blob stream between two peers. The IPFS publication (root object → CIDs) stays the
 * canonical address; this protocol only moves bytes faster than bitswap, and the receiver verifies size and
 * sha256 digest exactly as for bitswap.
 *
 * Wire format (both directions): a 4-byte big-endian length and a UTF-8 JSON header, then (response only) the
 * raw blob bytes until the stream closes.
 *   request:  {"digest":"sha256:<hex>","bulk":["tls","plain"]?}
 *   response: {"ok":true,"size":N} + N bytes
 *           | {"ok":true,"size":N,"bulk":{"mode","port","id","key"}} (a one-time ticket for the bulk channel,
 *             bulk.ts, in the first requested mode the server serves; no bytes follow on this stream)
 *           | {"ok":false,"code":"NOT_FOUND"|"BAD_REQUEST"|"INTERNAL","message":"..."}
 * A server without a bulk channel ignores "bulk" and streams inline, so old and new peers interoperate.
 */
export const BLOB_PROTOCOL = "/trusted-pods/blob/1.0.0";
const MAX_HEADER = 4096;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** Inbound blob streams served at once; more wait in libp2p's stream limit and fail fast for the client. */
const MAX_INBOUND_STREAMS = 32;

type Header = { ok: true; size: number; bulk?: BulkTicket } | { ok: false; code: string; message: string };

/** The IP address of a TCP multiaddr, or undefined for anything else (relayed, DNS, memory). */
export function ipOf(addr: Multiaddr): string | undefined {
  const [first, second] = addr.getComponents();
  if ((first?.name !== "ip4" && first?.name !== "ip6") || second?.name !== "tcp") return undefined;
  return first.value;
}

function encodeFrame(value: unknown): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(value));
  const frame = new Uint8Array(4 + body.byteLength);
  new DataView(frame.buffer).setUint32(0, body.byteLength);
  frame.set(body, 4);
  return frame;
}

type ChunkIterator = AsyncIterator<Uint8Array | ({ subarray(): Uint8Array } & Iterable<Uint8Array>)>;

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

/** A requester must send its request this fast, and keep reading: a stalled reader is cut off, not waited on. */
const REQUEST_TIMEOUT_MS = 10_000;
const DRAIN_TIMEOUT_MS = 30_000;

/** What serving blobs needs of a node (IpfsNode has it): declared here so fastpath does not import node.ts back. */
export interface BlobServingNode {
  readonly libp2p: Libp2p;
  lookupBlob(digest: string): Promise<{ cid: CID; size: number } | undefined>;
  readLocalBlock(cid: CID): Promise<Uint8Array>;
}

/**
 * Serves blobs this node has published (recorded with `recordBlob`) from its local blockstore only; with `bulk`,
 * hands requesters that accept its mode a ticket for the bulk channel instead of streaming inline.
 */
export async function registerBlobProtocol(node: BlobServingNode, bulk?: BulkServer): Promise<void> {
  await node.libp2p.handle(
    BLOB_PROTOCOL,
    async (stream, connection) => {
      const send = (data: Uint8Array) =>
        sendAll(stream, data, { signal: AbortSignal.timeout(DRAIN_TIMEOUT_MS) });
      const refuse = async (code: string, message: string) => {
        await send(encodeFrame({ ok: false, code, message }));
        await stream.close({ signal: AbortSignal.timeout(DRAIN_TIMEOUT_MS) });
      };
      const requestTimer = setTimeout(
        () => stream.abort(new IpfsTimeoutError("blob request", REQUEST_TIMEOUT_MS)),
        REQUEST_TIMEOUT_MS,
      );
      try {
        const it = stream[Symbol.asyncIterator]() as ChunkIterator;
        const { header } = await readFrame(it);
        clearTimeout(requestTimer);
        const digest = (header as { digest?: unknown } | null)?.digest;
        if (typeof digest !== "string" || !DIGEST_RE.test(digest)) {
          return await refuse("BAD_REQUEST", "digest missing or invalid");
        }
        const entry = await node.lookupBlob(digest);
        if (!entry) return await refuse("NOT_FOUND", `${digest} not published here`);
        const accepts = (header as { bulk?: unknown }).bulk;
        const remoteIp = ipOf(connection.remoteAddr);
        if (bulk && remoteIp && Array.isArray(accepts)) {
          const ticket = bulk.issue({ digest, ...entry }, remoteIp, accepts);
          if (ticket) {
            await send(encodeFrame({ ok: true, size: entry.size, bulk: ticket }));
            return await stream.close({ signal: AbortSignal.timeout(DRAIN_TIMEOUT_MS) });
          }
        }
        await send(encodeFrame({ ok: true, size: entry.size }));
        for await (const chunk of readLocalFile((cid) => node.readLocalBlock(cid), entry.cid))
          await send(chunk);
        await stream.close({ signal: AbortSignal.timeout(DRAIN_TIMEOUT_MS) });
      } catch (err) {
        stream.abort(err instanceof Error ? err : new Error(String(err)));
      } finally {
        clearTimeout(requestTimer);
      }
    },
    { maxInboundStreams: MAX_INBOUND_STREAMS },
  );
}

export type PeerTransport = BulkMode | "libp2p";

export interface FetchFromPeerOptions extends AbortOptions {
  /** Abort when no byte arrives for this long (default 30 s). */
  idleTimeoutMs?: number;
  /**
   * Bulk channel modes accepted from the peer, in order of preference (default DEFAULT_BULK_MODES): "tls"
   * keeps the bytes confidential, "plain" does not (docs/ipfs.md). `[]` keeps every byte inside libp2p.
   */
  bulk?: BulkMode[];
  /** Told which way the bytes come, before the first one. */
  onTransport?: (t: PeerTransport) => void;
  /** Local address for the bulk connection (tests play another host on loopback with it). */
  bulkLocalAddress?: string;
  /** Told when the bulk channel could not be opened (the bytes then come inline). */
  onBulkRefused?: (err: BlobProtocolError) => void;
  /** The consumer is done with each chunk when it asks for the next: see OpenBulkOptions.reuseBuffers. */
  reuseBuffers?: boolean;
}

/**
 * Plain first: it moved a 256 MiB layer at 2-3x the speed of TLS-PSK here (bench/README.md), and what it gives
 * up is small (docs/ipfs.md: layers are published to IPFS anyway, marketplace layers are ciphertext). A
 * publisher that keeps plain images private serves ["tls"] only; a provider may accept ["tls"] only.
 */
export const DEFAULT_BULK_MODES: BulkMode[] = ["plain", "tls"];

/**
 * Asks `peer` for a blob by digest and yields its bytes as they arrive: over the bulk channel when the peer
 * offers an accepted mode, else inline on the libp2p stream; a refused bulk ticket falls back to inline. Does
 * not verify: wrap it in verifyBlobStream (pullImage does). Fails with BlobProtocolError before yielding
 * anything when the peer does not have the blob or does not speak the protocol, so callers can fall back to
 * bitswap.
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
  const onAbort = () => stream?.abort(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const addr = typeof peer === "string" ? multiaddr(peer) : peer;
    let connection: Connection;
    const open = async () => {
      try {
        connection ??= await libp2p.dial(addr, { signal });
        return await connection.newStream(BLOB_PROTOCOL, { signal });
      } catch (err) {
        if (idle.signal.aborted) throw idle.signal.reason;
        throw new BlobProtocolError(
          "UNREACHABLE",
          `cannot open ${BLOB_PROTOCOL} to ${addr}: ${(err as Error).message}`,
        );
      }
    };
    const request = async (bulk: BulkMode[]) => {
      stream = await open();
      const it = stream[Symbol.asyncIterator]() as ChunkIterator;
      await sendAll(stream, encodeFrame(bulk.length > 0 ? { digest, bulk } : { digest }), { signal });
      // Half-close: the request is all we send; the peer closes its side after the last byte.
      await stream.close({ signal });
      const { header, rest } = await readFrame(it);
      const h = header as Header;
      if (h?.ok !== true) {
        const code = typeof h?.code === "string" ? h.code : "BAD_FRAME";
        throw new BlobProtocolError(code, `peer refused ${digest}: ${code} ${String(h?.message ?? "")}`);
      }
      return { it, rest, ticket: h.bulk };
    };
    const accepted = opts.bulk ?? DEFAULT_BULK_MODES;
    let answer = await request(accepted);
    kick();
    if (answer.ticket) {
      const host = ipOf(connection!.remoteAddr);
      let bytes: AsyncGenerator<Uint8Array> | undefined;
      if (host && accepted.includes(answer.ticket.mode)) {
        bytes = await openBulkStream(host, answer.ticket, {
          signal,
          idleTimeoutMs: idleMs,
          ...(opts.bulkLocalAddress ? { localAddress: opts.bulkLocalAddress } : {}),
          reuseBuffers: opts.reuseBuffers ?? false,
        }).catch((err: unknown) => {
          if (signal.aborted || !(err instanceof BlobProtocolError)) throw err;
          opts.onBulkRefused?.(err);
          return undefined; // refused or unreachable: ask again for the bytes inline
        });
      }
      if (bytes) {
        opts.onTransport?.(answer.ticket.mode);
        // The bulk socket keeps its own idle timeout (cheaper than re-arming ours per 16-64 KiB chunk).
        clearTimeout(timer);
        yield* bytes;
        return;
      }
      answer = await request([]);
      if (answer.ticket) throw new BlobProtocolError("BAD_FRAME", "peer sent a bulk ticket unasked");
      kick();
    }
    opts.onTransport?.("libp2p");
    const { it, rest } = answer;
    if (rest.byteLength > 0) yield rest;
    for (;;) {
      const { value, done } = await it.next();
      if (done) break;
      kick();
      if (value instanceof Uint8Array) yield value;
      // A Uint8ArrayList holds several received frames: hand them on one by one rather than copying.
      else yield* value as Iterable<Uint8Array>;
    }
  } catch (err) {
    if (idle.signal.aborted) throw idle.signal.reason;
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
    clearTimeout(timer);
    if (stream && stream.status === "open") stream.abort(new Error("blob read ended early"));
  }
}
