export * from "./blob.js";
export { type BulkMode, BulkServer, type BulkTicket, openBulkStream } from "./bulk.js";
export * from "./errors.js";
export {
  BLOB_PROTOCOL,
  DEFAULT_BULK_MODES,
  type FetchFromPeerOptions,
  fetchBlobFromPeer,
  type PeerTransport,
} from "./fastpath.js";
export * from "./http-blocks.js";
export * from "./image.js";
export * from "./keep-connected.js";
export * from "./kubo.js";
export * from "./node.js";
export * from "./podman.js";
export * from "./probe.js";
export * from "./secrets.js";
export * from "./store.js";
