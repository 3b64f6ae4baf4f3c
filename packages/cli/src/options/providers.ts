import type { NetworkFlags } from "./network.js";

export interface ProvidersOpts extends NetworkFlags {
  for?: string;
  region?: string;
  tee?: string;
  token?: string;
  maxPrice?: string;
  json?: boolean;
}
