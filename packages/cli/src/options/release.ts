import type { KeyFlags, NetworkFlags } from "./network.js";

export interface ReleaseFlags extends NetworkFlags, KeyFlags {
  json?: boolean;
}

export interface ReleaseRevokeOpts extends ReleaseFlags {
  reason: string;
}
