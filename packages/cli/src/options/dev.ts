import type { KeyFlags, NetworkFlags } from "./network.js";

export interface DevFlags extends NetworkFlags, KeyFlags {
  json?: boolean;
  imageKey?: string;
  ipfsRepo?: string;
  kuboApi?: string;
  peer?: string[];
}

export interface DevPublishOpts extends DevFlags {
  royalty: string;
  fee?: string;
  token?: string;
  allowEntrypointOverride?: boolean;
  manifest?: string;
  name?: string;
  description?: string;
  serve?: boolean;
}
