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

/** How long a delete may take: as long as the publisher's client waits (a provider VM under TCG needs more than 30 s). */
export const DELETE_TIMEOUT_MS = 120_000;

/** Deletes stop and remove every container and network of a pod: longer than a short call. */
export function deleteCall(l: HandlerLimits): ServerOptions {
  return { maxMessageBytes: l.maxRequestBytes, timeoutMs: DELETE_TIMEOUT_MS };
}
