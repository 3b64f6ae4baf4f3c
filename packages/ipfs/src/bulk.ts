import { randomBytes, timingSafeEqual } from "node:crypto";
import {
  isIP,
  connect as netConnect,
  createServer as netCreateServer,
  type Server,
  type Socket,
} from "node:net";
import * as tls from "node:tls";
import type { CID } from "multiformats/cid";
import { BlobProtocolError, IpfsTimeoutError } from "./errors.js";

/**
 * The bulk channel: a plain TCP (or TLS-PSK) connection beside libp2p that carries one blob's bytes. The
 * libp2p blob stream (noise-authenticated, see fastpath.ts) stays the control channel: the server hands the
 * requesting peer a one-time ticket there, and the ticket is the only way in here. Why it exists: the bytes
 * then move through the kernel and OpenSSL instead of noise + yamux in JavaScript, which cost 6.8/4.3 CPU-s per
 * GiB (receiver/sender) on this machine's single threads (bench/README.md).
 *
 * Security: the receiver verifies size and sha256 exactly as for any other path, so the channel needs no
 * integrity of its own. A ticket is 128 bits of id plus a 256-bit secret, sent only inside the noise stream,
 * valid once, for a few seconds, from the IP address of the libp2p connection that asked for it. In "tls" mode
 * the secret is the pre-shared key of a TLS 1.2 PSK session (AES-256-GCM in OpenSSL), so the bytes stay
 * confidential; in "plain" mode the secret is sent first in clear and the blob follows unencrypted (what that
 * gives up: docs/ipfs.md).
 */
export type BulkMode = "tls" | "plain";

export interface BulkTicket {
  mode: BulkMode;
  port: number;
  /** 16 random bytes, hex: names the ticket (the TLS PSK identity). */
  id: string;
  /** 32 random bytes, base64url: the secret (the TLS PSK, or sent in clear in plain mode). */
  key: string;
}

export interface BulkServerOptions {
  /** Modes served (one listener each); a requester gets the first of its own preferences found here. */
  modes: BulkMode[];
  /** IP address to listen on (the libp2p TCP listen host). */
  host: string;
  /** A ticket must be used within this long (default 10 s). */
  ticketTtlMs?: number;
  /** Tickets outstanding at once (default 64); past it the server answers over the libp2p stream instead. */
  maxTickets?: number;
  /** Bulk connections served at once (default 32). */
  maxConnections?: number;
}

/** What a ticket lets its holder read: the blob's UnixFS file, streamed by the caller's `serve`. */
export interface BulkBlob {
  digest: string;
  cid: CID;
  size: number;
}

/**
 * Reads a served blob's bytes (the node's local blockstore). `release`, when given, is called with each chunk
 * once the socket is done with it, so the reader can reuse its buffers (see BufferPool).
 */
export type BulkRead = (blob: BulkBlob) => {
  chunks: AsyncIterable<Uint8Array>;
  release?: (chunk: Uint8Array) => void;
};

/**
 * A fixed set of equal buffers handed out and given back. Every fresh MiB-sized Buffer counts against V8's
 * external-memory limit, and passing it (about every 64 MiB) costs a full garbage collection of the node's
 * heap: a transfer that reuses a few buffers allocates nothing per MiB.
 */
export class BufferPool {
  readonly #free: Buffer[] = [];
  readonly #out = new Set<ArrayBufferLike>();
  readonly #all = new Map<ArrayBufferLike, Buffer>();
  readonly #waiting: ((buf: Buffer) => void)[] = [];

  constructor(
    readonly size: number,
    count: number,
  ) {
    for (let i = 0; i < count; i++) {
      const buf = Buffer.allocUnsafeSlow(size);
      this.#all.set(buf.buffer, buf);
      this.#free.push(buf);
    }
  }

  async acquire(): Promise<Buffer> {
    const buf = this.#free.pop() ?? (await new Promise<Buffer>((r) => this.#waiting.push(r)));
    this.#out.add(buf.buffer);
    return buf;
  }

