/**
 * Where the daemon tells the HTTP gateway (src/gateway) which hostnames go to which pod. The gateway module
 * implements RouteRegistry; the daemon calls it after a pod starts, on update, on delete and at recovery.
 */
import type { PodStopReason } from "./gateway/types.js";

export interface Route {
  hostname: string;
  /** Container name in the pod. */
  container: string;
  containerPort: number;
}

export interface RouteOptions {
  /** Stop the pod after this much idle time; start it again on the next request (min replicas 0). */
  scaleToZero?: { idleMs: number };
}

export interface RouteRegistry {
  /** Replaces every route of the pod. */
  setRoutes(podId: string, routes: Route[], opts: RouteOptions): void;
  /** The pod is stopped but kept: its hostnames answer why (not 404) until setRoutes or removeRoutes. */
  stopRoutes(podId: string, routes: Route[], reason: PodStopReason): void;
  removeRoutes(podId: string): void;
  /** The public URL for a hostname ("" when there is none). */
  urlFor(hostname: string): string;
}

/** No gateway (tests of the daemon alone): remembers routes, reports no URLs. */
export class NoGateway implements RouteRegistry {
  readonly routes = new Map<string, { routes: Route[]; opts: RouteOptions }>();
  readonly stopped = new Map<string, { routes: Route[]; reason: PodStopReason }>();
  setRoutes(podId: string, routes: Route[], opts: RouteOptions): void {
    this.stopped.delete(podId);
    this.routes.set(podId, { routes, opts });
  }
  stopRoutes(podId: string, routes: Route[], reason: PodStopReason): void {
    this.routes.delete(podId);
    this.stopped.set(podId, { routes, reason });
  }
  removeRoutes(podId: string): void {
    this.routes.delete(podId);
    this.stopped.delete(podId);
  }
  urlFor(): string {
    return "";
  }
}
