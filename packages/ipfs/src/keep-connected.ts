import type { PeerId } from "@libp2p/interface";
import type { IpfsNode } from "./node.js";

export interface KeepConnectedOptions {
  /** Dial attempts each time a peer is found disconnected (default 3). */
  attempts?: number;
  /** Pause between attempts, ms (default 1000). */
  retryDelayMs?: number;
  /** Told about every lost connection and every peer that stays unreachable. */
  warn?: (message: string) => void;
}

export interface KeptConnections {
  /** Dials every peer now (with retries); resolves when each is connected or has used up its attempts. */
  ready: Promise<void>;
  /** How often a peer's connection was lost and dialled again, by peer id. */
  redials: Map<string, number>;
  stop(): void;
}

const peerIdOf = (addr: string): string | undefined => addr.match(/\/p2p\/([^/]+)$/)?.[1];

/**
 * Keeps `node` connected to peers that fetch from it but cannot dial it (a provider in a VM behind QEMU's NAT,
 * or any peer behind NAT): bitswap only asks connected peers, so once such a connection drops (a missed ping
 * under load, a restart) the peer would wait for blocks until its deadline. Each drop is dialled again.
 */
export function keepConnected(
  node: IpfsNode,
  addrs: string[],
  o: KeepConnectedOptions = {},
): KeptConnections {
  const attempts = o.attempts ?? 3;
  const delay = o.retryDelayMs ?? 1000;
  const warn = o.warn ?? (() => {});
  const byPeer = new Map<string, string>();
  for (const a of addrs) {
    const id = peerIdOf(a);
    if (id) byPeer.set(id, a);
  }
  const redials = new Map<string, number>();
  const abort = new AbortController();
  const pending = new Set<string>();

  async function dial(addr: string): Promise<void> {
    let last: unknown;
    for (let attempt = 1; attempt <= attempts && !abort.signal.aborted; attempt++) {
      try {
        await node.dial(addr, { signal: abort.signal });
        return;
      } catch (err) {
        last = err;
        if (attempt < attempts) await new Promise((r) => setTimeout(r, delay));
      }
    }
    if (!abort.signal.aborted)
      warn(
        `the upload IPFS node cannot connect to ${addr} (${attempts} attempts: ${(last as Error)?.message ?? last}): a provider there fetches images only if it reaches them another way`,
      );
  }

  const onDisconnect = (evt: CustomEvent<PeerId>) => {
    const id = evt.detail.toString();
    const addr = byPeer.get(id);
    if (!addr || abort.signal.aborted || pending.has(id)) return;
    redials.set(id, (redials.get(id) ?? 0) + 1);
    warn(`the upload IPFS node lost its connection to ${addr}; dialling it again`);
    pending.add(id);
    void dial(addr).finally(() => pending.delete(id));
  };
  node.libp2p.addEventListener("peer:disconnect", onDisconnect);

  return {
    // Peers without /p2p/ID are dialled once but cannot be watched (the disconnect event names a peer id).
    ready: Promise.all(addrs.map((a) => dial(a))).then(() => {}),
    redials,
    stop() {
      abort.abort();
      node.libp2p.removeEventListener("peer:disconnect", onDisconnect);
    },
  };
}
