/** manifest.json: what an image directory holds, with the digests two builds of one commit must share. */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ImageError } from "./errors.js";

export const MANIFEST_FILE = "manifest.json";

export interface FileDigest {
  sha256: string;
  size: number;
}

export interface ImageManifest {
  format: 1;
  name: "tpod-provider";
  /** The repository commit the image was built from; dirty: with uncommitted changes. */
  commit: string;
  dirty: boolean;
  /** Every time in the image (the commit's time, seconds). */
  sourceDateEpoch: number;
  /** The kernel command line the image must boot with (the dm-verity root hash is in it). */
  cmdline: string;
  rootHash: string;
  dataBlocks: number;
  kernel: string;
  node: string;
  /** vmlinuz, initrd.img, root.img, packages.lock. */
  files: Record<string, FileDigest>;
  /** SHA-256 over the file digests and the command line: one value to compare two builds by. */
  digest: string;
}

/** The image digest: SHA-256 of "NAME SHA256\n" for each file in name order, then "cmdline CMDLINE\n". */
export function imageDigest(m: Pick<ImageManifest, "files" | "cmdline">): string {
  const h = createHash("sha256");
  for (const name of Object.keys(m.files).sort()) h.update(`${name} ${m.files[name]!.sha256}\n`);
  h.update(`cmdline ${m.cmdline}\n`);
  return h.digest("hex");
}

export async function readManifest(dir: string): Promise<ImageManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let m: ImageManifest;
  try {
    m = JSON.parse(await readFile(file, "utf8")) as ImageManifest;
  } catch (err) {
    throw new ImageError(
      "BAD_IMAGE_DIR",
      `${file}: ${(err as Error).message} (is ${dir} an image built by tpod provider image build?)`,
    );
  }
  if (m.format !== 1 || m.name !== "tpod-provider" || typeof m.cmdline !== "string" || !m.files?.vmlinuz)
    throw new ImageError("BAD_IMAGE_DIR", `${file} is not a tpod provider image manifest`);
  return m;
}
