// One HTTP entry point for every pod: routes by Host to a container's port on its pod network over pooled
// keep-alive connections, streams bodies both ways, proxies WebSockets, and stops/starts scale-to-zero pods
// around their idle periods. The pieces: routes.ts (what a pod may claim), lifecycle.ts (addresses, wake and
// sleep), pool.ts (upstream connections), proxy.ts (one HTTP exchange), upgrade.ts (WebSockets), nginx/ (the
// native data plane: nginx on the public port serving awake, always-on pods itself, this server behind it).
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type net from "node:net";
import type { Duplex } from "node:stream";
import type { Engine } from "../engine/types.js";
import { errorBody, GatewayError, stoppedPodError, toGatewayError } from "./errors.js";
import { hostOf, normalizeHost, readHead } from "./headers.js";
import { type HostEntry, newPodEntry, type PodEntry, PodLifecycle, upstreamKey } from "./lifecycle.js";
import type { NginxRoute } from "./nginx/config.js";
import { NginxFrontDoor } from "./nginx/front-door.js";
import type { Target } from "./pool.js";
import { HttpExchange, type ProxyHost } from "./proxy.js";
import { HOSTNAME, hostnameFor, validateIdleMs, validateRoutes } from "./routes.js";
import type {
  Gateway,
  GatewayLimits,
  GatewayLogger,
  GatewayOptions,
  GatewayPodState,
  GatewayRequestEvent,
  HttpRoute,
  PodStopReason,
  PodWaker,
} from "./types.js";
import { forwardUpgrade, rawError } from "./upgrade.js";
import { engineWaker } from "./waker.js";

export const DEFAULT_GATEWAY_LIMITS: Readonly<GatewayLimits> = {
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 1024 * 1024 * 1024,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 0,
  idleTimeoutMs: 120_000,
  keepAliveTimeoutMs: 5_000,
  connectTimeoutMs: 5_000,
  responseTimeoutMs: 60_000,
  wakeTimeoutMs: 30_000,
  retryAfterSeconds: 5,
  maxSocketsPerPod: 256,
  maxConnections: 4096,
  upgradeIdleTimeoutMs: 0,
};

const NOOP_LOG: GatewayLogger = { info() {}, warn() {} };

class HttpGateway implements Gateway, ProxyHost {
  private readonly engine: Engine;
  private readonly waker: PodWaker;
  readonly limits: GatewayLimits;
  readonly trustForwarded: boolean;
  readonly wantsEvents: boolean;
  private readonly log: GatewayLogger;
  private readonly server: http.Server;
  private readonly lifecycle: PodLifecycle;
  private readonly pods = new Map<string, PodEntry>();
  private readonly hosts = new Map<string, HostEntry>();
  /** Hostnames of stopped pods the provider keeps: they answer why the pod is stopped, and stay the pod's. */
  private readonly stoppedHosts = new Map<string, { podId: string; reason: PodStopReason }>();
  private closed = false;
  private bound: { host: string; port: number } | null = null;
  /** nginx on the public port when the native data plane is on; this server then listens on its socket. */
  private readonly frontDoor: NginxFrontDoor | null;

