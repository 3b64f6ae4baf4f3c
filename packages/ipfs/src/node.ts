import { chmod, mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { BitswapOptions } from "@helia/bitswap";
import { withBitswap } from "@helia/bitswap";
import { type HeliaWithLibp2p, withLibp2pLight } from "@helia/libp2p";
import * as dagCbor from "@ipld/dag-cbor";
import { identify } from "@libp2p/identify";
import type { AbortOptions, Libp2p } from "@libp2p/interface";
import { noise } from "@libp2p/noise";
import { tcp } from "@libp2p/tcp";
import { yamux } from "@libp2p/yamux";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { FsBlockstore } from "blockstore-fs";
import { NextToLast } from "blockstore-fs/sharding";
import { FsDatastore } from "datastore-fs";
import { createHeliaLight } from "helia";
import { Key } from "interface-datastore";
import type { CID } from "multiformats/cid";
import { readLocalFile } from "./blob.js";
import { BufferPool, type BulkMode, BulkServer } from "./bulk.js";
import { ConfigError } from "./errors.js";
import { DEFAULT_BULK_MODES, ipOf, registerBlobProtocol } from "./fastpath.js";
import {
  type ContentStore,
  collectBounded,
  type GetBlockOptions,
  MAX_BLOCK_SIZE,
  parseCid,
  verifyBlock,
} from "./store.js";

export const DEFAULT_LISTEN = ["/ip4/127.0.0.1/tcp/0"];
/** How long identify may take on a new connection (libp2p's default: 5 s). */
const IDENTIFY_TIMEOUT_MS = 30_000;
/** The shortest wait for a connection's liveness ping before libp2p aborts the connection (its default: 5 s). */
const PING_TIMEOUT_MIN_MS = 30_000;
/**
 * How long one bitswap want of a missing block waits before it is asked for again (IpfsNodeOptions.rewantAfterMs).
 * Helia's bitswap sends a want to a peer once and never again while the want lives, and the peer marks a block
 * sent before it sends it: blocks of an answer that does not arrive (the receiver gave up on the stream, below)
 * are never sent again. Asked again, they are (docs/ipfs.md).
 */
const REWANT_AFTER_MS = 30_000;
/**
 * How long an incoming bitswap stream may wait for its next message (Helia's default: 10 s) before it is aborted
 * and the blocks in it are lost. A provider VM under emulation reads a 4 MiB message of blocks (noise decryption
 * in an emulated CPU) in more than 10 s.
 */
const BITSWAP_RECEIVE_TIMEOUT_MS = 60_000;
/**
 * How long sending a bitswap message may take (Helia's default: 10 s). In Helia 4.0.19 this bounds want
 * messages only: block answers run in a per-peer queue whose job signal never aborts and takes the timeout's
 * place, so they have no timeout at all (not changed here).
 */
const BITSWAP_SEND_TIMEOUT_MS = 120_000;
/** Leaf reads in flight per bulk transfer. */
const BULK_READ_AHEAD = 4;

export interface IpfsNodeOptions {
  /** Holds `blocks/` (blockstore-fs) and `datastore/` (datastore-fs: peer key, pins, published-blob index). */
  dataDir: string;
  /** Listen multiaddrs; default one random loopback TCP port. */
  listen?: string[];
  /**
   * "devnet" (default): every listen and peer address must be loopback. "private": any address, still no
   * discovery of any kind. Neither mode has public bootstrap, mDNS, DHT, delegated routing, UPnP or HTTP gateways:
   * peers are only those passed in `peers` or dialled explicitly.
   */
  network?: "devnet" | "private";
  /** Multiaddrs (with /p2p/PEER_ID) dialled at start. */
  peers?: string[];
  /** Serve published blobs over /trusted-pods/blob/1.0.0 (default true). */
  serveBlobs?: boolean;
  /**
   * Bulk channel modes served beside libp2p for published blobs (bulk.ts, docs/ipfs.md): "tls" (TLS 1.2 PSK,
   * confidential) and/or "plain" (unencrypted; integrity from the digest only). Default both: the requester
   * picks by its own preference (plain first by default); ["tls"] keeps the bytes confidential; `[]` keeps
   * every byte in libp2p. One random port per mode on the host of the first TCP listen address.
   */
  bulk?: BulkMode[];
  bitswap?: BitswapOptions;
  /**
   * A missing block's want is sent again after this many ms without an answer, until the caller's signal ends
   * the wait (default 30 s; 0: sent once, as Helia does).
   */
  rewantAfterMs?: number;
  /** Told each time a block is wanted again (the provider logs it: a pull that needed it is visible). */
  onRewant?: (cid: CID, attempt: number) => void;
}

/** An embedded Helia node: the ContentStore over its blockstore plus the libp2p handle for the fast path. */
export interface IpfsNode extends ContentStore {
  readonly kind: "helia";
  readonly helia: HeliaWithLibp2p<Record<string, unknown>>;
  readonly libp2p: Libp2p;
  readonly peerId: string;
  /** Listen addresses with /p2p/PEER_ID, for other nodes to dial. */
  multiaddrs(): string[];
  dial(addr: string, opts?: AbortOptions): Promise<void>;
  /** Records that the blob named by `digest` is the UnixFS file `cid`, so peers may ask for it by digest. */
  recordBlob(digest: string, cid: CID, size: number): Promise<void>;
  lookupBlob(digest: string): Promise<{ cid: CID; size: number } | undefined>;
  /** Reads a block from the local blockstore only, unverified (the blob server's receiver verifies). */
  readLocalBlock(cid: CID): Promise<Uint8Array>;
  stop(): Promise<void>;
}

export function isLoopback(addr: Multiaddr): boolean {
  const first = addr.getComponents()[0];
  if (!first) return false;
  if (first.name === "ip4") return first.value?.startsWith("127.") ?? false;
  if (first.name === "ip6") return first.value === "::1";
  return false;
}

function parseAddrs(addrs: string[], network: "devnet" | "private", what: string): Multiaddr[] {
  return addrs.map((text) => {
    let addr: Multiaddr;
    try {
      addr = multiaddr(text);
    } catch (err) {
      throw new ConfigError(`${what} ${JSON.stringify(text)} is not a multiaddr: ${(err as Error).message}`);
    }
    if (network === "devnet" && !isLoopback(addr)) {
      throw new ConfigError(`${what} ${text} is not a loopback address (devnet mode is loopback only)`);
    }
    return addr;
  });
}

/**
 * How long to wait after giving up a want before wanting the block again. Helia marks the old want cancelled and
 * removes it only when its debounced (10 ms) wantlist send runs; a new want made before that joins the cancelled
 * entry, is never sent, and is then dropped with it: the attempt would wait for nothing.
 */
const REWANT_PAUSE_MS = 250;

/**
 * Runs `get` with a signal that also ends after `everyMs`, again and again, until it succeeds, fails otherwise,
 * or `signal` ends. Each new attempt is a new bitswap want: Helia drops the old one when its signal aborts and
 * sends the new one to every connected peer. A local block answers the first attempt at once; a block that
 * arrives for an earlier want answers the current one.
 */
async function withRewants<T>(
  get: (signal: AbortSignal | undefined) => Promise<T>,
  everyMs: number,
  signal: AbortSignal | undefined,
  onRewant: (attempt: number) => void,
): Promise<T> {
  if (everyMs <= 0) return get(signal);
  for (let attempt = 1; ; attempt++) {
    if (attempt > 1) onRewant(attempt);
    const timer = AbortSignal.timeout(everyMs);
    try {
      return await get(signal ? AbortSignal.any([signal, timer]) : timer);
    } catch (err) {
      if (signal?.aborted || !timer.aborted) throw err;
    }
    await new Promise((r) => setTimeout(r, REWANT_PAUSE_MS));
  }
}

const blobKey = (digest: string) => new Key(`/trusted-pods/blobs/${digest.replace(":", "/")}`);

/** Creates and starts an embedded Helia node configured explicitly (no defaults that reach outside). */
export async function createIpfsNode(opts: IpfsNodeOptions): Promise<IpfsNode> {
  const network = opts.network ?? "devnet";
  const listen = parseAddrs(opts.listen ?? DEFAULT_LISTEN, network, "listen address");
  const peers = parseAddrs(opts.peers ?? [], network, "peer address");
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  // The datastore holds the node's private key: keep the whole repo private to its owner.
  await chmod(opts.dataDir, 0o700);
  // Kept so the blob server can read a block file in one call, past Helia's locks and 64 KiB stream reads.
  const sharding = new NextToLast();
  const blocksDir = join(opts.dataDir, "blocks");
  const blockstore = new FsBlockstore(blocksDir, { shardingStrategy: sharding });
  const datastore = new FsDatastore(join(opts.dataDir, "datastore"));
  await blockstore.open();
  await datastore.open();

  const helia = withBitswap(
    withLibp2pLight(createHeliaLight({ blockstore, datastore, codecs: [dagCbor] }), {
      addresses: { listen: listen.map((a) => a.toString()) },
      transports: [tcp()],
      // Noise only. TLS 1.3 (@libp2p/tls) measured about half noise's receiver CPU here, but two of seven
      // 256 MiB fast-path pulls over it stalled mid-stream for good (bench/README.md): not worth the risk.
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      // identify tells bitswap which connected peers speak it; nothing else is enabled on purpose. It runs once
      // per new connection, and a failure is not retried: a peer not identified in time never gets this node's
      // bitswap wants. libp2p gives it 5 s, which a guest under emulation can miss on a fresh connection.
      services: { identify: identify({ timeout: IDENTIFY_TIMEOUT_MS }) },
      // libp2p pings every connection each 10 s and aborts one whose ping takes longer than its adaptive
      // timeout (at least 5 s by default). A provider in a VM under emulation, busy hashing and unpacking the
      // image it is pulling, can stall that long; the aborted connection was the only way its bitswap could
      // reach the publisher's upload node (which it cannot dial), and the pull then waited until its deadline.
      connectionMonitor: { pingTimeout: { minTimeout: PING_TIMEOUT_MIN_MS } },
    }),
    {
      messageSendTimeout: BITSWAP_SEND_TIMEOUT_MS,
      messageReceiveTimeout: BITSWAP_RECEIVE_TIMEOUT_MS,
      ...opts.bitswap,
    },
  );
  await helia.start();
  const rewantAfterMs = opts.rewantAfterMs ?? REWANT_AFTER_MS;
  const libp2p = helia.libp2p as unknown as Libp2p;

  let bulk: BulkServer | undefined;
  const node: IpfsNode = {
    kind: "helia",
    helia: helia as unknown as HeliaWithLibp2p<Record<string, unknown>>,
    libp2p,
    peerId: libp2p.peerId.toString(),
    multiaddrs: () => libp2p.getMultiaddrs().map((a) => a.toString()),
    async dial(addr, o) {
      const [ma] = parseAddrs([addr], network, "peer address");
      await libp2p.dial(ma!, o);
    },
    async putBlock(cid, bytes, o) {
      await helia.blockstore.put(cid, bytes, o);
    },
    async getBlock(cid: CID, o: GetBlockOptions = {}) {
      const max = o.maxSize ?? MAX_BLOCK_SIZE;
      const get = (signal: AbortSignal | undefined) =>
        collectBounded(helia.blockstore.get(cid, { signal }), max, `block ${cid}`);
      const bytes = await withRewants(get, rewantAfterMs, o.signal, (n) => opts.onRewant?.(cid, n));
      await verifyBlock(cid, bytes, max);
      return bytes;
    },
    async hasBlock(cid, o) {
      return helia.blockstore.has(cid, o);
    },
    async pin(cid, o) {
      if (await helia.pins.isPinned(cid, o)) return;
      for await (const _ of helia.pins.add(cid, { signal: o?.signal })) {
        // pins.add walks the whole DAG; draining it is what pins every block.
      }
    },
    async unpin(cid, o) {
      if (!(await helia.pins.isPinned(cid, o))) return;
      for await (const _ of helia.pins.rm(cid, o)) {
        // drain
      }
    },
    async isPinned(cid, o) {
      return helia.pins.isPinned(cid, o);
    },
    async recordBlob(digest, cid, size) {
      await datastore.put(
        blobKey(digest),
        new TextEncoder().encode(JSON.stringify({ cid: cid.toString(), size })),
      );
    },
    async lookupBlob(digest) {
      const key = blobKey(digest);
      if (!(await datastore.has(key))) return undefined;
      const value = JSON.parse(new TextDecoder().decode(await datastore.get(key))) as {
        cid: string;
        size: number;
      };
      return { cid: parseCid(value.cid), size: value.size };
    },
    async readLocalBlock(cid) {
      const { dir, file } = sharding.encode(cid);
      return readFile(join(blocksDir, dir, file));
    },
    async stop() {
      await bulk?.close();
      await helia.stop();
      await blockstore.close();
      await datastore.close();
    },
  };
  try {
    const bulkModes = opts.bulk ?? DEFAULT_BULK_MODES;
    if ((opts.serveBlobs ?? true) && bulkModes.length > 0) {
      const host = listen.map(ipOf).find((h) => h !== undefined) ?? "127.0.0.1";
      bulk = await BulkServer.start({ modes: bulkModes, host }, (blob) => {
        // Leaves are at most 1 MiB: one spare byte tells a leaf from a bigger block (read whole instead).
        const pool = new BufferPool(1024 * 1024 + 1, BULK_READ_AHEAD + 2);
        const readLeaf = async (cid: CID) => {
          const buf = await pool.acquire();
          try {
            const { dir, file } = sharding.encode(cid);
            const fh = await open(join(blocksDir, dir, file));
            let bytesRead: number;
            try {
              // A regular file reads short only at its end.
              ({ bytesRead } = await fh.read(buf, 0, buf.byteLength, 0));
            } finally {
              await fh.close();
            }
            if (bytesRead < buf.byteLength) return buf.subarray(0, bytesRead);
            pool.release(buf);
            return await node.readLocalBlock(cid);
          } catch (err) {
            pool.release(buf);
            throw err;
          }
        };
        return {
          chunks: readLocalFile((cid) => node.readLocalBlock(cid), blob.cid, BULK_READ_AHEAD, readLeaf),
          release: (chunk) => pool.release(chunk),
        };
      });
    }
    if (opts.serveBlobs ?? true) await registerBlobProtocol(node, bulk);
    for (const peer of peers) await libp2p.dial(peer);
  } catch (err) {
    await node.stop().catch(() => {});
    throw err;
  }
  return node;
}
