// The provider daemon's public API. For now: the container engine layer the daemon is built on.
export * from "./engine/index.js";
