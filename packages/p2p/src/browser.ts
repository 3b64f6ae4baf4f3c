// Everything the web app can use in a browser: the framework, the signed requests and the node factory (with
// `transports: ["ws"]`). Peer key files (node:fs) are left out; the daemon and CLI import the main entry.
export * from "./errors.js";
export * from "./frame.js";
export * from "./node.js";
export * from "./rpc.js";
export * from "./signed-rpc.js";
export * from "./signing.js";
export { FrameReader } from "./stream-io.js";
