export * from "./blob.js";
export * from "./errors.js";
export { BLOB_PROTOCOL, type FetchFromPeerOptions, fetchBlobFromPeer } from "./fastpath.js";
export * from "./image.js";
export * from "./kubo.js";
export * from "./node.js";
export * from "./podman.js";
export * from "./secrets.js";
export * from "./store.js";
