// Keep-alive connections to a pod's containers. One undici Pool per container port of the current set of
// addresses: a pod's pools are retired together whenever its addresses may have changed (routes set again,
// update, stop, scale to zero, a failed connect), so no request after that can reach an old container over a
// kept-alive connection. In-flight requests finish on the retired pools, which close once idle.
import { Pool } from "undici";
import type { GatewayLimits } from "./types.js";

export interface Upstream {
  host: string;
  port: number;
}

export interface Target extends Upstream {
  pool: Pool;
}

/** Pools for a set of addresses; `connections` is shared out so one pod never holds more than the limit. */
export function openTargets(addresses: Map<string, Upstream>, limits: GatewayLimits): Map<string, Target> {
  const out = new Map<string, Target>();
  const distinct = new Map<string, Pool>();
  const perPool = Math.max(
    1,
    Math.floor(limits.maxSocketsPerPod / Math.max(1, new Set([...addresses.values()].map(originOf)).size)),
  );
  for (const [key, up] of addresses) {
    const origin = originOf(up);
    let pool = distinct.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: perPool,
        pipelining: 1,
        headersTimeout: limits.responseTimeoutMs,
        bodyTimeout: limits.idleTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        keepAliveMaxTimeout: Math.max(limits.keepAliveTimeoutMs, 60_000),
        connect: { timeout: limits.connectTimeoutMs, noDelay: true },
      });
      distinct.set(origin, pool);
    }
    out.set(key, { host: up.host, port: up.port, pool });
  }
  return out;
}

function originOf(up: Upstream): string {
  return up.host.includes(":") ? `http://[${up.host}]:${up.port}` : `http://${up.host}:${up.port}`;
}

/** In-flight requests finish; idle connections close now, busy ones after their response. */
export function retireTargets(targets: Map<string, Target>): void {
  for (const p of new Set([...targets.values()].map((t) => t.pool))) p.close().catch(() => {});
}

/** Everything stops now (pod removed, gateway closing). */
export function destroyTargets(targets: Map<string, Target>): void {
  for (const p of new Set([...targets.values()].map((t) => t.pool))) p.destroy().catch(() => {});
}
