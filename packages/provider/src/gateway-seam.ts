/**
 * Where the daemon tells the HTTP gateway (src/gateway) which hostnames go to which pod. The gateway module
 * implements RouteRegistry; the daemon calls it after a pod starts, on update, on delete and at recovery.
 */

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
  removeRoutes(podId: string): void;
  /** The public URL for a hostname ("" when there is none). */
  urlFor(hostname: string): string;
}

/** No gateway (tests of the daemon alone): remembers routes, reports no URLs. */
export class NoGateway implements RouteRegistry {
  readonly routes = new Map<string, { routes: Route[]; opts: RouteOptions }>();
  setRoutes(podId: string, routes: Route[], opts: RouteOptions): void {
    this.routes.set(podId, { routes, opts });
  }
  removeRoutes(podId: string): void {
    this.routes.delete(podId);
  }
  urlFor(): string {
    return "";
  }
}