  /** Gives back the pool buffer under `chunk` (or a view of it); chunks the pool does not own are ignored. */
  release(chunk: Uint8Array): void {
    const buf = this.#all.get(chunk.buffer);
    if (!buf || !this.#out.delete(chunk.buffer)) return;
    const next = this.#waiting.shift();
    if (next) {
      this.#out.add(buf.buffer);
      next(buf);
    } else this.#free.push(buf);
  }
}

/** Writes with backpressure; fails (never hangs) when the socket closes while waiting to drain. */
async function writeBlob(
  socket: Socket,
  data: AsyncIterable<Uint8Array>,
  release?: (chunk: Uint8Array) => void,
): Promise<void> {
  for await (const chunk of data) {
    if (socket.destroyed) throw new Error("bulk connection closed");
    if (socket.write(chunk, release && (() => release(chunk)))) continue;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        socket.off("drain", done);
        socket.off("close", onClose);
        if (err) reject(err);
        else resolve();
      };
      const onClose = () => done(new Error("bulk connection closed"));
      socket.on("drain", done);
      socket.on("close", onClose);
    });
  }
}

interface PendingTicket {
  blob: BulkBlob;
  mode: BulkMode;
  key: Buffer;
  remoteIp: string;
  expires: number;
}

const TLS_CIPHERS = "PSK-AES256-GCM-SHA384";
const ID_BYTES = 16;
/** The server's first byte once it accepted a ticket: a refusal is then told apart from an empty blob. */
const ACK = Buffer.from([1]);
const KEY_BYTES = 32;
/** A client must present its ticket (plain) or finish the handshake (tls) this fast. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** The client's bound on opening the channel before it falls back to the libp2p stream. */
export const BULK_OPEN_TIMEOUT_MS = 5_000;
/** A connection that moves no byte for this long is cut: a stalled reader is not waited on. */
export const BULK_IDLE_TIMEOUT_MS = 30_000;

