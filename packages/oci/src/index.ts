export * from "./archive.js";
export * from "./crypto/image.js";
export {
  ENC_ANNOTATION_PREFIX,
  JWE_KEYS_ANNOTATION,
  PUBOPTS_ANNOTATION,
  parseWrappedKeys,
  type WrappedKeyEntry,
} from "./crypto/jwe.js";
export * from "./crypto/keys.js";
export { LAYER_CIPHER } from "./crypto/layer.js";
export * from "./digest.js";
export * from "./dir.js";
export * from "./docker-archive-writer.js";
export * from "./errors.js";
export * from "./inspect.js";
export { encodeJson, MAX_JSON_BLOB, parseDescriptor, parseIndex, parseManifest } from "./json.js";
export * from "./layout.js";
export * from "./podman.js";
export { indexTar, type TarEntry } from "./tar.js";
export * from "./types.js";
export { readBlobBytes, type WalkedNode, walkImage } from "./walk.js";
