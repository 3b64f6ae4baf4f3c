import type { NetworkFlags } from "./network.js";

export interface ListingsFlags extends NetworkFlags {
  json?: boolean;
  all?: boolean;
  metadata: boolean;
  ipfsRepo?: string;
  kuboApi?: string;
  peer?: string[];
  timeout?: string;
}
