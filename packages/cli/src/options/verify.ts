import type { NetworkFlags } from "./network.js";

export interface VerifyOpts extends NetworkFlags {
  policy?: string;
  timeout?: string;
  json?: boolean;
}
