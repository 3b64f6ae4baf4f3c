export { errorBody, GatewayError } from "./errors.js";
export { createGateway, DEFAULT_GATEWAY_LIMITS } from "./gateway.js";
export { endToEnd, hostOf } from "./headers.js";
export { isLocalhostName, localhostLookup } from "./lookup.js";
export { nginxDirFor } from "./nginx/front-door.js";
export { findNginx } from "./nginx/process.js";
export * from "./types.js";
export { engineWaker } from "./waker.js";
