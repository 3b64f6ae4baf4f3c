import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  tempDir as sharedTempDir,
  uniqueName as sharedUniqueName,
} from "../../../test-support/oci-images.js";
import { createIpfsNode, type IpfsNode } from "../src/index.js";

export const exec = promisify(execFile);

export const tempDir = (prefix = "tpod-ipfs-") => sharedTempDir(prefix);
export const uniqueName = (prefix = "tpod-ipfs-test") => sharedUniqueName(prefix);

export { layoutBlobs, makeLayout } from "../../../test-support/oci-layout.js";

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
