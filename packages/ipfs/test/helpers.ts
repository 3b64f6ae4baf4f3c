import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { openOciLayout } from "@trustedpods/oci";
import { createIpfsNode, type IpfsNode } from "../src/index.js";

export const exec = promisify(execFile);

export async function tempDir(prefix = "tpod-ipfs-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function uniqueName(prefix = "tpod-ipfs-test"): string {
  return `localhost/${prefix}-${randomBytes(5).toString("hex")}`;
}

export { makeLayout } from "../../../test-support/oci-layout.js";

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

export async function startNode(parent: string, name: string): Promise<IpfsNode> {
  return createIpfsNode({ dataDir: join(parent, name) });
}

/** Finds the blockstore-fs file holding exactly `bytes` (a raw leaf), for tamper tests. */
export async function findBlockFile(root: string, bytes: Uint8Array): Promise<string | undefined> {
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const data = await readFile(path);
    if (data.equals(bytes)) return path;
  }
  return undefined;
}

export async function exists(path: string): Promise<boolean> {
  return readdir(path).then(
    () => true,
    () => false,
  );
}
