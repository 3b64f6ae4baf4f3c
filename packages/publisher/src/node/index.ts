// Node-only parts of the publisher SDK: $TPOD_HOME, the keystore directory, passphrase sources and prompts,
// network resolution from flags, environment and files, key selection, and the local pod record.

export * from "./account.js";
export * from "./deploy.js";
export * from "./developer.js";
export * from "./files.js";
export * from "./keystore.js";
export * from "./network.js";
export * from "./passphrase.js";
export * from "./pods.js";
