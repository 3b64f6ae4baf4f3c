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
  const { stdout } = await exec("buildah", ["from", "scratch"]);
  const ctr = stdout.trim();
  try {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["config", "--entrypoint", '["/bin/busybox"]', "--cmd", "sh", ctr]);
    let i = 0;
    for (const size of opts.extraLayers ?? []) {
      await exec("buildah", ["commit", "-q", ctr, name]);
      const { dir, cleanup } = await tempDir();
      try {
        const file = join(dir, `data${i}`);
        await exec("sh", ["-c", `head -c ${size} /dev/urandom > ${file}`]);
        await exec("buildah", ["copy", ctr, file, `/data${i}`]);
      } finally {
        await cleanup();
      }
      i++;
    }
    await exec("buildah", ["commit", "-q", ctr, name]);
    await exec("buildah", ["push", "-q", name, `oci:${dest}:${name}`]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
  return name;
}

export async function removeImage(name: string): Promise<void> {
  await exec("buildah", ["rmi", "-f", name]).catch(() => {});
}
