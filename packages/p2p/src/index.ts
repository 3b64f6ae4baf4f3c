export * from "./errors.js";
export * from "./frame.js";
export * from "./keys.js";
export * from "./node.js";
export * from "./rpc.js";
export { FrameReader } from "./stream-io.js";