/** "::ffff:127.0.0.1" and "127.0.0.1" are the same peer address. */
export function normalizeIp(ip: string | undefined): string {
  if (!ip) return "";
  return ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export class BulkServer {
  readonly #tickets = new Map<string, PendingTicket>();
  /** Open connections (TCP level, before and after the ticket check), cut on close(). */
  readonly #live = new Set<Socket>();
  readonly #servers = new Map<BulkMode, { server: Server; port: number }>();
  readonly #opts: Required<BulkServerOptions>;

  private constructor(opts: Required<BulkServerOptions>) {
    this.#opts = opts;
  }

  /** The modes served, in the server's order. */
  get modes(): BulkMode[] {
    return [...this.#servers.keys()];
  }

  port(mode: BulkMode): number | undefined {
    return this.#servers.get(mode)?.port;
  }

  /** Listens on `host`, one random port per mode; streams what `read` yields for a ticket's blob to its holder. */
  static async start(opts: BulkServerOptions, read: BulkRead): Promise<BulkServer> {
    const self = new BulkServer({ ticketTtlMs: 10_000, maxTickets: 64, maxConnections: 32, ...opts });
    const handle = (socket: Socket, blob: BulkBlob) => {
      self.#live.add(socket);
      socket.once("close", () => self.#live.delete(socket));
      socket.on("error", () => {}); // a reader that goes away ends its own transfer, nothing more
      socket.setTimeout(BULK_IDLE_TIMEOUT_MS, () => socket.destroy(new Error("bulk reader idle")));
      socket.write(ACK);
      const { chunks, release } = read(blob);
      writeBlob(socket, chunks, release).then(
        () => socket.end(),
        (err: unknown) => socket.destroy(err instanceof Error ? err : new Error(String(err))),
      );
    };
    try {
      for (const mode of new Set(opts.modes)) {
        const server = mode === "tls" ? self.#tlsServer(handle) : self.#plainServer(handle);
        server.maxConnections = self.#opts.maxConnections;
        // "connection" is the TCP connection for both servers (a TLS server emits it before the handshake).
        server.on("connection", (socket: Socket) => {
          self.#live.add(socket);
          socket.once("close", () => self.#live.delete(socket));
        });
        self.#servers.set(mode, { server, port: 0 });
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(0, opts.host, () => {
            server.off("error", reject);
            resolve();
          });
        });
        self.#servers.set(mode, { server, port: (server.address() as { port: number }).port });
      }
    } catch (err) {
      await self.close();
      throw err;
    }
    return self;
  }

  #tlsServer(handle: (socket: Socket, blob: BulkBlob) => void): Server {
    const claimed = new WeakMap<object, BulkBlob>();
    const server = tls.createServer({
      ciphers: TLS_CIPHERS,
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.2",
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      pskCallback: (socket, identity) => {
        const t = this.#claim(identity, "tls", socket.remoteAddress);
        if (!t) return null;
        claimed.set(socket, t.blob);
        return t.key;
      },
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      const blob = claimed.get(socket);
      if (!blob) return socket.destroy();
      handle(socket, blob);
    });
    // A refused or broken handshake: the socket is already destroyed; nothing to keep.
    server.on("tlsClientError", () => {});
    return server;
  }

  #plainServer(handle: (socket: Socket, blob: BulkBlob) => void): Server {
    return netCreateServer((socket) => {
      const timer = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS);
      let got = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.byteLength < ID_BYTES + KEY_BYTES) return;
        socket.off("data", onData);
        socket.pause();
        clearTimeout(timer);
        // Exactly the ticket and nothing after it: the client only reads from here on.
        const id = got.subarray(0, ID_BYTES).toString("hex");
        const exact = got.byteLength === ID_BYTES + KEY_BYTES;
        const t = exact ? this.#claim(id, "plain", socket.remoteAddress) : undefined;
        if (!t || !timingSafeEqual(t.key, got.subarray(ID_BYTES))) return socket.destroy();
        handle(socket, t.blob);
      };
      socket.on("data", onData);
      socket.on("error", () => {});
    });
  }

  /**
   * A one-time ticket for `blob` in the first of `accepted` (the requester's preference order) this server
   * serves, usable only from `remoteIp` (the libp2p connection's remote address); undefined when no mode
   * matches or too many tickets are outstanding (the caller then streams over libp2p).
   */
  issue(blob: BulkBlob, remoteIp: string, accepted: readonly BulkMode[]): BulkTicket | undefined {
    const mode = accepted.find((m) => this.#servers.has(m));
    const port = mode && this.#servers.get(mode)?.port;
    if (!mode || !port) return undefined;
    const now = Date.now();
    for (const [id, t] of this.#tickets) if (t.expires <= now) this.#tickets.delete(id);
    if (this.#tickets.size >= this.#opts.maxTickets) return undefined;
    const id = randomBytes(ID_BYTES).toString("hex");
    const key = randomBytes(KEY_BYTES);
    this.#tickets.set(id, {
      blob,
      mode,
      key,
      remoteIp: normalizeIp(remoteIp),
      expires: now + this.#opts.ticketTtlMs,
    });
    return { mode, port, id, key: key.toString("base64url") };
  }

  /** Takes a ticket out (whatever the outcome: a ticket is tried once) if it is live, for this mode and address. */
  #claim(id: string, mode: BulkMode, remoteIp: string | undefined): PendingTicket | undefined {
    const t = this.#tickets.get(id);
    if (!t) return undefined;
    this.#tickets.delete(id);
    if (t.expires <= Date.now() || t.mode !== mode || t.remoteIp !== normalizeIp(remoteIp)) return undefined;
    return t;
  }

  /** Stops listening and cuts every open connection (a transfer in flight fails over on the reader's side). */
  async close(): Promise<void> {
    this.#tickets.clear();
    for (const socket of this.#live) socket.destroy();
    await Promise.all(
      [...this.#servers.values()].map(
        ({ server }) => new Promise<void>((resolve) => server.close(() => resolve())),
      ),
    );
  }
}

export interface OpenBulkOptions {
  signal?: AbortSignal;
  /** Abort when no byte arrives for this long (default 30 s). */
  idleTimeoutMs?: number;
  /** Connect, handshake and ticket acknowledgement must take at most this long (default 5 s). */
  openTimeoutMs?: number;
  /** Local address to connect from (tests use it to play another host on loopback). */
  localAddress?: string;
  /**
   * The consumer is done with each chunk when it asks for the next (true of the OCI layout writer): receive
   * buffers are then reused. Never set it for a consumer that keeps chunks.
   */
  reuseBuffers?: boolean;
}

