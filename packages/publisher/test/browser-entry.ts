// What the browser test's page loads: the SDK's main entry plus the browser libp2p node factory.

export { createP2PNode } from "@trustedpods/p2p/browser";
export * from "../src/index.js";
