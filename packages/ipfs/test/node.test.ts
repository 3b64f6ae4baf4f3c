import { stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BLOB_PROTOCOL, ConfigError, createIpfsNode } from "../src/index.js";
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
