// Test- and bench-only: a small synthetic OCI image written as a layout (a config and the given layers), for
// code that needs an image but not a runnable one. Imported by relative path (tests as .js, benches as .ts).
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createOciLayoutWriter, type Descriptor, MediaType, openOciLayout } from "@trustedpods/oci";

/**
 * Writes a layout at `dir` holding one image of `layers`, tagged `latest`; returns its manifest. A layer is bytes,
 * or a stream of them for layers too big to hold in memory.
 */
export async function makeLayout(
  dir: string,
  layers: (Uint8Array | AsyncIterable<Uint8Array>)[],
): Promise<Descriptor> {
  const w = await createOciLayoutWriter(dir);
  const layerDescs: Descriptor[] = [];
  for (const layer of layers)
    layerDescs.push(
      layer instanceof Uint8Array
        ? await w.putBytes(MediaType.layerTar, layer)
        : await w.addBlob(layer, MediaType.layerTar),
    );
  const config = await w.putBytes(
    MediaType.imageConfig,
    new TextEncoder().encode(
      JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers" } }),
    ),
  );
  const manifest = await w.putBytes(
    MediaType.imageManifest,
    new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.imageManifest, config, layers: layerDescs }),
    ),
  );
  await w.finish(manifest, "latest");
  return manifest;
}

/** Every blob of a layout as digest → sha256 of the file's bytes (deep-comparing MiBs of bytes is slow). */
export async function layoutBlobs(dir: string): Promise<Record<string, string>> {
  const src = await openOciLayout(dir);
  const out: Record<string, string> = {};
  for (const d of await src.listBlobs()) {
    const bytes = await readFile(join(dir, "blobs", "sha256", d.digest.slice(7)));
    out[d.digest] = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  }
  return out;
}
