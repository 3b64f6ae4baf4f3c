import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as dagCbor from "@ipld/dag-cbor";
import { openOciLayout } from "@trustedpods/oci";
import { CID } from "multiformats/cid";
import { sha256 } from "multiformats/hashes/sha2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BlobDigestMismatchError,
  type BlobProgress,
  DAG_CBOR_CODEC,
  type ImageRoot,
  InvalidRootError,
  type IpfsNode,
  IpfsTimeoutError,
  inspectImage,
  pullImageToLayout,
  pushImage,
  SizeLimitError,
} from "../src/index.js";
import { exists, findBlockFile, layoutBlobs, makeLayout, startNode, tempDir } from "./helpers.js";

// Two real Helia nodes on loopback (TCP + noise + yamux, real bitswap), publisher A and provider B.
let tmp: { dir: string; cleanup: () => Promise<void> };
let a: IpfsNode;
let b: IpfsNode;
let srcDir: string;
let rootCid: CID;
let image: ImageRoot;
// Layers: one above the 1 MiB chunk size (a multi-block UnixFS DAG) and one small single raw block.
const bigLayer = randomBytes(3 * 1024 * 1024 + 12345);
const smallLayer = randomBytes(70_000);

beforeAll(async () => {
  tmp = await tempDir();
  a = await startNode(tmp.dir, "a");
  b = await startNode(tmp.dir, "b");
  srcDir = join(tmp.dir, "src");
  await makeLayout(srcDir, [bigLayer, smallLayer]);
  const pushed = await pushImage(a, await openOciLayout(srcDir));
  rootCid = pushed.cid;
  image = pushed.root;
});

afterAll(async () => {
  await Promise.allSettled([a?.stop(), b?.stop()]);
  await tmp?.cleanup();
});

/** A root object published on A, hand-made to test what a malicious publisher could send. */
async function publishRoot(value: unknown): Promise<CID> {
  const bytes = dagCbor.encode(value);
  const cid = CID.createV1(DAG_CBOR_CODEC, await sha256.digest(bytes));
  await a.putBlock(cid, bytes);
  return cid;
}

describe("push", () => {
  it("stores one CID per blob and a dag-cbor root that lists them, pinned", async () => {
    expect(rootCid.code).toBe(DAG_CBOR_CODEC);
    expect(image.blobs).toHaveLength(4); // manifest, config, two layers
    expect(await a.isPinned(rootCid)).toBe(true);
    for (const blob of image.blobs) expect(await a.isPinned(blob.cid)).toBe(true);
    const big = image.blobs.find((x) => x.size === bigLayer.byteLength)!;
    expect(big.cid.code).toBe(0x70); // dag-pb: a UnixFS file of several 1 MiB raw leaves
    const small = image.blobs.find((x) => x.size === smallLayer.byteLength)!;
    expect(small.cid.code).toBe(0x55); // one raw block
    expect(await a.lookupBlob(big.digest)).toEqual({ cid: big.cid, size: big.size });
  });

  it("inspect on another node fetches and validates the root", async () => {
    // No routing in devnet mode: B only finds content on peers it is connected to.
    await b.dial(a.multiaddrs()[0]!);
    const seen = await inspectImage(b, rootCid, { timeoutMs: 20_000 });
    expect(seen.root.digest).toBe(image.root.digest);
    expect(seen.blobs.map((x) => x.cid.toString())).toEqual(image.blobs.map((x) => x.cid.toString()));
  });
});