  constructor(private readonly options: GatewayOptions) {
    this.engine = options.engine;
    this.waker = options.waker ?? engineWaker(options.engine);
    this.limits = { ...DEFAULT_GATEWAY_LIMITS, ...options.limits };
    this.log = options.log ?? NOOP_LOG;
    this.frontDoor = options.nginx
      ? new NginxFrontDoor({
          binary: options.nginx.binary,
          dir: options.nginx.dir,
          workers: options.nginx.workers ?? "auto",
          listen: options.listen,
          trustForwarded: options.trustForwarded === true,
          limits: this.limits,
          log: this.log,
          ...(options.onRequest ? { onRequest: options.onRequest } : {}),
        })
      : null;
    // Behind nginx, the only peer is nginx, which replaced (or, when trusted, extended) the forwarding headers.
    this.trustForwarded = options.trustForwarded === true || this.frontDoor !== null;
    this.wantsEvents = options.onRequest !== undefined;
    if (options.baseDomain !== undefined && !HOSTNAME.test(options.baseDomain)) {
      throw new GatewayError("INVALID_ROUTE", `invalid base domain ${JSON.stringify(options.baseDomain)}`);
    }
    this.lifecycle = new PodLifecycle(
      this.engine,
      this.waker,
      this.limits,
      this.log,
      () => this.closed,
      () => this.pushRoutes(),
    );
    const l = this.limits;
    this.server = http.createServer({
      maxHeaderSize: l.maxHeaderBytes,
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: l.requestTimeoutMs,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      // We answer a missing Host ourselves, with a typed error.
      requireHostHeader: false,
      noDelay: true,
    });
    this.server.maxConnections = l.maxConnections;
    // Without a 'timeout' listener Node destroys a socket idle this long. Must exceed wakeTimeoutMs: a
    // client waiting for a pod to wake sees no traffic meanwhile.
    this.server.setTimeout(Math.max(l.idleTimeoutMs, l.wakeTimeoutMs + 5_000));
    this.server.on("request", (req, res) => this.onRequest(req, res));
    this.server.on("upgrade", (req, socket, head) => this.onUpgrade(req, socket, head));
  }

  async listen(): Promise<void> {
    const front = this.frontDoor;
    if (!front) {
      const { host, port } = this.options.listen;
      await this.listenOn((done) => this.server.listen(port, host, done));
      const a = this.server.address() as net.AddressInfo;
      this.bound = { host: a.address, port: a.port };
      return;
    }
    await front.prepare();
    await this.listenOn((done) => this.server.listen(front.nodeSocket, done));
    try {
      await front.shareNodeSocket();
      await front.start();
    } catch (err) {
      await new Promise<void>((r) => this.server.close(() => r()));
      throw err;
    }
    this.bound = front.address;
  }

