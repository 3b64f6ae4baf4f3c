import { createHash, randomBytes } from "node:crypto";
import { open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createGunzip } from "node:zlib";
import { DigestVerifier, parseDigest } from "./digest.js";
import {
  BlobNotFoundError,
  DestinationExistsError,
  InvalidImageError,
  OciError,
  UnsupportedError,
} from "./errors.js";
import { encodeJson, parseManifest } from "./json.js";
import { writeAll } from "./layout.js";
import { TAR_END, tarHeader, tarPadding } from "./tar.js";
import { type Descriptor, type ImageSink, isIndexMediaType, MediaType } from "./types.js";

export interface DockerArchiveWriter extends ImageSink {
  readonly path: string;
  abort(): Promise<void>;
}

const PLAIN_LAYERS = new Set<string>([MediaType.layerTar, MediaType.dockerLayer]);
const GZIP_LAYERS = new Set<string>([MediaType.layerTarGzip, MediaType.dockerLayerGzip]);

/**
 * Writes a docker-archive (`podman load`/`docker load` input): layers are stored uncompressed, named by
 * their diff_id. Gzip layers are decompressed on the way in; their tar entry header is written first and
 * patched with the real size afterwards, so nothing is buffered. Verifies the compressed digest as it
 * reads and, at finish, that the diff_ids match the config.
 */
export async function createDockerArchiveWriter(path: string): Promise<DockerArchiveWriter> {
  if (await stat(path).catch(() => undefined)) throw new DestinationExistsError(path);
  const tmp = join(dirname(path), `.${basename(path)}.tpod-tmp-${randomBytes(6).toString("hex")}`);
  const fh = await open(tmp, "wx", 0o644);
  let offset = 0;
  let state: "open" | "failed" | "finished" | "aborted" = "open";
  /** blob digest -> archive entry name (layers: diff_id; configs: digest hex) */
  const names = new Map<string, string>();
  const diffIdOf = new Map<string, string>();
  const manifests = new Map<string, Buffer>();
  const configs = new Map<string, Buffer>();
  const assertOpen = () => {
    if (state !== "open") throw new OciError("WRITER_CLOSED", `archive writer for ${path} is ${state}`);
  };
  const append = async (bytes: Uint8Array) => {
    await writeAll(fh, bytes);
    offset += bytes.byteLength;
  };
  const putFile = async (name: string, bytes: Uint8Array) => {
    await append(tarHeader(name, bytes.byteLength));
    await append(bytes);
    await append(tarPadding(bytes.byteLength));
  };

  async function writeLayer(desc: Descriptor, data: AsyncIterable<Uint8Array>, gzip: boolean): Promise<void> {
    const verifier = new DigestVerifier(desc.digest, desc.size);
    const headerAt = offset;
    await append(tarHeader("pending", 0));
    const diffHash = createHash("sha256");
    let size = 0;
    const emit = async (chunk: Uint8Array) => {
      diffHash.update(chunk);
      size += chunk.byteLength;
      await append(chunk);
    };
    if (gzip) {
      const gunzip = createGunzip();
      const source = (async function* () {
        for await (const c of data) {
          verifier.update(c);
          yield c;
        }
      })();
      const feeding = (async () => {
        for await (const c of source) if (!gunzip.write(c)) await new Promise((r) => gunzip.once("drain", r));
        gunzip.end();
      })();
      feeding.catch((err) => gunzip.destroy(err));
      for await (const out of gunzip) await emit(out as Buffer);
      await feeding;
    } else {
      for await (const c of data) {
        verifier.update(c);
        await emit(c);
      }
    }
    verifier.verify();
    await append(tarPadding(size));
    const diffId = `sha256:${diffHash.digest("hex")}`;
    const name = `${diffId.slice(7)}.tar`;
    await fh.write(tarHeader(name, size), 0, 512, headerAt);
    names.set(desc.digest, name);
    diffIdOf.set(desc.digest, diffId);
  }

  return {
    path,
    async hasBlob(digest) {
      return names.has(digest) || manifests.has(digest);
    },
    async writeBlob(desc, data) {
      assertOpen();
      parseDigest(desc.digest);
      if (names.has(desc.digest) || manifests.has(desc.digest)) return;
      try {
        if (PLAIN_LAYERS.has(desc.mediaType) || GZIP_LAYERS.has(desc.mediaType)) {
          await writeLayer(desc, data, GZIP_LAYERS.has(desc.mediaType));
        } else if (desc.mediaType === MediaType.imageConfig || desc.mediaType === MediaType.dockerConfig) {
          const bytes = await readAll(data, desc);
          configs.set(desc.digest, bytes);
          const name = `${desc.digest.slice(7)}.json`;
          await putFile(name, bytes);
          names.set(desc.digest, name);
        } else if (
          desc.mediaType === MediaType.imageManifest ||
          desc.mediaType === MediaType.dockerManifest
        ) {
          manifests.set(desc.digest, await readAll(data, desc));
        } else if (isIndexMediaType(desc.mediaType)) {
          throw new UnsupportedError("a docker-archive holds single-platform images, not an image index");
        } else {
          throw new UnsupportedError(`docker-archive cannot hold ${desc.mediaType} blobs`);
        }
      } catch (err) {
        state = "failed";
        throw err;
      }
    },
    async finish(root, refName) {
      assertOpen();
      const manifestBytes = manifests.get(root.digest);
      if (!manifestBytes) throw new BlobNotFoundError(root.digest);
      const manifest = parseManifest(manifestBytes);
      const layers = manifest.layers.map((l) => {
        const name = names.get(l.digest);
        if (!name) throw new BlobNotFoundError(l.digest);
        return name;
      });
      const configName = names.get(manifest.config.digest);
      if (!configName) throw new BlobNotFoundError(manifest.config.digest);
      const config = JSON.parse(configs.get(manifest.config.digest)!.toString("utf8")) as {
        rootfs?: { diff_ids?: unknown };
      };
      const expected = config.rootfs?.diff_ids;
      const actual = manifest.layers.map((l) => diffIdOf.get(l.digest));
      if (!Array.isArray(expected) || expected.join() !== actual.join()) {
        throw new InvalidImageError("layer contents do not match the config's diff_ids");
      }
      const entry = { Config: configName, RepoTags: refName ? [refName] : [], Layers: layers };
      await putFile("manifest.json", encodeJson([entry]));
      await append(TAR_END);
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

async function readAll(data: AsyncIterable<Uint8Array>, desc: Descriptor): Promise<Buffer> {
  if (desc.size > 4 * 1024 * 1024) throw new InvalidImageError(`blob ${desc.digest} is too large`);
  const verifier = new DigestVerifier(desc.digest, desc.size);
  const parts: Uint8Array[] = [];
  for await (const c of data) {
    verifier.update(c);
    parts.push(c);
  }
  verifier.verify();
  return Buffer.concat(parts);
}