describe("pull", () => {
  it("fast path: streams every blob from the publisher peer and verifies it", async () => {
    const dst = join(tmp.dir, "pulled-fast");
    const events: BlobProgress[] = [];
    await pullImageToLayout(b, rootCid, dst, {
      peers: a.multiaddrs(),
      timeoutMs: 30_000,
      onProgress: (p) => events.push(p),
    });
    const blobs = await layoutBlobs(dst);
    expect(Object.keys(blobs)).toHaveLength(4);
    for (const [digest, actual] of Object.entries(blobs)) expect(actual).toBe(digest);
    expect(blobs).toEqual(await layoutBlobs(srcDir));
    expect((await openOciLayout(dst)).root.digest).toBe(image.root.digest);
    const last = events.filter(
      (e) => e.digest === image.blobs.find((x) => x.size === bigLayer.byteLength)!.digest,
    );
    expect(last.at(-1)).toMatchObject({
      bytesDone: bigLayer.byteLength,
      bytesTotal: bigLayer.byteLength,
      via: "peer",
    });
  });

  it("bitswap: without the fast path the same image arrives through real bitswap", async () => {
    const dst = join(tmp.dir, "pulled-bitswap");
    const vias = new Set<string>();
    await pullImageToLayout(b, rootCid, dst, {
      peers: a.multiaddrs(),
      fastPath: false,
      timeoutMs: 60_000,
      onProgress: (p) => vias.add(p.via),
    });
    expect(await layoutBlobs(dst)).toEqual(await layoutBlobs(srcDir));
    expect([...vias]).toEqual(["ipfs"]);
  });

  it("rejects a blob whose bytes do not match the digest the root declares, leaving nothing", async () => {
    const wrong = image.blobs.map((x) =>
      x.size === smallLayer.byteLength ? { ...x, digest: `sha256:${"ab".repeat(32)}` } : x,
    );
    const cid = await publishRoot({ ...image, blobs: wrong });
    for (const fastPath of [true, false]) {
      const dst = join(tmp.dir, `pulled-wrong-digest-${fastPath}`);
      const err = await pullImageToLayout(b, cid, dst, {
        peers: a.multiaddrs(),
        fastPath,
        timeoutMs: 30_000,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlobDigestMismatchError);
      expect(await exists(dst)).toBe(false);
    }
  });

  it("enforces declared sizes while streaming (a root cannot make us read more than it declared)", async () => {
    const lying = image.blobs.map((x) => (x.size === bigLayer.byteLength ? { ...x, size: 1024 * 1024 } : x));
    const cid = await publishRoot({ ...image, blobs: lying });
    for (const fastPath of [true, false]) {
      const dst = join(tmp.dir, `pulled-lying-size-${fastPath}`);
      const err = await pullImageToLayout(b, cid, dst, {
        peers: a.multiaddrs(),
        fastPath,
        timeoutMs: 30_000,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SizeLimitError);
      expect(await exists(dst)).toBe(false);
    }
  });

  it("refuses a root whose total size is over the limit before fetching any blob", async () => {
    const dst = join(tmp.dir, "pulled-too-big");
    const err = await pullImageToLayout(b, rootCid, dst, {
      peers: a.multiaddrs(),
      limits: { maxImageSize: 1024 * 1024 },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SizeLimitError);
    expect(await exists(dst)).toBe(false);
  });

  it("refuses a root that is not an image root", async () => {
    const cid = await publishRoot({ type: "something-else", blobs: [] });
    const err = await inspectImage(b, cid, { timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRootError);
  });

  it("times out with a typed error when nobody has the root", async () => {
    const bytes = dagCbor.encode({ nobody: randomBytes(8).toString("hex") });
    const missing = CID.createV1(DAG_CBOR_CODEC, await sha256.digest(bytes));
    const dst = join(tmp.dir, "pulled-missing");
    const err = await pullImageToLayout(b, missing, dst, { peers: a.multiaddrs(), timeoutMs: 1500 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(IpfsTimeoutError);
    expect(await exists(dst)).toBe(false);
  });

  // Last in this file: it corrupts A's copy of the small layer.
  it("rejects a tampered block on the publisher with a typed error and leaves nothing", async () => {
    const file = await findBlockFile(join(tmp.dir, "a", "blocks"), smallLayer);
    expect(file).toBeDefined();
    const tampered = Buffer.from(smallLayer);
    tampered[100] = (tampered[100]! + 1) % 256;
    await writeFile(file!, tampered);
    const c = await startNode(tmp.dir, "c");
    try {
      const dst = join(tmp.dir, "pulled-tampered");
      const err = await pullImageToLayout(c, rootCid, dst, {
        peers: a.multiaddrs(),
        timeoutMs: 30_000,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlobDigestMismatchError);
      expect(await exists(dst)).toBe(false);
    } finally {
      await c.stop();
    }
  });
});
