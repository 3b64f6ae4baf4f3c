import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { DigestVerifier, parseDigest, sha256Digest, verifyStream } from "./digest.js";
import {
  BlobNotFoundError,
  DestinationExistsError,
  InvalidImageError,
  OciError,
  RefNotFoundError,
} from "./errors.js";
import { encodeJson, MAX_JSON_BLOB, parseIndex } from "./json.js";
import {
  type Descriptor,
  type ImageIndex,
  type ImageSink,
  type ImageSource,
  MediaType,
  REF_NAME_ANNOTATION,
} from "./types.js";
import { readBlobBytes, type WalkedNode, walkImage } from "./walk.js";

export const OCI_LAYOUT_FILE = "oci-layout";
export const OCI_LAYOUT_VERSION = "1.0.0";
/** Blobs stream in chunks of this size: large enough for throughput, small enough to keep memory bounded. */
export const CHUNK_SIZE = 1024 * 1024;

export function blobPath(dir: string, digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return join(dir, "blobs", algorithm, hex);
}

/** An image read from an OCI image layout directory. */
export interface OciLayoutSource extends ImageSource {
  readonly dir: string;
  /** The layout's index.json, as read. */
  readonly index: ImageIndex;
  /** Streams a blob; `verify: false` skips hashing for callers that hash the bytes themselves. */
  openBlob(digest: string, opts?: { verify?: boolean }): AsyncIterable<Uint8Array>;
  /** Reads a small blob (manifest, index, config) whole, verified. */
  readBlob(desc: Descriptor): Promise<Buffer>;
  /** Walks the image: every reachable blob once, with parsed manifests and indexes. */
  walk(): Promise<WalkedNode[]>;
  /** The on-disk path of a blob, for hard-linking. */
  blobPath(digest: string): string;
}

/**
 * Opens an OCI image layout. With `ref`, picks the index.json entry whose ref.name annotation matches;
 * without, index.json must list exactly one manifest.
 */
export async function openOciLayout(dir: string, opts: { ref?: string } = {}): Promise<OciLayoutSource> {
  await checkLayoutMarker(dir);
  const indexPath = join(dir, "index.json");
  const indexStat = await stat(indexPath).catch(() => undefined);
  if (!indexStat?.isFile()) throw new InvalidImageError(`${dir} has no index.json`);
  if (indexStat.size > MAX_JSON_BLOB) throw new InvalidImageError(`${indexPath} is too large`);
  const index = parseIndex(await readFile(indexPath), indexPath);
  const root = chooseRoot(index, opts.ref, dir);
  const sizes = new Map<string, number>();
  const open = (digest: string, o: { verify?: boolean } = {}): AsyncIterable<Uint8Array> => {
    const path = blobPath(dir, digest);
    const raw = readFileChunks(path, digest);
    return o.verify === false ? raw : verifyStream(raw, digest, sizes.get(digest));
  };
  let walked: Promise<WalkedNode[]> | undefined;
  const walk = () => {
    walked ??= walkImage(root, (d) => open(d)).then((nodes) => {
      for (const n of nodes) sizes.set(n.desc.digest, n.desc.size);
      return nodes;
    });
    return walked;
  };
  return {
    dir,
    index,
    root,
    walk,
    listBlobs: async () => (await walk()).map((n) => n.desc),
    openBlob: open,
    readBlob: (desc) => readBlobBytes(open(desc.digest, { verify: false }), desc),
    blobPath: (digest) => blobPath(dir, digest),
  };
}

