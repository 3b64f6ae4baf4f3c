import { appendFile, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  blobPath,
  copyImage,
  createOciLayoutWriter,
  DestinationExistsError,
  DigestMismatchError,
  InvalidDigestError,
  MediaType,
  openOciLayout,
  RefNotFoundError,
  SizeMismatchError,
  sha256Digest,
} from "../src/index.js";
import { buildBusyboxLayout, exec, removeImage, tempDir } from "./helpers.js";

let work: { dir: string; cleanup: () => Promise<void> };
let src: string;
let name: string;

beforeAll(async () => {
  work = await tempDir();
  src = join(work.dir, "src");
  name = await buildBusyboxLayout(src);
});
afterAll(async () => {
  await removeImage(name);
  await work.cleanup();
});

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

describe("OCI layout", () => {
  it("opens a buildah-written layout and lists manifest, config and layer once each", async () => {
    const img = await openOciLayout(src);
    expect(img.root.mediaType).toBe(MediaType.imageManifest);
    const blobs = await img.listBlobs();
    expect(blobs.map((b) => b.mediaType)).toEqual([
      MediaType.imageManifest,
      MediaType.imageConfig,
      MediaType.layerTarGzip,
    ]);
    expect(blobs[0]).toEqual(img.root);
    expect(new Set(blobs.map((b) => b.digest)).size).toBe(3);
    const ref = await openOciLayout(src, { ref: name });
    expect(ref.root.digest).toBe(img.root.digest);
    await expect(openOciLayout(src, { ref: "nope" })).rejects.toBeInstanceOf(RefNotFoundError);
  });

  it("copies an image into a new layout that skopeo accepts", async () => {
    const img = await openOciLayout(src);
    const dst = join(work.dir, "copy");
    const writer = await createOciLayoutWriter(dst);
    await copyImage(img, writer, { refName: "copy" });
    const copy = await openOciLayout(dst, { ref: "copy" });
    expect(copy.root.digest).toBe(img.root.digest);
    const { stdout } = await exec("skopeo", ["inspect", `oci:${dst}:copy`]);
    expect(JSON.parse(stdout).Layers).toHaveLength(1);
    // no temp directory left next to the result
    expect((await readdir(work.dir)).filter((f) => f.includes("tpod-tmp"))).toEqual([]);
  });

  it("fails with DigestMismatchError when a blob was tampered with, and leaves nothing", async () => {
    const bad = join(work.dir, "bad");
    await exec("cp", ["-r", src, bad]);
    const img0 = await openOciLayout(bad);
    const layer = (await img0.listBlobs())[2]!;
    await writeFile(blobPath(bad, layer.digest), Buffer.alloc(layer.size, 7));
    const img = await openOciLayout(bad);
    await expect(collect(img.openBlob(layer.digest))).rejects.toBeInstanceOf(DigestMismatchError);
    const dst = join(work.dir, "bad-copy");
    const writer = await createOciLayoutWriter(dst);
    await expect(copyImage(img, writer)).rejects.toBeInstanceOf(DigestMismatchError);
    await writer.abort();
    await expect(stat(dst)).rejects.toThrow();
    expect((await readdir(work.dir)).filter((f) => f.includes("tpod-tmp"))).toEqual([]);
    // a longer blob is a size error even before its digest is known
    await appendFile(blobPath(bad, layer.digest), "x");
    await expect(collect((await openOciLayout(bad)).openBlob(layer.digest))).rejects.toThrow();
  });

  it("writeBlob rejects wrong size and wrong digest", async () => {
    const dst = join(work.dir, "w");
    const writer = await createOciLayoutWriter(dst);
    const data = Buffer.from("hello");
    const gen = async function* () {
      yield data;
    };
    await expect(
      writer.writeBlob({ mediaType: "x", digest: sha256Digest(data), size: 4 }, gen()),
    ).rejects.toBeInstanceOf(SizeMismatchError);
    await expect(
      writer.writeBlob({ mediaType: "x", digest: sha256Digest("other"), size: 5 }, gen()),
    ).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await writer.hasBlob(sha256Digest(data))).toBe(false);
    await writer.writeBlob({ mediaType: "x", digest: sha256Digest(data), size: 5 }, gen());
    expect(await writer.hasBlob(sha256Digest(data))).toBe(true);
    await writer.abort();
    await expect(stat(dst)).rejects.toThrow();
  });

  it("refuses a non-empty destination and path-like digests", async () => {
    await expect(createOciLayoutWriter(src)).rejects.toBeInstanceOf(DestinationExistsError);
    expect(() => blobPath(src, "sha256:../../etc/passwd")).toThrow(InvalidDigestError);
    const index = JSON.parse(await readFile(join(src, "index.json"), "utf8"));
    expect(index.manifests).toHaveLength(1);
  });
});
