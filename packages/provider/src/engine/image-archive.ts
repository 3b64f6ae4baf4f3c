import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { EngineError } from "./errors.js";
import type { ImageSource } from "./types.js";

const run = promisify(execFile);
const MAX_METADATA = 1024 * 1024;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export interface PreparedArchive {
  /** Tar file to hand to the engine's image load, with the image named `ref` and nothing else. */
  tarPath: string;
  configDigest: string;
  cleanup(): Promise<void>;
}

async function readJson(file: string): Promise<unknown> {
  const s = await stat(file);
  if (s.size > MAX_METADATA)
    throw new EngineError("IMAGE_LOAD_FAILED", `${path.basename(file)} is too large`);
  return JSON.parse(await readFile(file, "utf8"));
}

function bad(message: string): never {
  throw new EngineError("IMAGE_LOAD_FAILED", message);
}

function blobPath(dir: string, digest: unknown): string {
  if (typeof digest !== "string" || !DIGEST.test(digest)) bad(`invalid digest ${String(digest)}`);
  return path.join(dir, "blobs", "sha256", digest.slice("sha256:".length));
}

/** Names the single image of an OCI layout `ref`; returns the rewritten index.json and the config digest. */
async function renameOciLayout(dir: string, ref: (configDigest: string) => string) {
  const index = (await readJson(path.join(dir, "index.json"))) as { manifests?: Record<string, unknown>[] };
  if (!Array.isArray(index.manifests) || index.manifests.length !== 1) {
    bad("the OCI layout must hold exactly one image manifest");
  }
  const entry = index.manifests[0]!;
  const manifest = (await readJson(blobPath(dir, entry.digest))) as { config?: { digest?: unknown } };
  const configDigest = manifest.config?.digest;
  if (typeof configDigest !== "string" || !DIGEST.test(configDigest)) bad("manifest has no config digest");
  const annotations = { ...((entry.annotations as Record<string, string> | undefined) ?? {}) };
  annotations["org.opencontainers.image.ref.name"] = ref(configDigest);
  const rewritten = { ...index, manifests: [{ ...entry, annotations }] };
  return { indexJson: JSON.stringify(rewritten), configDigest };
}

/** Same for a docker-archive (`docker save` / `podman save`) tree: RepoTags becomes exactly [ref]. */
async function renameDockerArchive(dir: string, ref: (configDigest: string) => string) {
  const manifest = (await readJson(path.join(dir, "manifest.json"))) as Record<string, unknown>[];
  if (!Array.isArray(manifest) || manifest.length !== 1) bad("the archive must hold exactly one image");
  const entry = manifest[0]!;
  if (typeof entry.Config !== "string" || entry.Config.includes("..")) bad("archive has no config");
  const config = await readFile(path.join(dir, entry.Config));
  const configDigest = "sha256:" + createHash("sha256").update(config).digest("hex");
  return { manifestJson: JSON.stringify([{ ...entry, RepoTags: [ref(configDigest)] }]), configDigest };
}

/**
 * Rewrites the name inside an image archive or OCI layout so that loading it creates exactly the name we
 * choose, derived from the image's config digest. Loading an archive as it comes would let a tenant's archive
 * carry any name, including another pod's image name, and move that tag to its own image.
 */
export async function prepareImageArchive(
  source: ImageSource,
  workDir: string,
  ref: (configDigest: string) => string,
): Promise<PreparedArchive> {
  const tmp = path.join(workDir, `img-${randomBytes(8).toString("hex")}`);
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  const cleanup = () => rm(tmp, { recursive: true, force: true });
  try {
    const tarPath = path.join(tmp, "image.tar");
    if (source.kind === "oci-layout") {
      const meta = path.join(tmp, "meta");
      await mkdir(meta);
      const { indexJson, configDigest } = await renameOciLayout(source.dir, ref);
      await writeFile(path.join(meta, "index.json"), indexJson);
      await run("tar", [
        "-cf",
        tarPath,
        "-C",
        source.dir,
        "--exclude=./index.json",
        ".",
        "-C",
        meta,
        "index.json",
      ]);
      return { tarPath, configDigest, cleanup };
    }
    const tree = path.join(tmp, "tree");
    await mkdir(tree);
    // GNU tar skips members containing ".." and strips leading "/": extraction stays inside `tree`.
    await run("tar", ["-xf", source.path, "-C", tree, "--no-same-owner", "--no-same-permissions"]);
    let configDigest: string;
    if (await fileExists(path.join(tree, "oci-layout"))) {
      const r = await renameOciLayout(tree, ref);
      await writeFile(path.join(tree, "index.json"), r.indexJson);
      configDigest = r.configDigest;
    } else if (await fileExists(path.join(tree, "manifest.json"))) {
      const r = await renameDockerArchive(tree, ref);
      await writeFile(path.join(tree, "manifest.json"), r.manifestJson);
      configDigest = r.configDigest;
    } else {
      bad("not an OCI layout or docker archive");
    }
    await run("tar", ["-cf", tarPath, "-C", tree, "."]);
    await rm(tree, { recursive: true, force: true });
    return { tarPath, configDigest, cleanup };
  } catch (err) {
    await cleanup();
    if (err instanceof EngineError) throw err;
    throw new EngineError("IMAGE_LOAD_FAILED", `cannot prepare image: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

async function fileExists(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