function decodeTicket(ticket: BulkTicket): { id: Buffer; key: Buffer } {
  const id = Buffer.from(ticket.id, "hex");
  const key = Buffer.from(ticket.key, "base64url");
  if (
    id.byteLength !== ID_BYTES ||
    ticket.id.length !== ID_BYTES * 2 ||
    key.byteLength !== KEY_BYTES ||
    !Number.isInteger(ticket.port) ||
    ticket.port <= 0 ||
    ticket.port > 65535 ||
    (ticket.mode !== "tls" && ticket.mode !== "plain")
  ) {
    throw new BlobProtocolError("BAD_FRAME", "malformed bulk ticket");
  }
  return { id, key };
}

/**
 * Connects to `host` (the IP of the libp2p connection the ticket came over: never an address the server
 * names) and presents `ticket`; resolves once the channel is open, so a refusal fails before any byte is
 * yielded and the caller can fall back. Then yields the blob's bytes until the server closes. Does not verify:
 * the caller wraps it in verifyBlobStream.
 */
export async function openBulkStream(
  host: string,
  ticket: BulkTicket,
  opts: OpenBulkOptions = {},
): Promise<AsyncGenerator<Uint8Array>> {
  const { id, key } = decodeTicket(ticket);
  const reader = new BatchedReader(opts.reuseBuffers ?? false);
  // Reads land in one reused buffer (TLS: one 16 KiB record per call) instead of a fresh Buffer per read.
  const onread = {
    buffer: Buffer.allocUnsafeSlow(256 * 1024),
    callback: (n: number, buf: Uint8Array) => reader.push(buf.subarray(0, n)),
  };
  // tls.connect takes onread since Node 15.1 (nodejs/node#35753); @types/node does not list it.
  const tlsOptions: tls.ConnectionOptions & { onread: typeof onread } = {
    host,
    port: ticket.port,
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    ciphers: TLS_CIPHERS,
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.2",
    // The PSK authenticates the server: no certificate is involved.
    checkServerIdentity: () => undefined,
    pskCallback: () => ({ psk: key, identity: ticket.id }),
    onread,
  };
  const idleMs = opts.idleTimeoutMs ?? BULK_IDLE_TIMEOUT_MS;
  const socket: Socket =
    ticket.mode === "tls"
      ? tls.connect(tlsOptions)
      : netConnect({
          host,
          port: ticket.port,
          ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
          onread,
        });
  reader.attach(socket);
  const onAbort = () =>
    socket.destroy(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error("aborted"));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  socket.setTimeout(idleMs, () =>
    socket.destroy(new IpfsTimeoutError(`bulk blob from ${host}:${ticket.port} (no data)`, idleMs)),
  );
  // A port the network does not let through (a firewall that only forwards libp2p's) must not hold the blob
  // up for the kernel's connect timeout: give up soon and let the caller fall back to the libp2p stream.
  const openMs = opts.openTimeoutMs ?? BULK_OPEN_TIMEOUT_MS;
  const opening = setTimeout(() => socket.destroy(new Error(`not open within ${openMs} ms`)), openMs);
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (err?: Error) => {
        cleanup();
        reject(err ?? new Error("closed"));
      };
      const ok = () => {
        cleanup();
        resolve();
      };
      const onClose = () => fail();
      const cleanup = () => {
        socket.off("error", fail);
        socket.off("close", onClose);
        socket.off(ticket.mode === "tls" ? "secureConnect" : "connect", ok);
      };
      socket.once("error", fail);
      socket.once("close", onClose);
      socket.once(ticket.mode === "tls" ? "secureConnect" : "connect", ok);
    });
    if (ticket.mode === "plain") socket.write(Buffer.concat([id, key]));
    await reader.acked;
    clearTimeout(opening);
  } catch (err) {
    clearTimeout(opening);
    opts.signal?.removeEventListener("abort", onAbort);
    socket.destroy();
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw new BlobProtocolError(
      "BULK_REFUSED",
      `bulk channel ${host}:${ticket.port} refused the ticket: ${(err as Error).message}`,
    );
  }
  return (async function* () {
    try {
      for (;;) {
        const chunk = await reader.next();
        if (!chunk) return;
        yield chunk;
      }
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      throw err;
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      socket.destroy();
    }
  })();
}

