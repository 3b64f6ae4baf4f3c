// Node entry of the web app: a tiny static server for the built files plus the app's config.json, so
// `tpod devnet up` (or anyone) can serve the app next to a chain. The app itself talks to the chain and the
// providers directly from the browser; this server only hands out files.
export { buildWebApp } from "./build.js";
export * from "./serve.js";
