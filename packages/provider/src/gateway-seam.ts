/**
 * Where the daemon tells the HTTP gateway (src/gateway) which hostnames go to which pod. The contract is
 * gateway/types.ts's RouteRegistry (re-exported here under the daemon's names); the daemon calls it after a pod
 * starts, on update, on delete and at recovery.
 */
import type { PodStopReason, HttpRoute as Route, RouteOptions, RouteRegistry } from "./gateway/types.js";

export type { HttpRoute as Route, RouteOptions, RouteRegistry } from "./gateway/types.js";

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
