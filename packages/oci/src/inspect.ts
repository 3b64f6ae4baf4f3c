import { isEncryptedLayer } from "./crypto/image.js";
import { JWE_KEYS_ANNOTATION, PUBOPTS_ANNOTATION, parseWrappedKeys } from "./crypto/jwe.js";
import type { Descriptor, ImageSource } from "./types.js";
import { type WalkedNode, walkImage } from "./walk.js";

export interface LayerInfo {
  digest: string;
  mediaType: string;
  size: number;
  encrypted: boolean;
  /** Number of recipient slots (wrapped copies of the layer key); 0 for plain layers. */
  recipients: number;
  /** Key ids (JWK thumbprints) of the recipients this package wrapped for; other tools' slots have none. */
  recipientKeyIds: string[];
  cipher?: string;
}

export interface ManifestInfo {
  digest: string;
  mediaType: string;
  size: number;
  platform?: Descriptor["platform"];
  config: Descriptor;
  layers: LayerInfo[];
}

export interface ImageInfo {
  root: Descriptor;
  manifests: ManifestInfo[];
  /** Sum of the sizes of every distinct blob. */
  totalSize: number;
  /** All layers encrypted / some / none. */
  encryption: "encrypted" | "partially-encrypted" | "plain";
  /** The smallest recipient count over the encrypted layers (what every layer can be opened by). */
  recipients: number;
}

function layerInfo(layer: Descriptor): LayerInfo {
  const encrypted = isEncryptedLayer(layer);
  const jwe = layer.annotations?.[JWE_KEYS_ANNOTATION];
  let slots: ReturnType<typeof parseWrappedKeys> = [];
  if (encrypted && jwe) {
    try {
      slots = parseWrappedKeys(jwe);
    } catch {
      slots = [];
    }
  }
  const info: LayerInfo = {
    digest: layer.digest,
    mediaType: layer.mediaType,
    size: layer.size,
    encrypted,
    recipients: slots.length,
    recipientKeyIds: slots.flatMap((s) => (s.kid ? [s.kid] : [])),
  };
  const pub = layer.annotations?.[PUBOPTS_ANNOTATION];
  if (pub) {
    try {
      const cipher = (JSON.parse(Buffer.from(pub, "base64").toString("utf8")) as { cipher?: unknown }).cipher;
      if (typeof cipher === "string") info.cipher = cipher;
    } catch {
      // inspect reports what it can; decryption validates properly
    }
  }
  return info;
}

/** Describes an image: manifests, layers with sizes and encryption, recipient counts. Verifies manifests. */
export async function inspectImage(
  src: ImageSource & { walk?: () => Promise<WalkedNode[]> },
): Promise<ImageInfo> {
  const nodes = src.walk ? await src.walk() : await walkImage(src.root, (d) => src.openBlob(d));
  const manifests: ManifestInfo[] = [];
  for (const n of nodes) {
    if (!n.manifest) continue;
    const m: ManifestInfo = {
      digest: n.desc.digest,
      mediaType: n.desc.mediaType,
      size: n.desc.size,
      config: n.manifest.config,
      layers: n.manifest.layers.map(layerInfo),
    };
    if (n.desc.platform) m.platform = n.desc.platform;
    manifests.push(m);
  }
  const layers = manifests.flatMap((m) => m.layers);
  const enc = layers.filter((l) => l.encrypted);
  return {
    root: src.root,
    manifests,
    totalSize: nodes.reduce((s, n) => s + n.desc.size, 0),
    encryption:
      enc.length === 0 ? "plain" : enc.length === layers.length ? "encrypted" : "partially-encrypted",
    recipients: enc.length === 0 ? 0 : Math.min(...enc.map((l) => l.recipients)),
  };
}
