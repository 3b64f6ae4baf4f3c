/** OCI image-spec media types this package understands. */
export const MediaType = {
  imageIndex: "application/vnd.oci.image.index.v1+json",
  imageManifest: "application/vnd.oci.image.manifest.v1+json",
  imageConfig: "application/vnd.oci.image.config.v1+json",
  layerTar: "application/vnd.oci.image.layer.v1.tar",
  layerTarGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  layerTarZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

/** Annotation holding the image name of a manifest listed in a layout's index.json. */
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

export interface Platform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
}

/** An OCI content descriptor: what a blob is, its digest and its exact size. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** Something images can be read from (a layout directory, an archive, the Podman store, IPFS). */
export interface ImageSource {
  /** The image manifest (or image index) descriptor that roots the image. */
  readonly root: Descriptor;
  /** Every blob reachable from root (index, manifests, configs, layers), each once, root included. */
  listBlobs(): Promise<Descriptor[]>;
  /** Streams the blob's bytes; the stream fails with DigestMismatchError at its end if the bytes are wrong. */
  openBlob(digest: string): AsyncIterable<Uint8Array>;
}

/** Something images can be written to. */
export interface ImageSink {
  hasBlob(digest: string): Promise<boolean>;
  /** Writes a blob, verifying size and digest while writing; atomic (temp file + rename). */
  writeBlob(desc: Descriptor, data: AsyncIterable<Uint8Array>): Promise<void>;
  /** Makes the result a valid image (index.json and oci-layout for a layout). */
  finish(root: Descriptor, refName?: string): Promise<void>;
}

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaType.imageIndex || mediaType === MediaType.dockerManifestList;
}

export function isManifestMediaType(mediaType: string): boolean {
  return mediaType === MediaType.imageManifest || mediaType === MediaType.dockerManifest;
}
