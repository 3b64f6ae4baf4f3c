// The provider daemon's public API: the daemon, its config, state, seams for billing and the gateway, billing
// (payment checks, metering, claims) and the engines.

export * from "./billing/index.js";
export * from "./billing-seam.js";
export * from "./config.js";
export * from "./daemon.js";
export * from "./engine/factory.js";
export * from "./engine/index.js";
export * from "./gateway/index.js";
export { NoGateway, type Route } from "./gateway-seam.js";
export * from "./handlers/admission.js";
export * from "./keys.js";
export * from "./log.js";
export * from "./metrics.js";
export * from "./operator.js";
export * from "./pods.js";
export * from "./provision/content.js";
export * from "./provision/failure.js";
export * from "./provision/listing-pins.js";
export * from "./provision/translate.js";
export * from "./state/db.js";
