/** The per-protocol limits every handler registers with, from the provider's `limits` config. */
import type { ServerOptions } from "@trustedpods/p2p";

export interface HandlerLimits {
  maxRequestBytes: number;
  provisionTimeoutSeconds: number;
}

/** Short calls: one bounded request, the p2p layer's default timeout. */
export function shortCall(l: HandlerLimits): ServerOptions {
  return { maxMessageBytes: l.maxRequestBytes };
}

/** Calls that pull and start a pod: the provision timeout plus time to roll back and answer. */
export function longCall(l: HandlerLimits): ServerOptions {
  return { maxMessageBytes: l.maxRequestBytes, timeoutMs: l.provisionTimeoutSeconds * 1000 + 30_000 };
}
