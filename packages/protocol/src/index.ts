export * from "./gen/trustedpods/v1/attestation_pb.js";
export * from "./gen/trustedpods/v1/error_pb.js";
export * from "./quantity.js";
