import { generateKeyPairSync, randomBytes } from "node:crypto";
import { join } from "node:path";
import { openOciLayout } from "@trustedpods/oci";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeKuboRpcServer } from "../../../test-support/fake-kubo.js";
import {
  BlobDigestMismatchError,
  createKuboStore,
  decryptSecret,
  encryptSecret,
  getSecret,
  type IpfsNode,
  KuboRpcError,
  type KuboStore,
  pullImageToLayout,
  pushImage,
  putSecret,
  SizeLimitError,
} from "../src/index.js";
import { exists, layoutBlobs, makeLayout, startNode, tempDir } from "./helpers.js";

let tmp: { dir: string; cleanup: () => Promise<void> };

beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => {
  await tmp?.cleanup();
});

describe("Kubo RPC store (against a fake Kubo RPC server)", () => {
  let fake: FakeKuboRpcServer;
  let kubo: KuboStore;
  beforeAll(async () => {
    fake = await new FakeKuboRpcServer().start();
    kubo = createKuboStore({ url: fake.url, timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await fake?.stop();
  });

  it("pushes an image through block/put and pin/add and pulls it back through block/get", async () => {
    const src = join(tmp.dir, "kubo-src");
    await makeLayout(src, [randomBytes(2 * 1024 * 1024 + 7), randomBytes(1000)]);
    const { cid, root } = await pushImage(kubo, await openOciLayout(src));
    expect(fake.pins.has(cid.toString())).toBe(true);
    expect(await kubo.isPinned(cid)).toBe(true);
    expect(fake.calls).toContain("/api/v0/block/put");
    const dst = join(tmp.dir, "kubo-dst");
    const pulled = await pullImageToLayout(kubo, cid.toString(), dst, { timeoutMs: 20_000 });
    expect(pulled.root).toEqual(root.root);
    expect(await layoutBlobs(dst)).toEqual(await layoutBlobs(src));
    expect(fake.calls).toContain("/api/v0/block/get");
    expect((await kubo.id()).id).toBe("12D3KooWFakeKuboNodeForTests");
  });

  it("re-hashes blocks from Kubo: a corrupted block fails with a typed error and nothing is written", async () => {
    const src = join(tmp.dir, "kubo-src2");
    await makeLayout(src, [randomBytes(5000)]);
    const { root, cid } = await pushImage(kubo, await openOciLayout(src));
    const layer = root.blobs.find((b) => b.size === 5000)!;
    fake.tamper(layer.cid);
    const dst = join(tmp.dir, "kubo-dst2");
    const err = await pullImageToLayout(kubo, cid, dst, { timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobDigestMismatchError);
    expect(await exists(dst)).toBe(false);
  });

  it("reports Kubo errors as KuboRpcError and missing blocks as not present", async () => {
    const secret = await putSecret(kubo, randomBytes(100));
    expect(await kubo.hasBlock(secret)).toBe(true);
    await kubo.unpin(secret);
    expect(await kubo.isPinned(secret)).toBe(false);
    const err = await kubo.unpin(secret).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KuboRpcError);
    expect((err as KuboRpcError).status).toBe(500);
  });
});

describe("secrets", () => {
  let a: IpfsNode;
  let b: IpfsNode;
  beforeAll(async () => {
    a = await startNode(tmp.dir, "sa");
    b = await startNode(tmp.dir, "sb");
    await b.dial(a.multiaddrs()[0]!);
  });
  afterAll(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
  });

  it("stores an encrypted secret on one node and fetches it by CID on another (EC and RSA keys)", async () => {
    for (const type of ["ec", "rsa"] as const) {
      const { publicKey, privateKey } =
        type === "ec"
          ? generateKeyPairSync("ec", { namedCurve: "P-256" })
          : generateKeyPairSync("rsa", { modulusLength: 2048 });
      const plaintext = new TextEncoder().encode(`DB_PASSWORD=${randomBytes(8).toString("hex")}`);
      const ciphertext = await encryptSecret(plaintext, publicKey);
      expect(Buffer.from(ciphertext).includes(Buffer.from(plaintext))).toBe(false);
      const cid = await putSecret(a, ciphertext);
      expect(cid.code).toBe(0x55);
      expect(await a.isPinned(cid)).toBe(true);
      const fetched = await getSecret(b, cid.toString(), { signal: AbortSignal.timeout(20_000) });
      expect(Buffer.from(await decryptSecret(fetched, privateKey))).toEqual(Buffer.from(plaintext));
      const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
      await expect(decryptSecret(fetched, type === "ec" ? other : publicKey)).rejects.toThrow();
    }
  });

  it("bounds secret sizes on put and on get", async () => {
    await expect(putSecret(a, randomBytes(300 * 1024))).rejects.toBeInstanceOf(SizeLimitError);
    const cid = await putSecret(a, randomBytes(10_000));
    await expect(
      getSecret(b, cid, { maxSize: 1000, signal: AbortSignal.timeout(20_000) }),
    ).rejects.toBeInstanceOf(SizeLimitError);
  });
});