  private listenOn(start: (done: () => void) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      start(() => {
        this.server.off("error", reject);
        resolve();
      });
    });
  }

  /**
   * The native data plane's table: a hostname goes straight to its container while the pod is awake and always
   * on; a scale-to-zero pod stays behind this gateway, which sees every request and so knows when it is idle.
   */
  private pushRoutes(): void {
    if (!this.frontDoor) return;
    const routes: NginxRoute[] = [];
    for (const [hostname, entry] of this.hosts) {
      const pod = entry.pod;
      const t = !pod.scaleToZero ? this.lifecycle.ready(pod, entry.key) : undefined;
      routes.push({ hostname, podId: pod.podId, upstream: t ? { host: t.host, port: t.port } : null });
    }
    // A stopped pod's hostnames go to this gateway, which answers why (nginx has no container to send them to).
    for (const [hostname, stop] of this.stoppedHosts)
      routes.push({ hostname, podId: stop.podId, upstream: null });
    this.frontDoor.update(routes);
  }

  /** Resolves once nginx runs the current route table (immediately without nginx). */
  settled(): Promise<void> {
    return this.frontDoor?.settled() ?? Promise.resolve();
  }

  /** Which data plane holds the public port. */
  get dataPlane(): "node" | "nginx" {
    return this.frontDoor ? "nginx" : "node";
  }

  get address(): { host: string; port: number } {
    if (!this.bound) throw new Error("gateway is not listening");
    return { ...this.bound };
  }

  // ------------------------------------------------------------------ registry

  hostnameFor(label: string): string {
    return hostnameFor(label, this.options.baseDomain);
  }

  urlFor(hostname: string): string {
    const h = hostname.toLowerCase();
    if (this.options.publicUrl) return this.options.publicUrl.replaceAll("{host}", h);
    const port = this.bound?.port ?? this.options.listen.port;
    return port === 80 ? `http://${h}/` : `http://${h}:${port}/`;
  }

  setRoutes(podId: string, routes: HttpRoute[], opts: { scaleToZero?: { idleMs: number } }): void {
    if (this.closed) throw new GatewayError("GATEWAY_CLOSING", "the gateway is closed");
    const clean = validateRoutes(podId, routes, this.options.baseDomain, (h) => this.ownerOf(h));
    const idleMs = opts.scaleToZero?.idleMs;
    validateIdleMs(idleMs);
    this.dropStopped(podId);
    if (clean.length === 0) {
      this.removeRoutes(podId);
      return;
    }
    let pod = this.pods.get(podId);
    if (!pod) {
      pod = newPodEntry(podId);
      this.pods.set(podId, pod);
    }
    for (const r of pod.routes) this.hosts.delete(r.hostname);
    pod.routes = clean;
    for (const route of clean) this.hosts.set(route.hostname, { pod, route, key: upstreamKey(route) });
    // Routes may point at other containers now, or the daemon replaced them (update): addresses and pooled
    // connections go, and a lookup already under way does not install what it saw.
    this.lifecycle.forget(pod);
    pod.scaleToZero = idleMs !== undefined ? { idleMs } : null;
    pod.failure = null;
    pod.failedUntil = 0;
    this.lifecycle.clearIdle(pod);
    if (pod.scaleToZero && pod.active === 0) {
      pod.lastActivity = Date.now();
      this.lifecycle.armIdle(pod);
    }
    this.pushRoutes();
  }

  stopRoutes(podId: string, routes: HttpRoute[], reason: PodStopReason): void {
    if (this.closed) throw new GatewayError("GATEWAY_CLOSING", "the gateway is closed");
    const clean = validateRoutes(podId, routes, this.options.baseDomain, (h) => this.ownerOf(h));
    this.dropRoutes(podId);
    this.dropStopped(podId);
    for (const r of clean) this.stoppedHosts.set(r.hostname, { podId, reason });
    this.pushRoutes();
  }

  removeRoutes(podId: string): void {
    const dropped = this.dropRoutes(podId);
    if (this.dropStopped(podId) || dropped) this.pushRoutes();
  }

  /** Which pod holds a hostname now, running or stopped. */
  private ownerOf(hostname: string): string | undefined {
    return this.hosts.get(hostname)?.pod.podId ?? this.stoppedHosts.get(hostname)?.podId;
  }

  private dropRoutes(podId: string): boolean {
    const pod = this.pods.get(podId);
    if (!pod) return false;
    this.pods.delete(podId);
    for (const r of pod.routes) {
      if (this.hosts.get(r.hostname)?.pod === pod) this.hosts.delete(r.hostname);
    }
    this.lifecycle.drop(pod);
    return true;
  }

  private dropStopped(podId: string): boolean {
    let any = false;
    for (const [hostname, stop] of this.stoppedHosts)
      if (stop.podId === podId) any = this.stoppedHosts.delete(hostname);
    return any;
  }

  routesOf(podId: string): HttpRoute[] {
    return (this.pods.get(podId)?.routes ?? []).map((r) => ({ ...r }));
  }

  podState(podId: string): GatewayPodState | undefined {
    const p = this.pods.get(podId);
    if (!p) return undefined;
    return {
      state: p.state,
      active: p.active,
      changing: p.changing,
      scaleToZero: p.scaleToZero ? { ...p.scaleToZero } : null,
      lastActivity: p.lastActivity,
      wakes: p.wakes,
      sleeps: p.sleeps,
    };
  }

  // ------------------------------------------------------------------ ProxyHost (used by exchanges)

  target(pod: PodEntry, entry: HostEntry): Promise<Target> {
    return this.lifecycle.target(pod, entry);
  }

  invalidate(pod: PodEntry, target: Target): void {
    this.lifecycle.invalidate(pod, target);
  }

  release(pod: PodEntry): void {
    this.lifecycle.release(pod);
  }

  emit(event: GatewayRequestEvent): void {
    this.options.onRequest?.(event);
  }

  reply(res: ServerResponse, err: GatewayError): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = errorBody(err);
    const headers: Record<string, string> = {
      "content-type": "application/json; charset=utf-8",
      "content-length": String(Buffer.byteLength(body)),
      "cache-control": "no-store",
      "x-tpod-error": err.code,
    };
    if (err.retryable) headers["retry-after"] = String(this.limits.retryAfterSeconds);
    // The body was not read: this connection cannot carry another request.
    if (err.code === "BODY_TOO_LARGE") headers.connection = "close";
    res.writeHead(err.status, headers);
    res.end(body);
  }

  // ------------------------------------------------------------------ HTTP

  /** The route for a request's host, or the error to answer with. */
  private admit(host: string | null): HostEntry | GatewayError {
    if (this.closed) return new GatewayError("GATEWAY_CLOSING", "the gateway is shutting down");
    if (!host) return new GatewayError("MISSING_HOST", "the request has no valid Host header");
    const hit = this.hosts.get(host);
    if (hit) return hit;
    const stop = this.stoppedHosts.get(host);
    if (stop) return stoppedPodError(host, stop.reason);
    return new GatewayError("UNKNOWN_HOST", `no pod is served at ${host}`);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const head = readHead(req.rawHeaders);
    const host = normalizeHost(head.host);
    const hit = this.admit(host);
    if (hit instanceof GatewayError) {
      new HttpExchange(this, req, res, host ?? "", head, null, null).fail(hit);
      return;
    }
    const pod = hit.pod;
    const ex = new HttpExchange(this, req, res, host!, head, pod, hit);
    this.lifecycle.acquire(pod);
    if (head.contentLength !== undefined && Number(head.contentLength) > this.limits.maxBodyBytes) {
      ex.fail(new GatewayError("BODY_TOO_LARGE", `request body over ${this.limits.maxBodyBytes} bytes`));
      return;
    }
    // Fast path: the pod is awake and its addresses known; otherwise look up (or wake) first.
    const target = this.lifecycle.ready(pod, hit.key);
    if (target) {
      ex.dispatch(target);
      return;
    }
    this.lifecycle.target(pod, hit).then(
      (t) => ex.dispatch(t),
      (err) => ex.fail(err, "POD_START_FAILED"),
    );
  }

  // ------------------------------------------------------------------ WebSockets and other upgrades

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const started = performance.now();
    const host = hostOf(req);
    const event: GatewayRequestEvent = {
      podId: null,
      host: host ?? "",
      method: req.method ?? "",
      status: 0,
      upgrade: true,
      durationMs: 0,
    };
    const finish = (status: number, err?: GatewayError) => {
      if (event.status) return;
      event.status = status;
      if (err) event.error = err.code;
      event.durationMs = performance.now() - started;
      this.options.onRequest?.(event);
    };
    const fail = (err: GatewayError) => {
      finish(err.status, err);
      rawError(socket, err, this.limits.retryAfterSeconds);
    };
    socket.on("error", () => socket.destroy());
    const hit = this.admit(host);
    if (hit instanceof GatewayError) {
      fail(hit);
      return;
    }
    event.podId = hit.pod.podId;
    const pod = hit.pod;
    this.lifecycle.acquire(pod);
    socket.once("close", () => this.lifecycle.release(pod));
    this.lifecycle.target(pod, hit).then(
      (up) => {
        if (socket.destroyed) return;
        forwardUpgrade(req, socket, head, pod, up, {
          limits: this.limits,
          trustForwarded: this.trustForwarded,
          invalidate: (p, t) => this.lifecycle.invalidate(p, t),
          finish,
          fail,
        });
      },
      (err) => fail(toGatewayError(err, "POD_START_FAILED")),
    );
  }

  // ------------------------------------------------------------------ shutdown

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // nginx stops accepting first; closing our connections then ends what it still carries to us (WebSockets),
    // so its graceful stop does not wait for them.
    const front = this.frontDoor?.close();
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await front;
    for (const pod of this.pods.values()) this.lifecycle.drop(pod);
    this.pods.clear();
    this.hosts.clear();
    this.stoppedHosts.clear();
    await done;
  }
}

/** Starts the gateway listening; resolves once it accepts connections. */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const gw = new HttpGateway(options);
  await gw.listen();
  return gw;
}
