// The gateway's seam with the provider daemon: the daemon programs against RouteRegistry (declared here only;
// src/gateway-seam.ts re-exports it with a stand-in for tests) and provides a PodWaker.
import type { Engine } from "../engine/types.js";

/** One hostname routed to one container port of a pod. */
export interface HttpRoute {
  /** Full DNS name, lowercase (e.g. `shop-1a2b.localhost`). */
  hostname: string;
  /** Container name inside the pod. */
  container: string;
  containerPort: number;
}

/** Why a pod the provider keeps is stopped: its deposit ran out (a top-up restarts it), or its channel closed. */
export type PodStopReason = "funds" | "closed" | "underpaid";

export interface RouteOptions {
  /** Stop the pod after this much idle time; start it again on the next request (min replicas 0). */
  scaleToZero?: { idleMs: number };
}

export interface RouteRegistry {
  /** Replaces the pod's routes (and its scale-to-zero setting). */
  setRoutes(podId: string, routes: HttpRoute[], opts: RouteOptions): void;
  /**
   * The pod is stopped but kept: its hostnames stay its own and answer why (402 POD_STOPPED_FOR_FUNDS, 410
   * POD_CHANNEL_CLOSED) instead of 404, until setRoutes (restarted) or removeRoutes (gone).
   */
  stopRoutes(podId: string, routes: HttpRoute[], reason: PodStopReason): void;
  removeRoutes(podId: string): void;
  /** The URL a publisher can fetch ("" when there is none). */
  urlFor(hostname: string): string;
}

/**
 * Starts and stops pods for scale-to-zero. The daemon provides it so the gateway never wakes a pod that must
 * stay stopped (stopped for non-payment, being deleted): wake() then throws and the caller gets a 503.
 */
export interface PodWaker {
  wake(podId: string): Promise<void>;
  sleep(podId: string): Promise<void>;
}

export interface GatewayLimits {
  /** Largest request head (request line + headers). */
  maxHeaderBytes: number;
  /** Largest request body; larger ones get 413 (announced) or are cut off (chunked). */
  maxBodyBytes: number;
  /** Time for a client to send a complete request head. */
  headersTimeoutMs: number;
  /** Time for a client to send a complete request, body included (0 = none). */
  requestTimeoutMs: number;
  /** A client or upstream socket without traffic either way for this long is closed (not for WebSockets). */
  idleTimeoutMs: number;
  /** Idle client keep-alive connections are closed after this. */
  keepAliveTimeoutMs: number;
  /** TCP connect to a container. */
  connectTimeoutMs: number;
  /** Time for a container to send its response head. */
  responseTimeoutMs: number;
  /** Longest wait for a scaled-to-zero pod to wake and become ready. */
  wakeTimeoutMs: number;
  /** Retry-After (seconds) sent with 503/504 for pods that are starting or failed to start. */
  retryAfterSeconds: number;
  /** Pooled upstream connections per pod. */
  maxSocketsPerPod: number;
  /** Concurrent client connections of the whole gateway (each proxied one uses two descriptors). */
  maxConnections: number;
  /** A WebSocket (or other upgraded) connection idle both ways for this long is closed (0 = never). */
  upgradeIdleTimeoutMs: number;
}

/** What happened to one request, for the daemon's metrics and logs. */
export interface GatewayRequestEvent {
  podId: string | null;
  host: string;
  method: string;
  status: number;
  /** Gateway error code when the gateway answered itself. */
  error?: GatewayErrorCode;
  upgrade: boolean;
  durationMs: number;
  /** Served by nginx straight from the container (native data plane), without passing through this gateway. */
  direct?: boolean;
}

/** pino-compatible subset. */
export interface GatewayLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface GatewayOptions {
  engine: Engine;
  /** Default: engineWaker(engine), which starts and stops through the engine unconditionally. */
  waker?: PodWaker;
  listen: { host: string; port: number };
  /** When set, every route's hostname must be `<label>.<baseDomain>` (devnet: `localhost`). */
  baseDomain?: string;
  /**
   * Public URL template for urlFor(): `{host}` is replaced by the hostname, e.g. `https://{host}/` behind a
   * TLS terminator. Default: `http://{host}:<listening port>/`.
   */
  publicUrl?: string;
  /**
   * Trust X-Forwarded-For/Proto/Host sent by the client: only when a proxy we run (TLS terminator) is the
   * only thing that can connect. Otherwise they are replaced by what the gateway saw.
   */
  trustForwarded?: boolean;
  limits?: Partial<GatewayLimits>;
  /**
   * Native data plane: nginx takes `listen` and sends requests for awake, always-on pods straight to their
   * containers; this gateway listens on a socket in `dir` behind it and keeps everything else (waking, scale
   * to zero, WebSockets, errors). Without it, this gateway serves `listen` itself.
   */
  nginx?: { binary: string; dir: string; workers?: number | "auto" };
  log?: GatewayLogger;
  onRequest?: (event: GatewayRequestEvent) => void;
}

export interface Gateway extends RouteRegistry {
  /** Where the gateway listens (actual port when 0 was asked). */
  readonly address: { host: string; port: number };
  /** `<label>.<baseDomain>`; throws without a base domain. */
  hostnameFor(label: string): string;
  /** Routes currently set for a pod (copies). */
  routesOf(podId: string): HttpRoute[];
  /** Scale-to-zero view of a pod, for status and tests. */
  podState(podId: string): GatewayPodState | undefined;
  /** `nginx` when the native data plane holds the public port. */
  readonly dataPlane: "node" | "nginx";
  /** Resolves once the data plane serves the routes as they are now. */
  settled(): Promise<void>;
  /** Stops listening and closes every connection; does not stop pods. */
  close(): Promise<void>;
}

export interface GatewayPodState {
  /** unknown: not looked at yet or after an upstream failure; asleep: stopped by the gateway. */
  state: "unknown" | "awake" | "asleep";
  /** Requests in flight plus open upgraded connections. */
  active: number;
  /** A stop or a wake/lookup in progress (requests wait for it). */
  changing: "sleep" | "wake" | null;
  scaleToZero: { idleMs: number } | null;
  lastActivity: number;
  wakes: number;
  sleeps: number;
}

export type GatewayErrorCode =
  | "INVALID_ROUTE"
  | "HOST_CONFLICT"
  | "MISSING_HOST"
  | "UNKNOWN_HOST"
  | "BODY_TOO_LARGE"
  | "POD_NOT_RUNNING"
  | "POD_STOPPED_FOR_FUNDS"
  | "POD_CHANNEL_CLOSED"
  | "POD_START_FAILED"
  | "POD_START_TIMEOUT"
  | "UPSTREAM_UNREACHABLE"
  | "UPSTREAM_RESET"
  | "UPSTREAM_TIMEOUT"
  | "GATEWAY_CLOSING";
