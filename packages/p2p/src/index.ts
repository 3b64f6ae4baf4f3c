export * from "./errors.js";
export * from "./frame.js";
export * from "./keys.js";
export * from "./node.js";
export * from "./rpc.js";
export * from "./signed-rpc.js";
export * from "./signing.js";
export { FrameReader } from "./stream-io.js";
