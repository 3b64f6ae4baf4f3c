import { createHash, randomBytes } from "node:crypto";
import { open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { DigestVerifier, parseDigest, sha256Digest, verifyStream } from "./digest.js";
import { BlobNotFoundError, DestinationExistsError, InvalidImageError, OciError } from "./errors.js";
import { encodeJson, MAX_JSON_BLOB, parseIndex, parseJsonBytes } from "./json.js";
import { chooseRoot, OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION, writeAll } from "./layout.js";
import { indexTar, readRange, TAR_END, type TarEntry, tarHeader, tarPadding } from "./tar.js";
import {
  type Descriptor,
  type ImageIndex,
  type ImageSink,
  type ImageSource,
  MediaType,
  REF_NAME_ANNOTATION,
} from "./types.js";
import { readBlobBytes, type WalkedNode, walkImage } from "./walk.js";

/** An image read from a tar archive on disk, by byte ranges: the archive is never extracted. */
export interface ArchiveSource extends ImageSource {
  readonly path: string;
  readonly format: "oci-archive" | "docker-archive";
  openBlob(digest: string, opts?: { verify?: boolean }): AsyncIterable<Uint8Array>;
  readBlob(desc: Descriptor): Promise<Buffer>;
  walk(): Promise<WalkedNode[]>;
}

async function readEntry(path: string, entry: TarEntry | undefined, what: string): Promise<Buffer> {
  if (!entry) throw new InvalidImageError(`${path}: archive has no ${what}`);
  if (entry.size > MAX_JSON_BLOB) throw new InvalidImageError(`${path}: ${what} is too large`);
  const parts: Uint8Array[] = [];
  for await (const c of readRange(path, entry.offset, entry.size)) parts.push(c);
  return Buffer.concat(parts);
}

function makeSource(
  path: string,
  format: ArchiveSource["format"],
  root: Descriptor,
  rawOpen: (digest: string) => AsyncIterable<Uint8Array>,
): ArchiveSource {
  const sizes = new Map<string, number>();
  const openBlob = (digest: string, o: { verify?: boolean } = {}) => {
    const raw = rawOpen(digest);
    return o.verify === false ? raw : verifyStream(raw, digest, sizes.get(digest));
  };
  let walked: Promise<WalkedNode[]> | undefined;
  const walk = () => {
    walked ??= walkImage(root, (d) => openBlob(d)).then((nodes) => {
      for (const n of nodes) sizes.set(n.desc.digest, n.desc.size);
      return nodes;
    });
    return walked;
  };
  return {
    path,
    format,
    root,
    walk,
    listBlobs: async () => (await walk()).map((n) => n.desc),
    openBlob,
    readBlob: (desc) => readBlobBytes(openBlob(desc.digest, { verify: false }), desc),
  };
}

/** Opens an oci-archive (a tar of an OCI layout, as `podman save --format oci-archive` writes). */
export async function openOciArchive(path: string, opts: { ref?: string } = {}): Promise<ArchiveSource> {
  const entries = await indexTar(path);
  return ociArchiveFromEntries(path, entries, opts);
}

function ociArchiveFromEntries(path: string, entries: Map<string, TarEntry>, opts: { ref?: string }) {
  return (async () => {
    const layout = parseJsonBytes(
      await readEntry(path, entries.get(OCI_LAYOUT_FILE), "oci-layout"),
      "oci-layout",
    );
    if (typeof layout.imageLayoutVersion !== "string" || !layout.imageLayoutVersion.startsWith("1.")) {
      throw new InvalidImageError(`${path}: unsupported imageLayoutVersion`);
    }
    const index = parseIndex(
      await readEntry(path, entries.get("index.json"), "index.json"),
      `${path} index.json`,
    );
    const root = chooseRoot(index, opts.ref, path);
    return makeSource(path, "oci-archive", root, (digest) => {
      const { algorithm, hex } = parseDigest(digest);
      const entry = entries.get(`blobs/${algorithm}/${hex}`);
      if (!entry) return failing(new BlobNotFoundError(digest));
      return readRange(path, entry.offset, entry.size);
    });
  })();
}

// biome-ignore lint/correctness/useYield: an iterable that fails on first use
async function* failing(err: Error): AsyncGenerator<Uint8Array> {
  throw err;
}

interface DockerArchiveManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/**
 * Opens a docker-archive (`podman save`, `docker save`): manifest.json names a config and uncompressed
 * layer tars. The image is presented as an OCI manifest synthesized in memory; layer digests come from the
 * config's diff_ids (or are computed for compressed layers) and are verified when the layers are read.
 */
export async function openDockerArchive(path: string, opts: { ref?: string } = {}): Promise<ArchiveSource> {
  const entries = await indexTar(path);
  return dockerArchiveFromEntries(path, entries, opts);
}

async function dockerArchiveFromEntries(
  path: string,
  entries: Map<string, TarEntry>,
  opts: { ref?: string },
): Promise<ArchiveSource> {
  let list: unknown;
  try {
    list = JSON.parse(
      (await readEntry(path, entries.get("manifest.json"), "manifest.json")).toString("utf8"),
    );
  } catch (err) {
    if (err instanceof OciError) throw err;
    throw new InvalidImageError(`${path}: manifest.json is not JSON`, { cause: err });
  }
  if (!Array.isArray(list) || list.length === 0)
    throw new InvalidImageError(`${path}: manifest.json lists no image`);
  const images = list as DockerArchiveManifestEntry[];
  let chosen: DockerArchiveManifestEntry;
  if (opts.ref !== undefined) {
    const match = images.find((m) => m.RepoTags?.includes(opts.ref!));
    if (!match) throw new InvalidImageError(`${path}: no image tagged ${opts.ref}`);
    chosen = match;
  } else {
    if (images.length > 1) throw new InvalidImageError(`${path}: ${images.length} images; choose one by ref`);
    chosen = images[0]!;
  }
  if (typeof chosen.Config !== "string" || !Array.isArray(chosen.Layers)) {
    throw new InvalidImageError(`${path}: malformed manifest.json entry`);
  }
  const entryOf = (name: string) => {
    const e = entries.get(name.replace(/^\.\//, ""));
    if (!e) throw new InvalidImageError(`${path}: archive lacks ${name}`);
    return e;
  };
  const configBytes = await readEntry(path, entryOf(chosen.Config), chosen.Config);
  const config = parseJsonBytes(configBytes, "image config");
  const diffIds = (config.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== chosen.Layers.length) {
    throw new InvalidImageError(`${path}: config diff_ids do not match the layer list`);
  }
  const blobs = new Map<string, TarEntry | Buffer>();
  const configDesc: Descriptor = {
    mediaType: MediaType.imageConfig,
    digest: sha256Digest(configBytes),
    size: configBytes.byteLength,
  };
  blobs.set(configDesc.digest, configBytes);
  const layers: Descriptor[] = [];
  for (const [i, name] of chosen.Layers.entries()) {
    const entry = entryOf(name);
    const head = await readHead(path, entry);
    const compressed = head[0] === 0x1f && head[1] === 0x8b;
    // Uncompressed layers are named by their diff_id; a compressed one must be hashed to be named.
    const digest = compressed ? await hashEntry(path, entry) : String(diffIds[i]);
    parseDigest(digest);
    layers.push({
      mediaType: compressed ? MediaType.layerTarGzip : MediaType.layerTar,
      digest,
      size: entry.size,
    });
    blobs.set(digest, entry);
  }
  const manifestBytes = encodeJson({
    schemaVersion: 2,
    mediaType: MediaType.imageManifest,
    config: configDesc,
    layers,
  });
  const root: Descriptor = {
    mediaType: MediaType.imageManifest,
    digest: sha256Digest(manifestBytes),
    size: manifestBytes.byteLength,
  };
  const tag = chosen.RepoTags?.[0];
  if (tag) root.annotations = { [REF_NAME_ANNOTATION]: tag };
  blobs.set(root.digest, Buffer.from(manifestBytes));
  return makeSource(path, "docker-archive", root, (digest) => {
    const blob = blobs.get(digest);
    if (!blob) return failing(new BlobNotFoundError(digest));
    if (Buffer.isBuffer(blob))
      return (async function* () {
        yield blob;
      })();
    return readRange(path, blob.offset, blob.size);
  });
}

async function readHead(path: string, entry: TarEntry): Promise<Buffer> {
  for await (const c of readRange(path, entry.offset, Math.min(entry.size, 2))) return Buffer.from(c);
  return Buffer.alloc(0);
}

async function hashEntry(path: string, entry: TarEntry): Promise<string> {
  const h = createHash("sha256");
  for await (const c of readRange(path, entry.offset, entry.size)) h.update(c);
  return `sha256:${h.digest("hex")}`;
}

/** Opens an oci-archive or docker-archive, telling them apart by their index files. */
export async function openArchive(path: string, opts: { ref?: string } = {}): Promise<ArchiveSource> {
  const entries = await indexTar(path);
  if (entries.has("index.json") && entries.has(OCI_LAYOUT_FILE))
    return ociArchiveFromEntries(path, entries, opts);
  if (entries.has("manifest.json")) return dockerArchiveFromEntries(path, entries, opts);
  throw new InvalidImageError(`${path} is neither an oci-archive nor a docker-archive`);
}

/** An oci-archive being written to a temp file next to its path; finish() renames it into place. */
export interface OciArchiveWriter extends ImageSink {
  readonly path: string;
  abort(): Promise<void>;
}

/**
 * Writes an image as an oci-archive, streaming each blob into the tar as it arrives (verified on the way).
 * A blob that fails verification poisons the archive: the writer refuses further use and abort() removes it.
 */
export async function createOciArchiveWriter(path: string): Promise<OciArchiveWriter> {
  if (await stat(path).catch(() => undefined)) throw new DestinationExistsError(path);
  const tmp = join(dirname(path), `.${basename(path)}.tpod-tmp-${randomBytes(6).toString("hex")}`);
  const fh = await open(tmp, "wx", 0o644);
  const written = new Set<string>();
  let state: "open" | "failed" | "finished" | "aborted" = "open";
  const assertOpen = () => {
    if (state !== "open") throw new OciError("WRITER_CLOSED", `archive writer for ${path} is ${state}`);
  };
  for (const dir of ["blobs/", "blobs/sha256/"]) await writeAll(fh, tarHeader(dir, 0, "dir"));
  const writeFileEntry = async (name: string, bytes: Uint8Array) => {
    await writeAll(fh, tarHeader(name, bytes.byteLength));
    await writeAll(fh, bytes);
    await writeAll(fh, tarPadding(bytes.byteLength));
  };
  return {
    path,
    async hasBlob(digest) {
      return written.has(digest);
    },
    async writeBlob(desc, data) {
      assertOpen();
      if (written.has(desc.digest)) return;
      const { algorithm, hex } = parseDigest(desc.digest);
      const verifier = new DigestVerifier(desc.digest, desc.size);
      try {
        await writeAll(fh, tarHeader(`blobs/${algorithm}/${hex}`, desc.size));
        for await (const chunk of data) {
          verifier.update(chunk);
          await writeAll(fh, chunk);
        }
        verifier.verify();
        await writeAll(fh, tarPadding(desc.size));
      } catch (err) {
        state = "failed";
        throw err;
      }
      written.add(desc.digest);
    },
    async finish(root, refName) {
      assertOpen();
      if (!written.has(root.digest)) throw new BlobNotFoundError(root.digest);
      const entry: Descriptor = { ...root };
      if (refName !== undefined) entry.annotations = { ...root.annotations, [REF_NAME_ANNOTATION]: refName };
      const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.imageIndex, manifests: [entry] };
      await writeFileEntry(OCI_LAYOUT_FILE, encodeJson({ imageLayoutVersion: OCI_LAYOUT_VERSION }));
      await writeFileEntry("index.json", encodeJson(index));
      await writeAll(fh, TAR_END);
      await fh.sync();
      await fh.close();
      if (await stat(path).catch(() => undefined)) throw new DestinationExistsError(path);
      await rename(tmp, path);
      state = "finished";
    },
    async abort() {
      if (state === "finished") return;
      state = "aborted";
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
    },
  };
}
