import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  copyImage,
  createDockerArchiveWriter,
  createOciArchiveWriter,
  createOciLayoutWriter,
  DigestMismatchError,
  indexTar,
  loadIntoPodman,
  MediaType,
  openArchive,
  openOciLayout,
  openPodmanImage,
  parseManifest,
} from "../src/index.js";
import { buildBusyboxLayout, exec, removeImage, tempDir, uniqueName } from "./helpers.js";

let work: { dir: string; cleanup: () => Promise<void> };
let layout: string;
let name: string;
const loaded: string[] = [];

beforeAll(async () => {
  work = await tempDir();
  layout = join(work.dir, "layout");
  name = await buildBusyboxLayout(layout, { extraLayers: [100_000] });
});
afterAll(async () => {
  for (const n of [name, ...loaded]) await removeImage(n);
  await work.cleanup();
});

async function layerDiffIds(dir: string): Promise<string[]> {
  const src = await openOciLayout(dir);
  const manifest = parseManifest(await src.readBlob(src.root));
  const config = JSON.parse((await src.readBlob(manifest.config)).toString());
  return config.rootfs.diff_ids;
}

describe("archives", () => {
  it("reads a podman oci-archive by byte ranges and copies it into a layout", async () => {
    const file = join(work.dir, "img-oci.tar");
    await exec("podman", ["save", "-q", "--format", "oci-archive", "-o", file, name]);
    const src = await openArchive(file);
    expect(src.format).toBe("oci-archive");
    const blobs = await src.listBlobs();
    expect(blobs.filter((b) => b.mediaType.includes("layer"))).toHaveLength(2);
    const dst = join(work.dir, "from-oci-archive");
    const writer = await createOciLayoutWriter(dst);
    await copyImage(src, writer);
    expect(await layerDiffIds(dst)).toEqual(await layerDiffIds(layout));
    await exec("skopeo", ["inspect", `oci:${dst}`]);
  });

  it("reads a podman docker-archive as an OCI image whose layers match the config's diff_ids", async () => {
    const file = join(work.dir, "img-docker.tar");
    await exec("podman", ["save", "-q", "--format", "docker-archive", "-o", file, name]);
    const src = await openArchive(file);
    expect(src.format).toBe("docker-archive");
    expect(src.root.mediaType).toBe(MediaType.imageManifest);
    const dst = join(work.dir, "from-docker-archive");
    const writer = await createOciLayoutWriter(dst);
    await copyImage(src, writer);
    const manifest = parseManifest(
      await (await openOciLayout(dst)).readBlob((await openOciLayout(dst)).root),
    );
    expect(manifest.layers.map((l) => l.digest)).toEqual(await layerDiffIds(layout));
    const { stdout } = await exec("skopeo", ["inspect", `oci:${dst}`]);
    expect(JSON.parse(stdout).Layers).toHaveLength(2);
  });

  it("fails with DigestMismatchError on a tampered archive", async () => {
    const file = join(work.dir, "img-tampered.tar");
    await exec("podman", ["save", "-q", "--format", "docker-archive", "-o", file, name]);
    const entries = [...(await indexTar(file)).values()].sort((a, b) => b.size - a.size);
    const fh = await open(file, "r+");
    await fh.write(Buffer.from("tampered"), 0, 8, entries[0]!.offset + 4096);
    await fh.close();
    const src = await openArchive(file);
    const dst = join(work.dir, "from-tampered");
    const writer = await createOciLayoutWriter(dst);
    await expect(copyImage(src, writer)).rejects.toBeInstanceOf(DigestMismatchError);
    await writer.abort();
    await expect(stat(dst)).rejects.toThrow();
  });

  it("writes an oci-archive that skopeo reads and that reads back to the same image", async () => {
    const file = join(work.dir, "written.tar");
    const writer = await createOciArchiveWriter(file);
    const src = await openOciLayout(layout);
    await copyImage(src, writer, { refName: "written" });
    const { stdout } = await exec("skopeo", ["inspect", `oci-archive:${file}:written`]);
    expect(JSON.parse(stdout).Layers).toHaveLength(2);
    expect((await openArchive(file)).root.digest).toBe(src.root.digest);
  });

  it("writes a docker-archive (gzip layers stored uncompressed) that podman loads and runs", async () => {
    const file = join(work.dir, "written-docker.tar");
    const writer = await createDockerArchiveWriter(file);
    await copyImage(await openOciLayout(layout), writer, {
      refName: "localhost/tpod-oci-docker-archive:test",
    });
    const back = await openArchive(file);
    expect(back.format).toBe("docker-archive");
    expect(await layerDiffIdsOf(back)).toEqual(await layerDiffIds(layout));
    const target = uniqueName("tpod-oci-dload");
    loaded.push(target);
    const { stdout } = await exec("podman", ["load", "-q", "-i", file]);
    const id = stdout.trim().split(/\s+/).pop()!;
    await exec("podman", ["tag", id, target]);
    const run = await exec("podman", ["run", "--rm", target, "echo", "hello-from-docker-archive"]);
    expect(run.stdout.trim()).toBe("hello-from-docker-archive");
  });

  it("exports from and loads into the local Podman store", async () => {
    const fromStore = await openPodmanImage(name);
    try {
      expect(await layerDiffIdsOf(fromStore)).toEqual(await layerDiffIds(layout));
    } finally {
      await fromStore.close();
    }
    const target = uniqueName("tpod-oci-load");
    loaded.push(target);
    const id = await loadIntoPodman(await openOciLayout(layout), target);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const { stdout } = await exec("podman", ["run", "--rm", target, "echo", "hello-from-loaded"]);
    expect(stdout.trim()).toBe("hello-from-loaded");
  });
});

async function layerDiffIdsOf(src: Awaited<ReturnType<typeof openArchive>>): Promise<string[]> {
  const manifest = parseManifest(await src.readBlob(src.root));
  return JSON.parse((await src.readBlob(manifest.config)).toString()).rootfs.diff_ids;
}
