// The publisher SDK: everything the CLI and the web app share. This entry uses no Node built-ins (it runs in
// browsers); files, the on-disk keystore, passphrase prompts and $TPOD_HOME are in "@trustedpods/publisher/node".
export * from "./channel-events.js";
export * from "./errors.js";
export * from "./format.js";
export * from "./ipfs-http.js";
export * from "./keystore.js";
export * from "./listings.js";
export * from "./network.js";
export * from "./pod-ops.js";
export * from "./pods.js";
export * from "./providers.js";
export * from "./releases.js";
export * from "./verify.js";
export * from "./web-app.js";
export * from "./web-deploy.js";
export * from "./web-pods.js";
