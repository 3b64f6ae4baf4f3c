import type { SessionFlags } from "./deploy.js";

export interface BalanceOpts extends SessionFlags {
  token?: string;
}
