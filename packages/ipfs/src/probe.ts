/**
 * Whether other nodes hold a block: a throwaway node, connected to `peers` only, asks for it. A node that
 * answers holds the block itself (bitswap never fetches on another peer's behalf), so a developer can tell that
 * its listing's metadata outlives its own node before that node stops.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { multiaddr } from "@multiformats/multiaddr";
import type { CID } from "multiformats/cid";
import { createIpfsNode, isLoopback } from "./node.js";
import { getSecret } from "./secrets.js";

export interface PeersHoldOptions {
  /** How long to wait for a peer to send it (default 30 s). */
  timeoutMs?: number;
  maxSize?: number;
}

/** True once one of `peers` sent the raw block `cid` to a fresh node; false when none did in time. */
export async function peersHoldBlock(
  peers: readonly string[],
  cid: CID | string,
  opts: PeersHoldOptions = {},
): Promise<boolean> {
  if (peers.length === 0) return false;
  const dir = await mkdtemp(path.join(tmpdir(), "tpod-ipfs-probe-"));
  try {
    const network = peers.every((p) => isLoopback(multiaddr(p))) ? "devnet" : "private";
    const node = await createIpfsNode({ dataDir: dir, peers: [...peers], network, serveBlobs: false }).catch(
      () => undefined,
    );
    if (!node) return false;
    try {
      await getSecret(node, cid, {
        signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
        ...(opts.maxSize ? { maxSize: opts.maxSize } : {}),
      });
      return true;
    } catch {
      return false;
    } finally {
      await node.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
