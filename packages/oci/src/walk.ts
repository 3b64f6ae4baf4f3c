import { DigestVerifier } from "./digest.js";
import { InvalidImageError } from "./errors.js";
import { MAX_JSON_BLOB, parseIndex, parseManifest } from "./json.js";
import {
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  isIndexMediaType,
  isManifestMediaType,
} from "./types.js";

/** Reads a whole small blob, verifying size and digest; refuses anything above `max` bytes. */
export async function readBlobBytes(
  data: AsyncIterable<Uint8Array>,
  desc: Descriptor,
  max = MAX_JSON_BLOB,
): Promise<Buffer> {
  if (desc.size > max) throw new InvalidImageError(`blob ${desc.digest} is ${desc.size} bytes, over ${max}`);
  const verifier = new DigestVerifier(desc.digest, desc.size);
  const chunks: Uint8Array[] = [];
  for await (const chunk of data) {
    verifier.update(chunk);
    chunks.push(chunk);
  }
  verifier.verify();
  return Buffer.concat(chunks);
}

export type BlobOpener = (digest: string) => AsyncIterable<Uint8Array>;

export interface WalkedNode {
  desc: Descriptor;
  manifest?: ImageManifest;
  index?: ImageIndex;
}

/**
 * Lists every blob reachable from root (root first, then depth first), each once.
 * Manifests and indexes are read and verified on the way; configs and layers are only listed.
 */
export async function walkImage(root: Descriptor, open: BlobOpener): Promise<WalkedNode[]> {
  const seen = new Set<string>();
  const out: WalkedNode[] = [];
  const visit = async (desc: Descriptor, depth: number): Promise<void> => {
    if (seen.has(desc.digest)) return;
    seen.add(desc.digest);
    if (depth > 8) throw new InvalidImageError("image index nesting too deep");
    if (isIndexMediaType(desc.mediaType)) {
      const index = parseIndex(await readBlobBytes(open(desc.digest), desc), `index ${desc.digest}`);
      out.push({ desc, index });
      for (const m of index.manifests) await visit(m, depth + 1);
    } else if (isManifestMediaType(desc.mediaType)) {
      const manifest = parseManifest(await readBlobBytes(open(desc.digest), desc), `manifest ${desc.digest}`);
      out.push({ desc, manifest });
      for (const d of [manifest.config, ...manifest.layers]) {
        if (!seen.has(d.digest)) {
          seen.add(d.digest);
          out.push({ desc: d });
        }
      }
    } else {
      out.push({ desc });
    }
  };
  await visit(root, 0);
  return out;
}
