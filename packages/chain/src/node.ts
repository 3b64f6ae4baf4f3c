// Node-only parts (they spawn anvil): kept out of the main entry so the bindings run in browsers.
export * from "./anvil.js";
export * from "./devnet.js";
