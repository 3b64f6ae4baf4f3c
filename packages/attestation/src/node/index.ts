// Node-only parts: the configfs-tsm attester and file loading. The verifier core is "@trustedpods/attestation".
export * from "./configfs-tsm.js";
export * from "./files.js";
export * from "./tee-guest.js";