async function checkLayoutMarker(dir: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(join(dir, OCI_LAYOUT_FILE), "utf8");
  } catch {
    throw new InvalidImageError(`${dir} is not an OCI image layout (no oci-layout file)`);
  }
  let version: unknown;
  try {
    version = (JSON.parse(text) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch (err) {
    throw new InvalidImageError(`${dir}/oci-layout is not valid JSON`, { cause: err });
  }
  if (typeof version !== "string" || !version.startsWith("1.")) {
    throw new InvalidImageError(`${dir}: unsupported imageLayoutVersion ${String(version)}`);
  }
}

export function chooseRoot(index: ImageIndex, ref: string | undefined, where: string): Descriptor {
  const entries = index.manifests;
  if (ref !== undefined) {
    const matches = entries.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === ref);
    if (matches.length === 0) throw new RefNotFoundError(`${where}: no image named ${JSON.stringify(ref)}`);
    if (matches.length > 1) {
      throw new RefNotFoundError(`${where}: several images named ${JSON.stringify(ref)}`);
    }
    return matches[0]!;
  }
  if (entries.length === 0) throw new InvalidImageError(`${where}: index.json lists no image`);
  if (entries.length > 1) {
    const names = entries.map((m) => m.annotations?.[REF_NAME_ANNOTATION] ?? m.digest).join(", ");
    throw new RefNotFoundError(
      `${where}: index.json lists ${entries.length} images (${names}); choose one by ref`,
    );
  }
  return entries[0]!;
}

async function* readFileChunks(path: string, digest: string): AsyncGenerator<Uint8Array> {
  const stream = createReadStream(path, { highWaterMark: CHUNK_SIZE });
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new BlobNotFoundError(digest);
    throw err;
  } finally {
    stream.destroy();
  }
}

/** A layout being written into a hidden temp directory; only `finish` makes it appear at its path. */
export interface OciLayoutWriter extends ImageSink {
  readonly dir: string;
  /** Writes a blob whose digest is not known in advance (e.g. a freshly encrypted layer). */
  addBlob(data: AsyncIterable<Uint8Array>, mediaType: string): Promise<Descriptor>;
  /** Writes a small blob (manifest, config) from bytes. */
  putBytes(mediaType: string, bytes: Uint8Array): Promise<Descriptor>;
  /** Opens a file for writing a blob whose digest the caller computes; `commit` checks and renames it. */
  createBlobFile(): Promise<BlobFile>;
  /** Hard-links a verified blob from another layout on the same filesystem; false if linking is impossible. */
  linkBlob(desc: Descriptor, fromPath: string): Promise<boolean>;
  /** Removes everything written so far; safe to call more than once and after finish. */
  abort(): Promise<void>;
}

export interface BlobFile {
  readonly handle: FileHandle;
  /** Renames the temp file to the blob named by digest. */
  commit(digest: string): Promise<void>;
  discard(): Promise<void>;
}

/**
 * Creates a layout writer for `dir`, which must not exist or be an empty directory.
 * Everything goes into a sibling temp directory renamed onto `dir` by finish(), so a failure leaves nothing.
 */
