// The provider daemon's public API: the container engine layer and the HTTP gateway.
export * from "./engine/index.js";
export * from "./gateway/index.js";
