export * from "./gen/trustedpods/v1/error_pb.js";
export * from "./gen/trustedpods/v1/pod_pb.js";
export * from "./gen/trustedpods/v1/pricing_pb.js";
export * from "./gen/trustedpods/v1/provider_api_pb.js";
export * from "./quantity.js";
