import { randomBytes } from "node:crypto";
import { readdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { openOciLayout } from "@trustedpods/oci";
import { CID } from "multiformats/cid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BufferPool } from "../src/bulk.js";
import {
  BlobDigestMismatchError,
  type BlobProgress,
  BlobProtocolError,
  type BulkMode,
  BulkServer,
  type BulkTicket,
  createIpfsNode,
  fetchBlobFromPeer,
  type ImageRoot,
  type IpfsNode,
  openBulkStream,
  type PeerTransport,
  pullImageToLayout,
  pushImage,
  readLocalFile,
} from "../src/index.js";
import { exists, findBlockFile, layoutBlobs, makeLayout, tempDir } from "./helpers.js";

// The bulk channel beside libp2p (bulk.ts): real TCP and TLS-PSK sockets on loopback, real Helia nodes.
let tmp: { dir: string; cleanup: () => Promise<void> };
const payload = randomBytes(300_000);
const blob = { digest: `sha256:${"00".repeat(32)}`, cid: CID.parse("bafkqaaa"), size: payload.byteLength };
let server: BulkServer;

async function drain(bytes: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of bytes) parts.push(chunk);
  return Buffer.concat(parts);
}

beforeAll(async () => {
  tmp = await tempDir("tpod-bulk-");
  server = await BulkServer.start({ modes: ["tls", "plain"], host: "127.0.0.1", ticketTtlMs: 2000 }, () => ({
    chunks: (async function* () {
      for (let off = 0; off < payload.byteLength; off += 65_536) yield payload.subarray(off, off + 65_536);
    })(),
  }));
});

afterAll(async () => {
  await server?.close();
  await tmp?.cleanup();
});

