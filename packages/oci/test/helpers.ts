import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

export const exec = promisify(execFile);

// Shared with the cli and ipfs tests through test-support/ (re-exported so this package's tests read as before).
export {
  buildBusyboxLayout,
  type KeyPairFiles,
  opensslKeyPair,
  removeImage,
  tempDir,
  uniqueName,
} from "../../../test-support/oci-images.js";

/** Copies a layout directory (cp -r), for tests that tamper with a copy. */
export async function copyDir(from: string, to: string): Promise<void> {
  await exec("cp", ["-r", from, to]);
}

/**
 * Writes a synthetic single-layer OCI layout with a layer of `size` bytes (a random MiB repeated), for
 * size and memory tests where building through buildah would only add time. Returns the root digest.
 */
export async function writeBigLayout(dir: string, size: number): Promise<string> {
  const { createHash, randomBytes: rnd } = await import("node:crypto");
  const { mkdir, open, rename, writeFile } = await import("node:fs/promises");
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const chunk = rnd(1024 * 1024);
  const hash = createHash("sha256");
  const tmp = join(dir, "blobs", "layer.tmp");
  const fh = await open(tmp, "w");
  for (let done = 0; done < size; done += chunk.byteLength) {
    const part = chunk.subarray(0, Math.min(chunk.byteLength, size - done));
    hash.update(part);
    await fh.write(part);
  }
  await fh.close();
  const layerDigest = `sha256:${hash.digest("hex")}`;
  await rename(tmp, join(dir, "blobs", "sha256", layerDigest.slice(7)));
  const put = async (obj: unknown) => {
    const bytes = Buffer.from(JSON.stringify(obj));
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    await writeFile(join(dir, "blobs", "sha256", digest.slice(7)), bytes);
    return { digest, size: bytes.byteLength };
  };
  const config = await put({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [layerDigest] },
    config: {},
  });
  const manifest = await put({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size }],
  });
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest }],
    }),
  );
  return manifest.digest;
}
