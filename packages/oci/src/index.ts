export * from "./digest.js";
export * from "./errors.js";
export { encodeJson, MAX_JSON_BLOB, parseDescriptor, parseIndex, parseManifest } from "./json.js";
export * from "./layout.js";
export * from "./types.js";
export { readBlobBytes, type WalkedNode, walkImage } from "./walk.js";