describe("bulk channel tickets", () => {
  for (const mode of ["tls", "plain"] as const) {
    it(`${mode}: a ticket opens the channel once; a replay is refused with a typed error`, async () => {
      const ticket = server.issue(blob, "127.0.0.1", [mode])!;
      expect(ticket.mode).toBe(mode);
      expect(await drain(await openBulkStream("127.0.0.1", ticket))).toEqual(payload);
      const replay = await openBulkStream("127.0.0.1", ticket).catch((e: unknown) => e);
      expect(replay).toBeInstanceOf(BlobProtocolError);
      expect((replay as BlobProtocolError).remoteCode).toBe("BULK_REFUSED");
    });

    it(`${mode}: a ticket is refused from another address than the one it was issued to`, async () => {
      const ticket = server.issue(blob, "127.0.0.1", [mode])!;
      // 127.0.0.2 is another host as far as the server can tell (all of 127/8 is loopback on Linux).
      const err = await openBulkStream("127.0.0.1", ticket, { localAddress: "127.0.0.2" }).catch(
        (e: unknown) => e,
      );
      expect((err as BlobProtocolError).remoteCode).toBe("BULK_REFUSED");
      // Tried once, consumed: not usable afterwards from the right address either.
      const again = await openBulkStream("127.0.0.1", ticket).catch((e: unknown) => e);
      expect((again as BlobProtocolError).remoteCode).toBe("BULK_REFUSED");
    });

    it(`${mode}: a wrong key or a forged id is refused`, async () => {
      const ticket = server.issue(blob, "127.0.0.1", [mode])!;
      const wrongKey: BulkTicket = { ...ticket, key: randomBytes(32).toString("base64url") };
      const e1 = await openBulkStream("127.0.0.1", wrongKey).catch((e: unknown) => e);
      expect((e1 as BlobProtocolError).remoteCode).toBe("BULK_REFUSED");
      const forged: BulkTicket = { ...ticket, id: randomBytes(16).toString("hex") };
      const e2 = await openBulkStream("127.0.0.1", forged).catch((e: unknown) => e);
      expect((e2 as BlobProtocolError).remoteCode).toBe("BULK_REFUSED");
    });
  }

  it("a slow reader pauses the channel (bounded memory) and still gets every byte, in both modes", async () => {
    const big = randomBytes(12 * 1024 * 1024 + 3);
    const slow = await BulkServer.start({ modes: ["tls", "plain"], host: "127.0.0.1" }, () => ({
      chunks: (async function* () {
        for (let off = 0; off < big.byteLength; off += 1024 * 1024)
          yield big.subarray(off, off + 1024 * 1024);
      })(),
    }));
    try {
      for (const mode of ["tls", "plain"] as const) {
        const ticket = slow.issue({ ...blob, size: big.byteLength }, "127.0.0.1", [mode])!;
        const parts: Uint8Array[] = [];
        for await (const chunk of await openBulkStream("127.0.0.1", ticket)) {
          parts.push(chunk);
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(Buffer.concat(parts).equals(big)).toBe(true);
      }
    } finally {
      await slow.close();
    }
  });

  it("closing the server cuts a transfer in flight: close does not wait, the reader fails", async () => {
    const size = 64 * 1024 * 1024;
    const mib = randomBytes(1024 * 1024);
    for (const mode of ["plain", "tls"] as const) {
      const s2 = await BulkServer.start({ modes: [mode], host: "127.0.0.1" }, () => ({
        chunks: (async function* () {
          for (let off = 0; off < size; off += mib.byteLength) yield mib;
        })(),
      }));
      const ticket = s2.issue({ ...blob, size }, "127.0.0.1", [mode])!;
      const it = (await openBulkStream("127.0.0.1", ticket))[Symbol.asyncIterator]();
      let received = (await it.next()).value?.byteLength ?? 0;
      await s2.close(); // would hang here if close waited for the (stalled) reader
      const err = await (async () => {
        for (;;) {
          const r = await it.next();
          if (r.done) return undefined;
          received += r.value.byteLength;
        }
      })().catch((e: unknown) => e);
      // Either the socket errors or it ends early (the size check then fails the blob): never all the bytes.
      expect(err !== undefined || received < size).toBe(true);
      expect(received).toBeLessThan(size);
    }
  });

  it("a channel that never answers is given up within the open timeout, with a typed error", async () => {
    const { createServer } = await import("node:net");
    const mute = createServer(() => {}); // accepts, then never acknowledges anything
    await new Promise<void>((r) => mute.listen(0, "127.0.0.1", r));
    try {
      const ticket = server.issue(blob, "127.0.0.1", ["plain"])!;
      const port = (mute.address() as { port: number }).port;
      const err = await openBulkStream("127.0.0.1", { ...ticket, port }, { openTimeoutMs: 300 }).catch(
        (e: unknown) => e,
      );
      expect((err as BlobProtocolError).remoteCode).toBe("BULK_REFUSED");
      expect((err as Error).message).toMatch(/not open within 300 ms/);
    } finally {
      mute.close();
    }
  });

  it("a ticket for one mode is refused on the other mode's port, and expires", async () => {
    const ticket = server.issue(blob, "127.0.0.1", ["plain"])!;
    const onTls: BulkTicket = { ...ticket, mode: "tls", port: server.port("tls")! };
    const e1 = await openBulkStream("127.0.0.1", onTls).catch((e: unknown) => e);
    expect((e1 as BlobProtocolError).remoteCode).toBe("BULK_REFUSED");
    const late = server.issue(blob, "127.0.0.1", ["tls"])!;
    await new Promise((r) => setTimeout(r, 2100));
    const e2 = await openBulkStream("127.0.0.1", late).catch((e: unknown) => e);
    expect((e2 as BlobProtocolError).remoteCode).toBe("BULK_REFUSED");
  });

  it("issues nothing for a mode it does not serve, and malformed tickets fail before connecting", async () => {
    const only = await BulkServer.start({ modes: ["tls"], host: "127.0.0.1" }, () => ({
      chunks: (async function* () {})(),
    }));
    try {
      expect(only.issue(blob, "127.0.0.1", ["plain"])).toBeUndefined();
      expect(only.issue(blob, "127.0.0.1", ["plain", "tls"])?.mode).toBe("tls");
    } finally {
      await only.close();
    }
    const bad = { mode: "plain", port: 0, id: "zz", key: "short" } as BulkTicket;
    const err = await openBulkStream("127.0.0.1", bad).catch((e: unknown) => e);
    expect((err as BlobProtocolError).remoteCode).toBe("BAD_FRAME");
  });
});

describe("pull over the bulk channel", () => {
  let a: IpfsNode;
  let b: IpfsNode;
  let srcDir: string;
  let rootCid: CID;
  let image: ImageRoot;
  const bigLayer = randomBytes(3 * 1024 * 1024 + 777);

  beforeAll(async () => {
    a = await createIpfsNode({ dataDir: join(tmp.dir, "a") });
    b = await createIpfsNode({ dataDir: join(tmp.dir, "b") });
    srcDir = join(tmp.dir, "src");
    await makeLayout(srcDir, [bigLayer, randomBytes(5000)]);
    ({ cid: rootCid, root: image } = await pushImage(a, await openOciLayout(srcDir)));
  });

  afterAll(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
  });

  const pullVia = async (name: string, bulk?: BulkMode[], extra: { peers?: string[] } = {}) => {
    const dst = join(tmp.dir, name);
    const transports = new Set<string>();
    await pullImageToLayout(b, rootCid, dst, {
      peers: a.multiaddrs(),
      timeoutMs: 60_000,
      ...(bulk ? { bulk } : {}),
      ...extra,
      onProgress: (p: BlobProgress) => transports.add(p.via === "peer" ? (p.transport ?? "?") : "ipfs"),
    });
    return { dst, transports };
  };

  it("by default the bytes come over the plain channel and every blob verifies", async () => {
    const { dst, transports } = await pullVia("pulled-default");
    expect([...transports]).toEqual(["plain"]);
    expect(await layoutBlobs(dst)).toEqual(await layoutBlobs(srcDir));
  });

  it("a provider that asks for TLS gets TLS; one that refuses both gets the libp2p stream", async () => {
    const tls = await pullVia("pulled-tls", ["tls"]);
    expect([...tls.transports]).toEqual(["tls"]);
    expect(await layoutBlobs(tls.dst)).toEqual(await layoutBlobs(srcDir));
    const inline = await pullVia("pulled-inline", []);
    expect([...inline.transports]).toEqual(["libp2p"]);
    expect(await layoutBlobs(inline.dst)).toEqual(await layoutBlobs(srcDir));
  });

  it("the sender reads leaves into a bounded pool; inner DAG nodes never take a pool buffer", async () => {
    const big = image.blobs.find((x) => x.size === bigLayer.byteLength)!;
    // One buffer: if the DAG root's read took it (it is never yielded, so never given back), this would hang.
    const pool = new BufferPool(1024 * 1024 + 1, 1);
    const readLeaf = async (cid: CID) => {
      const buf = await pool.acquire();
      const bytes = await a.readLocalBlock(cid);
      buf.set(bytes);
      return buf.subarray(0, bytes.byteLength);
    };
    const parts: Buffer[] = [];
    for await (const chunk of readLocalFile((c) => a.readLocalBlock(c), big.cid, 1, readLeaf)) {
      parts.push(Buffer.from(chunk));
      pool.release(chunk);
    }
    expect(Buffer.concat(parts).equals(bigLayer)).toBe(true);
  });

  it("a publisher that serves TLS only never sends its bytes in clear, whatever the provider prefers", async () => {
    const d = await createIpfsNode({ dataDir: join(tmp.dir, "d"), bulk: ["tls"] });
    try {
      const { cid } = await pushImage(d, await openOciLayout(srcDir));
      const transports = new Set<string>();
      const dst = join(tmp.dir, "pulled-from-tls-only");
      await pullImageToLayout(b, cid, dst, {
        peers: d.multiaddrs(),
        timeoutMs: 60_000,
        onProgress: (p) => transports.add(p.via === "peer" ? (p.transport ?? "?") : "ipfs"),
      });
      expect([...transports]).toEqual(["tls"]);
      expect(await layoutBlobs(dst)).toEqual(await layoutBlobs(srcDir));
    } finally {
      await d.stop();
    }
  });

  it("a refused ticket (wrong source address) falls back to the libp2p stream", async () => {
    const big = image.blobs.find((x) => x.size === bigLayer.byteLength)!;
    const used: PeerTransport[] = [];
    const bytes = await drain(
      fetchBlobFromPeer(b.libp2p, a.multiaddrs()[0]!, big.digest, {
        bulkLocalAddress: "127.0.0.2",
        onTransport: (t) => used.push(t),
      }),
    );
    expect(used).toEqual(["libp2p"]);
    expect(bytes.equals(bigLayer)).toBe(true);
  });

  it("a wrong digest over the plain channel is refused and leaves nothing", async () => {
    const { root, blobs } = image;
    const wrong = blobs.map((x) =>
      x.size === bigLayer.byteLength ? { ...x, digest: `sha256:${"cd".repeat(32)}` } : x,
    );
    const { encode } = await import("@ipld/dag-cbor");
    const { sha256 } = await import("multiformats/hashes/sha2");
    const bytes = encode({ type: image.type, root, blobs: wrong });
    const cid = CID.createV1(0x71, await sha256.digest(bytes));
    await a.putBlock(cid, bytes);
    // A records blobs by digest: record the lying digest too, so the server serves those bytes under it.
    await a.recordBlob(
      `sha256:${"cd".repeat(32)}`,
      blobs.find((x) => x.size === bigLayer.byteLength)!.cid,
      bigLayer.byteLength,
    );
    const dst = join(tmp.dir, "pulled-wrong");
    const err = await pullImageToLayout(b, cid, dst, {
      peers: a.multiaddrs(),
      bulk: ["plain"],
      timeoutMs: 30_000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobDigestMismatchError);
    expect(await exists(dst)).toBe(false);
  });

  // Last: it removes one of A's blocks.
  it("a bulk transfer cut off mid-blob leaves no partial file and falls back to bitswap", async () => {
    // C holds a full copy (and serves no blob protocol); A loses the second MiB of the big layer, so A's bulk
    // stream breaks after the first MiB and bitswap has to fetch from C.
    const c = await createIpfsNode({ dataDir: join(tmp.dir, "c"), serveBlobs: false });
    try {
      await pushImage(c, await openOciLayout(srcDir));
      const leaf = await findBlockFile(
        join(tmp.dir, "a", "blocks"),
        bigLayer.subarray(1024 * 1024, 2 * 1024 * 1024),
      );
      expect(leaf).toBeDefined();
      await unlink(leaf!);
      const seen: string[] = [];
      const dst = join(tmp.dir, "pulled-cut");
      await pullImageToLayout(b, rootCid, dst, {
        peers: [...a.multiaddrs(), ...c.multiaddrs()],
        timeoutMs: 60_000,
        onProgress: (p) => {
          if (p.bytesTotal === bigLayer.byteLength)
            seen.push(p.via === "peer" ? (p.transport ?? "?") : "ipfs");
        },
      });
      expect(seen[0]).toBe("plain");
      expect(seen.at(-1)).toBe("ipfs");
      expect(await layoutBlobs(dst)).toEqual(await layoutBlobs(srcDir));
      const files = await readdir(join(dst, "blobs"), { recursive: true });
      expect(files.filter((f) => f.includes(".partial"))).toEqual([]);
    } finally {
      await c.stop();
    }
  });
});
