export * from "./gen/trustedpods/v1/error_pb.js";
export * from "./gen/trustedpods/v1/rpc_pb.js";
export * from "./quantity.js";