export async function createOciLayoutWriter(dir: string): Promise<OciLayoutWriter> {
  await assertWritableDestination(dir);
  await mkdir(dirname(dir), { recursive: true });
  const tmp = join(dirname(dir), `.${basename(dir)}.tpod-tmp-${randomBytes(6).toString("hex")}`);
  await mkdir(join(tmp, "blobs", "sha256"), { recursive: true });
  let state: "open" | "finished" | "aborted" = "open";
  let tmpCounter = 0;

  const assertOpen = () => {
    if (state !== "open") throw new OciError("WRITER_CLOSED", `layout writer for ${dir} is ${state}`);
  };
  const tempName = () => join(tmp, "blobs", `.partial-${tmpCounter++}-${randomBytes(4).toString("hex")}`);
  const finalPath = async (digest: string) => {
    const path = blobPath(tmp, digest);
    await mkdir(dirname(path), { recursive: true });
    return path;
  };

  const hasBlob = async (digest: string) => {
    const s = await stat(blobPath(tmp, digest)).catch(() => undefined);
    return s?.isFile() ?? false;
  };

  const writeToTemp = async (
    data: AsyncIterable<Uint8Array>,
    observe: (chunk: Uint8Array) => void,
  ): Promise<string> => {
    const path = tempName();
    const handle = await open(path, "wx", 0o644);
    try {
      for await (const chunk of data) {
        observe(chunk);
        await writeAll(handle, chunk);
      }
      await handle.close();
      return path;
    } catch (err) {
      await handle.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw err;
    }
  };

  const writer: OciLayoutWriter = {
    dir,
    hasBlob,
    async writeBlob(desc, data) {
      assertOpen();
      const verifier = new DigestVerifier(desc.digest, desc.size);
      const path = await writeToTemp(data, (c) => verifier.update(c));
      try {
        verifier.verify();
      } catch (err) {
        await unlink(path).catch(() => {});
        throw err;
      }
      await rename(path, await finalPath(desc.digest));
    },
    async addBlob(data, mediaType) {
      assertOpen();
      const { createHash } = await import("node:crypto");
      const hash = createHash("sha256");
      let size = 0;
      const path = await writeToTemp(data, (c) => {
        hash.update(c);
        size += c.byteLength;
      });
      const digest = `sha256:${hash.digest("hex")}`;
      await rename(path, await finalPath(digest));
      return { mediaType, digest, size };
    },
    async putBytes(mediaType, bytes) {
      assertOpen();
      const digest = sha256Digest(bytes);
      const path = tempName();
      await writeFile(path, bytes, { flag: "wx" });
      await rename(path, await finalPath(digest));
      return { mediaType, digest, size: bytes.byteLength };
    },
    async createBlobFile() {
      assertOpen();
      const path = tempName();
      const handle = await open(path, "wx", 0o644);
      return {
        handle,
        async commit(digest) {
          await handle.close();
          await rename(path, await finalPath(digest));
        },
        async discard() {
          await handle.close().catch(() => {});
          await unlink(path).catch(() => {});
        },
      };
    },
    async linkBlob(desc, fromPath) {
      assertOpen();
      const { link } = await import("node:fs/promises");
      const target = await finalPath(desc.digest);
      try {
        const s = await stat(fromPath);
        if (s.size !== desc.size) return false;
        await link(fromPath, target);
        return true;
      } catch {
        return false;
      }
    },
    async finish(root, refName) {
      assertOpen();
      if (!(await hasBlob(root.digest))) throw new BlobNotFoundError(root.digest);
      const entry: Descriptor = { ...root };
      if (refName !== undefined) entry.annotations = { ...root.annotations, [REF_NAME_ANNOTATION]: refName };
      const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.imageIndex, manifests: [entry] };
      await writeFile(join(tmp, OCI_LAYOUT_FILE), JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }));
      await writeFile(join(tmp, "index.json"), encodeJson(index));
      await assertWritableDestination(dir);
      // rename(2) replaces an empty directory atomically and fails on a non-empty one.
      await rename(tmp, dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOTEMPTY" || err.code === "EEXIST") throw new DestinationExistsError(dir);
        throw err;
      });
      state = "finished";
    },
    async abort() {
      if (state === "open") state = "aborted";
      await rm(tmp, { recursive: true, force: true });
    },
  };
  return writer;
}

async function assertWritableDestination(dir: string): Promise<void> {
  const s = await stat(dir).catch(() => undefined);
  if (!s) return;
  if (!s.isDirectory() || (await readdir(dir)).length > 0) throw new DestinationExistsError(dir);
}

export async function writeAll(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let off = 0;
  while (off < chunk.byteLength) {
    const { bytesWritten } = await handle.write(chunk, off, chunk.byteLength - off);
    off += bytesWritten;
  }
}

/** Copies every blob of `src` into `sink` (verifying each) and finishes it with the same root. */
export async function copyImage(
  src: ImageSource,
  sink: ImageSink,
  opts: { refName?: string; onBlob?: (desc: Descriptor) => void } = {},
): Promise<Descriptor> {
  const blobs = await src.listBlobs();
  // Children first, so a reader of a partial copy never sees a manifest whose blobs are missing.
  for (const desc of [...blobs].reverse()) {
    if (await sink.hasBlob(desc.digest)) continue;
    await sink.writeBlob(desc, src.openBlob(desc.digest));
    opts.onBlob?.(desc);
  }
  await sink.finish(src.root, opts.refName);
  return src.root;
}

/** Runs `fn` with a layout writer for `dir` and aborts it (removing every trace) if `fn` throws. */
export async function withLayoutWriter<T>(
  dir: string,
  fn: (writer: OciLayoutWriter) => Promise<T>,
): Promise<T> {
  const writer = await createOciLayoutWriter(dir);
  try {
    return await fn(writer);
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
