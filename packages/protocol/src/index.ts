export * from "./diagnostics.js";
export * from "./duration.js";
export * from "./gen/trustedpods/v1/attestation_pb.js";
export * from "./gen/trustedpods/v1/error_pb.js";
// pod_pb's message names (Pod, Container, ...) are also the typed Pod's names: reach them as wire.Pod etc.
export * as wire from "./gen/trustedpods/v1/pod_pb.js";
export * from "./gen/trustedpods/v1/pricing_pb.js";
export * from "./gen/trustedpods/v1/provider_api_pb.js";
export * from "./gen/trustedpods/v1/rpc_pb.js";
export * from "./manifest.js";
export * from "./pod.js";
export * from "./pricing.js";
export * from "./quantity.js";
export * from "./shell.js";
export * from "./wire.js";
export { MAX_YAML_BYTES } from "./yaml-reader.js";