/**
 * Reads a bulk socket in `target`-byte buffers: TLS delivers 16 KiB records and TCP up to 256 KiB reads, and every
 * chunk otherwise pays its way through several async generators, a hash update and a file write. Bytes are
 * copied into fresh `target`-byte buffers (the consumer owns what it gets); the socket pauses while `maxReady`
 * of them wait, so memory stays bounded (about (maxReady + 1) × target). Checks the server's one-byte ticket
 * acknowledgement first (`acked`). Fed by `push` from the socket's `onread` callback, which reads into one
 * reused buffer instead of allocating a Buffer per read (64 KiB for TCP, 16 KiB per TLS record).
 */
class BatchedReader {
  readonly acked: Promise<void>;
  #cur: Buffer | undefined;
  #fill = 0;
  readonly #ready: Buffer[] = [];
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  #ack: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #socket: Socket | undefined;
  /** With `reuse`: the buffer last handed out, and buffers free for the next batches. */
  #lent: Buffer | undefined;
  readonly #spare: Buffer[] = [];

  /**
   * `reuse`: the consumer is done with a buffer when it asks for the next one (the OCI layout writer is), so
   * full buffers are recycled instead of allocating a fresh MiB for every MiB received.
   */
  constructor(
    private readonly reuse = false,
    private readonly target = 1024 * 1024,
    private readonly maxReady = 4,
  ) {
    this.acked = new Promise<void>((resolve, reject) => {
      this.#ack = { resolve, reject };
    });
    this.acked.catch(() => {}); // observed by the caller; never an unhandled rejection
  }

  /** Follows `socket`, whose `onread` callback feeds `push`. */
  attach(socket: Socket): void {
    this.#socket = socket;
    socket.on("end", () => this.#finish());
    socket.on("close", () => this.#finish());
    socket.on("error", (err: Error) => this.#finish(err));
  }

  /** Copies `chunk` in (it may be reused once this returns); false when the reader wants the socket paused. */
  push(chunk: Uint8Array): boolean {
    if (this.#ended) return false;
    if (this.#ack) {
      if (chunk[0] !== ACK[0]) {
        this.#finish(new Error("no ticket acknowledgement"));
        return false;
      }
      this.#ack.resolve();
      this.#ack = undefined;
      chunk = chunk.subarray(1);
    }
    let off = 0;
    while (off < chunk.byteLength) {
      this.#cur ??= this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.target);
      const n = Math.min(chunk.byteLength - off, this.target - this.#fill);
      this.#cur.set(chunk.subarray(off, off + n), this.#fill);
      this.#fill += n;
      off += n;
      if (this.#fill === this.target) this.#flush();
    }
    if (this.#ready.length < this.maxReady) return true;
    this.#socket?.pause();
    return false;
  }

  #flush(): void {
    if (this.#cur && this.#fill > 0) {
      this.#ready.push(this.#fill === this.target ? this.#cur : this.#cur.subarray(0, this.#fill));
      this.#cur = undefined;
      this.#fill = 0;
    }
    this.#wake?.();
  }

  #finish(err?: Error): void {
    if (this.#ended && !err) return;
    if (err) this.#error ??= err;
    this.#ended = true;
    this.#ack?.reject(this.#error ?? new Error("closed before acknowledging the ticket"));
    this.#ack = undefined;
    this.#flush();
  }

  /** The next buffer, or undefined at the end; throws the socket's error (after the bytes before it). */
  async next(): Promise<Buffer | undefined> {
    if (this.#lent) this.#spare.push(this.#lent);
    this.#lent = undefined;
    for (;;) {
      const buf = this.#ready.shift();
      if (buf) {
        // Only whole buffers go round; the last, shorter one may outlive the stream in the consumer.
        if (this.reuse && buf.byteLength === this.target) this.#lent = buf;
        const socket = this.#socket;
        if (socket?.isPaused() && this.#ready.length < this.maxReady) socket.resume();
        return buf;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}
