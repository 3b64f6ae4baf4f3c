// Route validation: what a pod may claim. A hostname belongs to one pod only; the base domain bounds them.
import { NAME_PATTERN } from "../engine/types.js";
import { assertPodId } from "../engine/validate.js";
import { GatewayError } from "./errors.js";
import type { HttpRoute } from "./types.js";

export const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const MAX_IDLE_MS = 365 * 24 * 3600 * 1000;

/** Checks a pod's routes; `ownerOf` says which pod holds a hostname now. Returns lowercase copies. */
export function validateRoutes(
  podId: string,
  routes: HttpRoute[],
  baseDomain: string | undefined,
  ownerOf: (hostname: string) => string | undefined,
): HttpRoute[] {
  assertPodId(podId);
  const seen = new Set<string>();
  return routes.map((r) => {
    const hostname = r.hostname.toLowerCase();
    if (!HOSTNAME.test(hostname))
      throw new GatewayError("INVALID_ROUTE", `invalid hostname ${JSON.stringify(r.hostname)}`);
    if (baseDomain && !hostname.endsWith(`.${baseDomain}`)) {
      throw new GatewayError("INVALID_ROUTE", `hostname ${hostname} is not under ${baseDomain}`);
    }
    if (seen.has(hostname)) throw new GatewayError("INVALID_ROUTE", `hostname ${hostname} given twice`);
    seen.add(hostname);
    if (!NAME_PATTERN.test(r.container))
      throw new GatewayError("INVALID_ROUTE", `invalid container ${r.container}`);
    if (!Number.isInteger(r.containerPort) || r.containerPort < 1 || r.containerPort > 65535) {
      throw new GatewayError("INVALID_ROUTE", `invalid port ${r.containerPort}`);
    }
    const owner = ownerOf(hostname);
    if (owner !== undefined && owner !== podId) {
      throw new GatewayError("HOST_CONFLICT", `hostname ${hostname} already belongs to another pod`);
    }
    return { hostname, container: r.container, containerPort: r.containerPort };
  });
}

export function validateIdleMs(idleMs: number | undefined): void {
  if (idleMs !== undefined && !(Number.isInteger(idleMs) && idleMs >= 1 && idleMs <= MAX_IDLE_MS)) {
    throw new GatewayError("INVALID_ROUTE", `invalid idle time ${idleMs}`);
  }
}

/** `<label>.<baseDomain>`, lowercase. */
export function hostnameFor(label: string, baseDomain: string | undefined): string {
  if (!baseDomain) throw new GatewayError("INVALID_ROUTE", "the gateway has no base domain");
  const h = `${label.toLowerCase()}.${baseDomain}`;
  if (!HOSTNAME.test(h) || label.includes("."))
    throw new GatewayError("INVALID_ROUTE", `invalid label ${label}`);
  return h;
}
