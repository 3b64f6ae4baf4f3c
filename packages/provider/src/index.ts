// The provider daemon's public API: the container engine layer and billing (payment checks, metering, claims).
export * from "./billing/index.js";
export * from "./engine/index.js";
