// The publisher SDK: everything the CLI and the web app share. This entry uses no Node built-ins (it runs in
// browsers); files, the on-disk keystore, passphrase prompts, Podman and $TPOD_HOME are in
// "@trustedpods/publisher/node". One module per action (actions/), as viem's actions are.
export * from "./actions/attest.js";
export * from "./actions/change-rate.js";
export * from "./actions/close.js";
export * from "./actions/delete.js";
export * from "./actions/deploy.js";
export * from "./actions/earnings.js";
export * from "./actions/fund.js";
export * from "./actions/load-listings.js";
export * from "./actions/logs.js";
export * from "./actions/provider-cards.js";
export * from "./actions/quote.js";
export * from "./actions/quote-manifest.js";
export * from "./actions/runway.js";
export * from "./actions/status.js";
export * from "./channel-events.js";
export * from "./connection.js";
export * from "./deposit.js";
export * from "./errors.js";
export * from "./explain-error.js";
export * from "./format.js";
export * from "./ipfs-http.js";
export * from "./keystore.js";
export * from "./listings.js";
export * from "./network.js";
export * from "./pods.js";
export * from "./providers.js";
export * from "./releases.js";
export * from "./verify.js";
export * from "./web-config.js";
export * from "./web-connect.js";
export * from "./web-deploy.js";
export * from "./web-pods.js";
