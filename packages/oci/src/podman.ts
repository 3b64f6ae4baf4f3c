import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type ArchiveSource, createOciArchiveWriter, openOciArchive } from "./archive.js";
import { ToolError } from "./errors.js";
import { copyImage } from "./layout.js";
import type { ImageSource } from "./types.js";

const execFileP = promisify(execFile);

/** podman save/load of a large image takes a while; bound it anyway so a wedged podman cannot hang us. */
const PODMAN_TIMEOUT_MS = 30 * 60 * 1000;

async function podman(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP("podman", args, {
      timeout: PODMAN_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new ToolError(`podman ${args[0]} ${args[1] ?? ""} failed: ${(e.stderr || e.message).trim()}`, {
      cause: err,
    });
  }
}

/** An image exported from the local Podman store; close() removes the temporary archive. */
export interface PodmanImageSource extends ArchiveSource {
  close(): Promise<void>;
}

/** Exports an image from the local Podman store (`podman save --format oci-archive`) and opens it. */
export async function openPodmanImage(ref: string): Promise<PodmanImageSource> {
  const dir = await mkdtemp(join(tmpdir(), "tpod-podman-save-"));
  try {
    const file = join(dir, "image.tar");
    await podman(["save", "--format", "oci-archive", "-o", file, ref]);
    const src = await openOciArchive(file);
    return Object.assign(src, { close: () => rm(dir, { recursive: true, force: true }) });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Loads an image into the local Podman store (through a temporary oci-archive and `podman load`),
 * verifying every blob on the way, and tags it `name` when given. Returns the image id podman reports.
 */
export async function loadIntoPodman(src: ImageSource, name?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "tpod-podman-load-"));
  try {
    const file = join(dir, "image.tar");
    const writer = await createOciArchiveWriter(file);
    try {
      await copyImage(src, writer);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    const out = await podman(["load", "-q", "-i", file]);
    const loaded = out.trim().split(/\s+/).pop() ?? "";
    if (!loaded) throw new ToolError("podman load reported no image");
    if (name) await podman(["tag", loaded, name]);
    const id = (await podman(["image", "inspect", "--format", "{{.Id}}", name ?? loaded])).trim();
    return id;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
