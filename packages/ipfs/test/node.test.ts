import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { FsBlockstore } from "blockstore-fs";
import { NextToLast } from "blockstore-fs/sharding";
import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BLOB_PROTOCOL, ConfigError, createIpfsNode, keepConnected } from "../src/index.js";
import { tempDir } from "./helpers.js";

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => {
  await tmp?.cleanup();
});

describe("embedded node configuration", () => {
  it("devnet mode refuses non-loopback listen and peer addresses", async () => {
    await expect(
      createIpfsNode({ dataDir: join(tmp.dir, "x"), listen: ["/ip4/0.0.0.0/tcp/0"] }),
    ).rejects.toBeInstanceOf(ConfigError);
    await expect(
      createIpfsNode({ dataDir: join(tmp.dir, "y"), peers: ["/ip4/192.0.2.1/tcp/4001"] }),
    ).rejects.toBeInstanceOf(ConfigError);
  });

  it("listens on loopback only, speaks only the protocols configured, and keeps its peer id across restarts", async () => {
    const dataDir = join(tmp.dir, "n");
    const node = await createIpfsNode({ dataDir });
    let peerId: string;
    try {
      peerId = node.peerId;
      expect(node.multiaddrs().length).toBeGreaterThan(0);
      for (const a of node.multiaddrs())
        expect(a).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${peerId}$`));
      const protocols = node.libp2p.getProtocols().sort();
      expect(protocols).toContain(BLOB_PROTOCOL);
      expect(protocols.some((p) => p.startsWith("/ipfs/bitswap/"))).toBe(true);
      // Nothing that discovers or reaches out: no DHT, no autonat, no relay, no delegated routing.
      expect(protocols.filter((p) => /kad|autonat|relay|dcutr|ping|fetch/.test(p))).toEqual([]);
      expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    } finally {
      await node.stop();
    }
    const again = await createIpfsNode({ dataDir });
    try {
      expect(again.peerId).toBe(peerId);
    } finally {
      await again.stop();
    }
  });
});

describe("keepConnected", () => {
  it("dials a peer that drops the connection again, and stops when told", async () => {
    const a = await createIpfsNode({ dataDir: join(tmp.dir, "keep-a") });
    const b = await createIpfsNode({ dataDir: join(tmp.dir, "keep-b") });
    const warnings: string[] = [];
    const kept = keepConnected(a, [b.multiaddrs()[0]!], { warn: (m) => warnings.push(m), retryDelayMs: 100 });
    try {
      await kept.ready;
      const connectedToB = () => a.libp2p.getConnections(b.libp2p.peerId).length > 0;
      expect(connectedToB()).toBe(true);
      // The provider's side ends the connection (what a missed liveness ping does): the upload node dials again.
      await b.libp2p.hangUp(a.libp2p.peerId);
      await waitFor(() => kept.redials.get(b.peerId) === 1 && connectedToB());
      expect(warnings.join("\n")).toMatch(/lost its connection to .*dialling it again/);

      kept.stop();
      await b.libp2p.hangUp(a.libp2p.peerId);
      await waitFor(() => !connectedToB());
      expect(kept.redials.get(b.peerId)).toBe(1);
    } finally {
      kept.stop();
      await a.stop();
      await b.stop();
    }
  });

  it("warns, without failing, about a peer it cannot reach", async () => {
    const a = await createIpfsNode({ dataDir: join(tmp.dir, "keep-c") });
    const gone = await createIpfsNode({ dataDir: join(tmp.dir, "keep-d") });
    const addr = gone.multiaddrs()[0]!;
    await gone.stop();
    const warnings: string[] = [];
    const kept = keepConnected(a, [addr], { warn: (m) => warnings.push(m), attempts: 2, retryDelayMs: 10 });
    try {
      await kept.ready;
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`cannot connect to ${addr} (2 attempts`);
    } finally {
      kept.stop();
      await a.stop();
    }
  });
});

describe("bitswap wants that went unanswered", () => {
  /**
   * `holder` gets the block behind Helia's back (straight into its block directory, so its bitswap does not
   * announce it): as after a send of the block that failed, `holder` will send it only when asked again.
   */
  async function lateBlock(
    holderDir: string,
  ): Promise<{ cid: CID; bytes: Uint8Array; arrive: () => Promise<void> }> {
    const bytes = new Uint8Array(randomBytes(4096));
    const cid = CID.createV1(raw.code, await sha256.digest(bytes));
    const arrive = async () => {
      const store = new FsBlockstore(join(holderDir, "blocks"), { shardingStrategy: new NextToLast() });
      await store.open();
      await store.put(cid, bytes);
      await store.close();
    };
    return { cid, bytes, arrive };
  }

  it("are asked again, so a block the peer could not send the first time still arrives", async () => {
    const holderDir = join(tmp.dir, "late-a");
    const rewants: string[] = [];
    const holder = await createIpfsNode({ dataDir: holderDir });
    const puller = await createIpfsNode({
      dataDir: join(tmp.dir, "late-b"),
      peers: [holder.multiaddrs()[0]!],
      rewantAfterMs: 500,
      onRewant: (c, attempt) => rewants.push(`${c} ${attempt}`),
    });
    try {
      const { cid, bytes, arrive } = await lateBlock(holderDir);
      const got = puller.getBlock(cid, { signal: AbortSignal.timeout(15_000) });
      // The want reached the holder while it did not have the block (it answered "don't have").
      await new Promise((r) => setTimeout(r, 1000));
      await arrive();
      const t0 = Date.now();
      expect(Buffer.from(await got)).toEqual(Buffer.from(bytes));
      expect(Date.now() - t0).toBeLessThan(5000);
      // It was wanted again at least once (the first want came before the holder had it).
      expect(rewants[0]).toBe(`${cid} 2`);
    } finally {
      await puller.stop();
      await holder.stop();
    }
  });

  it("are really sent again on the first repeat (a new want must not join the cancelled one)", async () => {
    const holderDir = join(tmp.dir, "late-e");
    const holder = await createIpfsNode({ dataDir: holderDir });
    const puller = await createIpfsNode({
      dataDir: join(tmp.dir, "late-f"),
      peers: [holder.multiaddrs()[0]!],
      rewantAfterMs: 2000,
    });
    try {
      const { cid, bytes, arrive } = await lateBlock(holderDir);
      const t0 = Date.now();
      const got = puller.getBlock(cid, { signal: AbortSignal.timeout(15_000) });
      await new Promise((r) => setTimeout(r, 500));
      await arrive();
      expect(Buffer.from(await got)).toEqual(Buffer.from(bytes));
      // The second want (at 2 s) brought it. Joined to the cancelled first one, it was never sent, and only the
      // third (at 4 s) did.
      expect(Date.now() - t0).toBeLessThan(3500);
    } finally {
      await puller.stop();
      await holder.stop();
    }
  });

  it("are not asked again with rewantAfterMs 0 (Helia's own behaviour): the same block never arrives", async () => {
    const holderDir = join(tmp.dir, "late-c");
    const holder = await createIpfsNode({ dataDir: holderDir });
    const puller = await createIpfsNode({
      dataDir: join(tmp.dir, "late-d"),
      peers: [holder.multiaddrs()[0]!],
      rewantAfterMs: 0,
    });
    try {
      const { cid, arrive } = await lateBlock(holderDir);
      const got = puller.getBlock(cid, { signal: AbortSignal.timeout(4000) });
      await new Promise((r) => setTimeout(r, 1000));
      await arrive();
      await expect(got).rejects.toThrow();
      expect(await holder.hasBlock(cid)).toBe(true);
    } finally {
      await puller.stop();
      await holder.stop();
    }
  });
});

async function waitFor(cond: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 50));
  }
}
