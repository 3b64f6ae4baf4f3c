import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export const exec = promisify(execFile);

export async function tempDir(prefix = "tpod-oci-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function uniqueName(prefix = "tpod-oci-test"): string {
  return `localhost/${prefix}-${randomBytes(5).toString("hex")}`;
}

/**
 * Builds a real busybox image with buildah (from scratch, no registry) and pushes it as an OCI layout.
 * `extraFiles` adds one more layer per entry (a file of the given size of random bytes) for multi-layer tests.
 */
export async function buildBusyboxLayout(
  dest: string,
  opts: { name?: string; extraLayers?: number[] } = {},
): Promise<string> {
  const name = opts.name ?? uniqueName();
  await buildImage(name, "scratch", async (ctr) => {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["config", "--entrypoint", '["/bin/busybox"]', "--cmd", "sh", ctr]);
  });
  // Each commit of a fresh container on top of the previous image adds exactly one layer.
  for (const [i, size] of (opts.extraLayers ?? []).entries()) {
    const { dir, cleanup } = await tempDir();
    try {
      const file = join(dir, `data${i}`);
      await exec("sh", ["-c", `head -c ${size} /dev/urandom > ${file}`]);
      await buildImage(name, name, (ctr) => exec("buildah", ["copy", ctr, file, `/data${i}`]));
    } finally {
      await cleanup();
    }
  }
  await exec("buildah", ["push", "-q", name, `oci:${dest}:${name}`]);
  return name;
}

async function buildImage(
  name: string,
  from: string,
  fill: (ctr: string) => Promise<unknown>,
): Promise<void> {
  const { stdout } = await exec("buildah", ["from", "--pull-never", from]);
  const ctr = stdout.trim();
  try {
    await fill(ctr);
    await exec("buildah", ["commit", "-q", ctr, name]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
}

export async function removeImage(name: string): Promise<void> {
  await exec("buildah", ["rmi", "-f", name]).catch(() => {});
}

export interface KeyPairFiles {
  pub: string;
  priv: string;
}

/** Generates a key pair with openssl (PKCS#8 private key, SPKI public key), as a user would. */
export async function opensslKeyPair(
  dir: string,
  name: string,
  kind: "rsa" | "p256" | "p384",
): Promise<KeyPairFiles> {
  const priv = join(dir, `${name}.pem`);
  const pub = join(dir, `${name}.pub.pem`);
  const args =
    kind === "rsa"
      ? ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", priv]
      : [
          "genpkey",
          "-algorithm",
          "EC",
          "-pkeyopt",
          `ec_paramgen_curve:${kind === "p256" ? "P-256" : "P-384"}`,
          "-out",
          priv,
        ];
  await exec("openssl", args);
  await exec("openssl", ["pkey", "-in", priv, "-pubout", "-out", pub]);
  return { pub, priv };
}

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
