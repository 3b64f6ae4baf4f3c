// One HTTP entry point for every pod: routes by Host to a container's port on its pod network, streams bodies
// both ways, proxies WebSockets, and stops/starts scale-to-zero pods around their idle periods.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { type ContainerStatus, type Engine, NAME_PATTERN, type PodStatus } from "../engine/types.js";
import { assertPodId } from "../engine/validate.js";
import { errorBody, GatewayError } from "./errors.js";
import { endToEnd, hostOf, upstreamRequestHeaders } from "./headers.js";
import type {
  Gateway,
  GatewayLimits,
  GatewayLogger,
  GatewayOptions,
  GatewayPodState,
  GatewayRequestEvent,
  HttpRoute,
  PodWaker,
} from "./types.js";
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

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const MAX_IDLE_MS = 365 * 24 * 3600 * 1000;
/** Methods that may be sent again when a pooled connection turns out to be closed by the container. */
const RETRYABLE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** Connect-phase failures: the address we hold is stale or the container is gone. */
const CONNECT_ERRORS = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ETIMEDOUT"]);
const NOOP_LOG: GatewayLogger = { info() {}, warn() {} };
/**
 * After a failed wake or lookup, further requests get the same answer for this long instead of starting the
 * pod (or asking the engine) again each: a flood of requests to a crashing pod must not become a flood of
 * starts. setRoutes() clears it (the daemon changed something).
 */
const FAILURE_HOLD_MS = 1_000;

interface Upstream {
  host: string;
  port: number;
}

interface PodEntry {
  podId: string;
  routes: HttpRoute[];
  scaleToZero: { idleMs: number } | null;
  agent: http.Agent;
  /** container:port -> address on the pod network, valid while state is awake. */
  upstreams: Map<string, Upstream>;
  state: GatewayPodState["state"];
  active: number;
  lastActivity: number;
  idleTimer: NodeJS.Timeout | null;
  /** The one wake/resolve or sleep in progress: concurrent requests wait for it instead of starting their own. */
  transition: Promise<void> | null;
  upgraded: Set<Duplex>;
  /** Last resolve failure and until when it is answered without trying again. */
  failure: GatewayError | null;
  failedUntil: number;
  removed: boolean;
  wakes: number;
  sleeps: number;
}

interface HostEntry {
  pod: PodEntry;
  route: HttpRoute;
}

const upstreamKey = (route: HttpRoute) => `${route.container}:${route.containerPort}`;
const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** TCP connect to the container: the readiness signal for pods without a health check. */
function tcpProbe(up: Upstream, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: up.host, port: up.port });
    s.setTimeout(Math.max(1, timeoutMs));
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.once("timeout", () => done(false));
  });
}

/** Rejects with POD_START_TIMEOUT at the deadline; the operation itself goes on (the engine serializes). */
async function before<T>(p: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new GatewayError("POD_START_TIMEOUT", what)),
      Math.max(0, deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The request target as a path: absolute-form (`GET http://host/x`) is reduced to its path. */
function pathOf(url: string | undefined): string {
  if (!url) return "/";
  if (url.startsWith("/") || url === "*") return url;
  try {
    const u = new URL(url);
    return `${u.pathname}${u.search}`;
  } catch {
    return "/";
  }
}

function toGatewayError(err: unknown, fallback: GatewayError["code"] = "UPSTREAM_UNREACHABLE"): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ECONNRESET" || code === "EPIPE")
    return new GatewayError("UPSTREAM_RESET", "the pod closed the connection", { cause: err });
  if (code === "ETIMEDOUT")
    return new GatewayError("UPSTREAM_TIMEOUT", "connecting to the pod timed out", { cause: err });
  if (code && CONNECT_ERRORS.has(code))
    return new GatewayError("UPSTREAM_UNREACHABLE", `the pod did not accept the connection (${code})`, {
      cause: err,
    });
  return new GatewayError(fallback, `the pod could not be reached: ${messageOf(err)}`, { cause: err });
}

class HttpGateway implements Gateway {
  private readonly engine: Engine;
  private readonly waker: PodWaker;
  private readonly limits: GatewayLimits;
  private readonly log: GatewayLogger;
  private readonly server: http.Server;
  private readonly pods = new Map<string, PodEntry>();
  private readonly hosts = new Map<string, HostEntry>();
  private closed = false;
  private bound: { host: string; port: number } | null = null;

  constructor(private readonly options: GatewayOptions) {
    this.engine = options.engine;
    this.waker = options.waker ?? engineWaker(options.engine);
    this.limits = { ...DEFAULT_GATEWAY_LIMITS, ...options.limits };
    this.log = options.log ?? NOOP_LOG;
    if (options.baseDomain !== undefined && !HOSTNAME.test(options.baseDomain)) {
      throw new GatewayError("INVALID_ROUTE", `invalid base domain ${JSON.stringify(options.baseDomain)}`);
    }
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
    const { host, port } = this.options.listen;
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const a = this.server.address() as net.AddressInfo;
    this.bound = { host: a.address, port: a.port };
  }

  get address(): { host: string; port: number } {
    if (!this.bound) throw new Error("gateway is not listening");
    return { ...this.bound };
  }

  // ------------------------------------------------------------------ registry

  hostnameFor(label: string): string {
    if (!this.options.baseDomain) throw new GatewayError("INVALID_ROUTE", "the gateway has no base domain");
    const h = `${label.toLowerCase()}.${this.options.baseDomain}`;
    if (!HOSTNAME.test(h) || label.includes("."))
      throw new GatewayError("INVALID_ROUTE", `invalid label ${label}`);
    return h;
  }

  urlFor(hostname: string): string {
    const h = hostname.toLowerCase();
    if (this.options.publicUrl) return this.options.publicUrl.replaceAll("{host}", h);
    const port = this.bound?.port ?? this.options.listen.port;
    return port === 80 ? `http://${h}/` : `http://${h}:${port}/`;
  }

  private validateRoutes(podId: string, routes: HttpRoute[]): HttpRoute[] {
    assertPodId(podId);
    const seen = new Set<string>();
    const base = this.options.baseDomain;
    return routes.map((r) => {
      const hostname = r.hostname.toLowerCase();
      if (!HOSTNAME.test(hostname))
        throw new GatewayError("INVALID_ROUTE", `invalid hostname ${JSON.stringify(r.hostname)}`);
      if (base && !hostname.endsWith(`.${base}`)) {
        throw new GatewayError("INVALID_ROUTE", `hostname ${hostname} is not under ${base}`);
      }
      if (seen.has(hostname)) throw new GatewayError("INVALID_ROUTE", `hostname ${hostname} given twice`);
      seen.add(hostname);
      if (!NAME_PATTERN.test(r.container))
        throw new GatewayError("INVALID_ROUTE", `invalid container ${r.container}`);
      if (!Number.isInteger(r.containerPort) || r.containerPort < 1 || r.containerPort > 65535) {
        throw new GatewayError("INVALID_ROUTE", `invalid port ${r.containerPort}`);
      }
      const owner = this.hosts.get(hostname);
      if (owner && owner.pod.podId !== podId) {
        throw new GatewayError("HOST_CONFLICT", `hostname ${hostname} already belongs to another pod`);
      }
      return { hostname, container: r.container, containerPort: r.containerPort };
    });
  }

  setRoutes(podId: string, routes: HttpRoute[], opts: { scaleToZero?: { idleMs: number } }): void {
    if (this.closed) throw new GatewayError("GATEWAY_CLOSING", "the gateway is closed");
    const clean = this.validateRoutes(podId, routes);
    const idleMs = opts.scaleToZero?.idleMs;
    if (idleMs !== undefined && !(Number.isInteger(idleMs) && idleMs >= 1 && idleMs <= MAX_IDLE_MS)) {
      throw new GatewayError("INVALID_ROUTE", `invalid idle time ${idleMs}`);
    }
    if (clean.length === 0) {
      this.removeRoutes(podId);
      return;
    }
    let pod = this.pods.get(podId);
    if (!pod) {
      pod = {
        podId,
        routes: [],
        scaleToZero: null,
        agent: this.newAgent(),
        upstreams: new Map(),
        state: "unknown",
        active: 0,
        lastActivity: Date.now(),
        idleTimer: null,
        transition: null,
        upgraded: new Set(),
        failure: null,
        failedUntil: 0,
        removed: false,
        wakes: 0,
        sleeps: 0,
      };
      this.pods.set(podId, pod);
    }
    for (const r of pod.routes) this.hosts.delete(r.hostname);
    pod.routes = clean;
    for (const route of clean) this.hosts.set(route.hostname, { pod, route });
    // Routes may point at other containers now (or the daemon replaced them): look addresses up again.
    if (pod.state === "awake") {
      pod.state = "unknown";
      pod.upstreams.clear();
    }
    pod.scaleToZero = idleMs !== undefined ? { idleMs } : null;
    pod.failure = null;
    pod.failedUntil = 0;
    this.clearIdle(pod);
    if (pod.scaleToZero && pod.active === 0) {
      pod.lastActivity = Date.now();
      this.armIdle(pod);
    }
  }

  removeRoutes(podId: string): void {
    const pod = this.pods.get(podId);
    if (!pod) return;
    this.pods.delete(podId);
    for (const r of pod.routes) {
      if (this.hosts.get(r.hostname)?.pod === pod) this.hosts.delete(r.hostname);
    }
    this.dropPod(pod);
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
      scaleToZero: p.scaleToZero ? { ...p.scaleToZero } : null,
      lastActivity: p.lastActivity,
      wakes: p.wakes,
      sleeps: p.sleeps,
    };
  }

  private dropPod(pod: PodEntry): void {
    pod.removed = true;
    this.clearIdle(pod);
    for (const s of pod.upgraded) s.destroy();
    pod.upgraded.clear();
    pod.agent.destroy();
  }

  private newAgent(): http.Agent {
    return new http.Agent({
      keepAlive: true,
      keepAliveMsecs: 1_000,
      noDelay: true,
      maxSockets: this.limits.maxSocketsPerPod,
      maxFreeSockets: Math.min(64, this.limits.maxSocketsPerPod),
      scheduling: "lifo",
    });
  }

  // ------------------------------------------------------------------ activity and scale to zero

  /** Counts a request or upgraded connection as activity until the returned function is called. */
  private acquire(pod: PodEntry): () => void {
    pod.active++;
    pod.lastActivity = Date.now();
    this.clearIdle(pod);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      pod.active--;
      pod.lastActivity = Date.now();
      if (pod.active === 0) this.armIdle(pod);
    };
  }

  private clearIdle(pod: PodEntry): void {
    if (pod.idleTimer) clearTimeout(pod.idleTimer);
    pod.idleTimer = null;
  }

  private armIdle(pod: PodEntry, delayMs?: number): void {
    if (!pod.scaleToZero || pod.removed || this.closed) return;
    this.clearIdle(pod);
    pod.idleTimer = setTimeout(() => this.onIdle(pod), delayMs ?? pod.scaleToZero.idleMs);
    pod.idleTimer.unref();
  }

  private onIdle(pod: PodEntry): void {
    pod.idleTimer = null;
    if (!pod.scaleToZero || pod.removed || this.closed || pod.active > 0) return;
    const wait = pod.lastActivity + pod.scaleToZero.idleMs - Date.now();
    if (wait > 0) {
      this.armIdle(pod, wait);
      return;
    }
    if (pod.transition) {
      // A wake whose clients all left: look again once it is over.
      void pod.transition.then(
        () => this.armIdle(pod),
        () => this.armIdle(pod),
      );
      return;
    }
    if (pod.state === "asleep") return;
    // active is 0 and stays counted from here on: a request arriving now waits for this stop to finish and
    // then wakes the pod, so a pod is never stopped under an in-flight request.
    pod.state = "asleep";
    pod.upstreams.clear();
    pod.sleeps++;
    pod.agent.destroy();
    pod.agent = this.newAgent();
    this.log.info({ podId: pod.podId, idleMs: pod.scaleToZero.idleMs }, "gateway: scaling pod to zero");
    this.runTransition(pod, async () => {
      try {
        await this.waker.sleep(pod.podId);
      } catch (err) {
        pod.state = "unknown";
        this.log.warn({ podId: pod.podId, err: messageOf(err) }, "gateway: stopping idle pod failed");
      }
    });
  }

  private runTransition(pod: PodEntry, op: () => Promise<void>): Promise<void> {
    const p = op().finally(() => {
      if (pod.transition === p) pod.transition = null;
    });
    // Waiters get the rejection; nobody waiting must not make it an unhandled one.
    p.catch(() => {});
    pod.transition = p;
    return p;
  }

  /** The container address for a route, waking the pod when it is asleep. Concurrent callers share one wake. */
  private async upstreamFor(pod: PodEntry, route: HttpRoute): Promise<Upstream> {
    for (let attempt = 0; attempt < 4; attempt++) {
      if (pod.transition) await pod.transition;
      if (pod.removed || this.closed) {
        throw new GatewayError("UNKNOWN_HOST", `no pod is served at ${route.hostname} any more`);
      }
      const up = pod.state === "awake" ? pod.upstreams.get(upstreamKey(route)) : undefined;
      if (up) return up;
      if (pod.failure && Date.now() < pod.failedUntil) throw pod.failure;
      if (!pod.transition) {
        this.runTransition(pod, () =>
          this.resolve(pod).catch((err: unknown) => {
            pod.failure = toGatewayError(err, "POD_START_FAILED");
            pod.failedUntil = Date.now() + FAILURE_HOLD_MS;
            throw pod.failure;
          }),
        );
      }
    }
    throw new GatewayError("POD_NOT_RUNNING", `pod for ${route.hostname} keeps changing state; try again`);
  }

  private async resolve(pod: PodEntry): Promise<void> {
    const deadline = Date.now() + this.limits.wakeTimeoutMs;
    const timeoutMsg = `the pod did not become ready within ${Math.round(this.limits.wakeTimeoutMs / 1000)} s`;
    let status = await before(this.engine.status(pod.podId), deadline, timeoutMsg);
    let woke = false;
    if (!status.running) {
      if (!pod.scaleToZero) {
        throw new GatewayError("POD_NOT_RUNNING", "the pod is not running");
      }
      pod.wakes++;
      this.log.info({ podId: pod.podId }, "gateway: waking pod");
      try {
        await before(this.waker.wake(pod.podId), deadline, timeoutMsg);
      } catch (err) {
        if (err instanceof GatewayError) throw err;
        throw new GatewayError("POD_START_FAILED", `the pod could not be started: ${messageOf(err)}`, {
          cause: err,
        });
      }
      woke = true;
      status = await before(this.engine.status(pod.podId), deadline, timeoutMsg);
    }
    const upstreams = this.upstreamsFrom(pod, status, woke);
    // A scale-to-zero pod may have just been started by us or by the daemon: wait until it listens.
    if (woke || pod.scaleToZero) await this.waitReady(pod, upstreams, status, deadline, timeoutMsg);
    if (pod.removed) return;
    pod.upstreams = upstreams;
    pod.state = "awake";
    pod.failure = null;
    pod.lastActivity = Date.now();
    if (pod.active === 0) this.armIdle(pod);
  }

  private upstreamsFrom(pod: PodEntry, status: PodStatus, woke: boolean): Map<string, Upstream> {
    const out = new Map<string, Upstream>();
    for (const route of pod.routes) {
      const c = status.containers.find((x) => x.name === route.container);
      if (!c) throw new GatewayError("POD_NOT_RUNNING", `the pod has no container ${route.container}`);
      if (c.state !== "running" || !c.ip) throw this.notRunning(c, woke);
      out.set(upstreamKey(route), { host: c.ip, port: route.containerPort });
    }
    return out;
  }

  private notRunning(c: ContainerStatus, woke: boolean): GatewayError {
    const exit = c.exitCode !== null ? ` (exit code ${c.exitCode})` : "";
    return woke
      ? new GatewayError("POD_START_FAILED", `container ${c.name} is ${c.state}${exit} after starting`)
      : new GatewayError("POD_NOT_RUNNING", `container ${c.name} is ${c.state}${exit}`);
  }

  /**
   * Ready = every routed port accepts a TCP connection and, for containers with a health check, the engine
   * reports healthy. The engine's status is polled meanwhile so a container that exits fails fast.
   */
  private async waitReady(
    pod: PodEntry,
    upstreams: Map<string, Upstream>,
    status: PodStatus,
    deadline: number,
    timeoutMsg: string,
  ): Promise<void> {
    const pending = new Map(pod.routes.map((r) => [upstreamKey(r), r]));
    const started = Date.now();
    const health = (s: PodStatus, want: (h: ContainerStatus["health"]) => boolean) =>
      new Set(s.containers.filter((c) => want(c.health)).map((c) => c.name));
    let needsHealth = health(status, (h) => h !== "none");
    let healthy = health(status, (h) => h === "healthy");
    let nextStatus = started + (needsHealth.size > 0 ? 100 : 500);
    for (;;) {
      if (pod.removed) return;
      for (const [key, route] of pending) {
        if (needsHealth.has(route.container) && !healthy.has(route.container)) continue;
        if (await tcpProbe(upstreams.get(key)!, Math.min(1_000, deadline - Date.now()))) pending.delete(key);
      }
      if (pending.size === 0) return;
      if (Date.now() >= deadline) throw new GatewayError("POD_START_TIMEOUT", timeoutMsg);
      // Short steps first: most pods listen within a few hundred ms and every step is added to the cold start.
      const step = Date.now() - started < 2_000 ? 10 : 50;
      await sleepMs(Math.min(step, Math.max(0, deadline - Date.now())));
      if (Date.now() < nextStatus) continue;
      // The engine's view: health, a container that exited (fail fast), an address that changed.
      status = await before(this.engine.status(pod.podId), deadline, timeoutMsg);
      needsHealth = health(status, (h) => h !== "none");
      healthy = health(status, (h) => h === "healthy");
      nextStatus = Date.now() + (needsHealth.size > 0 ? 100 : 500);
      for (const [key, route] of pending) {
        const c = status.containers.find((x) => x.name === route.container);
        if (!c) throw new GatewayError("POD_START_FAILED", `container ${route.container} disappeared`);
        if (c.state === "exited" || c.state === "dead") throw this.notRunning(c, true);
        if (c.ip) upstreams.set(key, { host: c.ip, port: route.containerPort });
      }
    }
  }

  /** An upstream failed to connect: forget its address so the next request asks the engine again. */
  private invalidate(pod: PodEntry): void {
    if (pod.state === "awake") {
      pod.state = "unknown";
      pod.upstreams.clear();
    }
  }

  // ------------------------------------------------------------------ HTTP

  private reply(res: ServerResponse, err: GatewayError, note: (e: GatewayError) => void): void {
    note(err);
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

  /** The route for a request's host, or the error to answer with. */
  private admit(host: string | null): HostEntry | GatewayError {
    if (this.closed) return new GatewayError("GATEWAY_CLOSING", "the gateway is shutting down");
    if (!host) return new GatewayError("MISSING_HOST", "the request has no valid Host header");
    return this.hosts.get(host) ?? new GatewayError("UNKNOWN_HOST", `no pod is served at ${host}`);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const host = hostOf(req);
    const event: GatewayRequestEvent = {
      podId: null,
      host: host ?? "",
      method: req.method ?? "",
      status: 0,
      upgrade: false,
      durationMs: 0,
    };
    const note = (e: GatewayError) => {
      event.error = e.code;
    };
    res.once("close", () => {
      event.status = res.headersSent ? res.statusCode : 0;
      event.durationMs = performance.now() - started;
      this.options.onRequest?.(event);
    });
    const hit = this.admit(host);
    if (hit instanceof GatewayError) {
      this.reply(res, hit, note);
      return;
    }
    event.podId = hit.pod.podId;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > this.limits.maxBodyBytes) {
      const err = new GatewayError("BODY_TOO_LARGE", `request body over ${this.limits.maxBodyBytes} bytes`);
      this.reply(res, err, note);
      return;
    }
    const pod = hit.pod;
    const release = this.acquire(pod);
    res.once("close", release);
    this.upstreamFor(pod, hit.route).then(
      (up) => {
        if (res.destroyed || res.writableEnded) return;
        this.forward(req, res, pod, up, note, 0);
      },
      (err) => this.reply(res, toGatewayError(err, "POD_START_FAILED"), note),
    );
  }

  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    pod: PodEntry,
    up: Upstream,
    note: (e: GatewayError) => void,
    attempt: number,
  ): void {
    const l = this.limits;
    const bodyless =
      req.headers["transfer-encoding"] === undefined &&
      (req.headers["content-length"] === undefined || req.headers["content-length"] === "0");
    const proxyReq = http.request({
      host: up.host,
      port: up.port,
      method: req.method,
      path: pathOf(req.url),
      headers: upstreamRequestHeaders(req, this.options.trustForwarded === true, false),
      agent: pod.agent,
      setHost: false,
    });
    let responded = false;
    const timers: NodeJS.Timeout[] = [];
    const clearTimers = () => {
      for (const t of timers) clearTimeout(t);
    };
    timers.push(
      setTimeout(() => {
        proxyReq.destroy(
          new GatewayError("UPSTREAM_TIMEOUT", `the pod sent no response within ${l.responseTimeoutMs} ms`),
        );
      }, l.responseTimeoutMs),
    );
    proxyReq.once("socket", (s) => {
      if (!s.connecting) return;
      const t = setTimeout(() => {
        proxyReq.destroy(
          new GatewayError("UPSTREAM_TIMEOUT", `connecting to the pod took over ${l.connectTimeoutMs} ms`),
        );
      }, l.connectTimeoutMs);
      timers.push(t);
      s.once("connect", () => clearTimeout(t));
    });
    proxyReq.setTimeout(l.idleTimeoutMs, () => {
      proxyReq.destroy(
        new GatewayError("UPSTREAM_TIMEOUT", `no data from the pod for ${l.idleTimeoutMs} ms`),
      );
    });
    proxyReq.once("close", clearTimers);

    proxyReq.once("response", (pres) => {
      responded = true;
      clearTimers();
      res.writeHead(pres.statusCode ?? 502, pres.statusMessage, endToEnd(pres.rawHeaders));
      pres.pipe(res);
      pres.once("error", () => res.destroy());
      pres.once("aborted", () => res.destroy());
    });

    proxyReq.once("error", (err) => {
      clearTimers();
      if (responded || res.headersSent) {
        res.destroy();
        return;
      }
      const code = (err as NodeJS.ErrnoException).code;
      // A pooled keep-alive connection the container had already closed: safe to resend a bodyless request.
      if (
        attempt === 0 &&
        proxyReq.reusedSocket &&
        code === "ECONNRESET" &&
        bodyless &&
        RETRYABLE_METHODS.has(req.method ?? "")
      ) {
        this.forward(req, res, pod, up, note, 1);
        return;
      }
      if (
        (code && CONNECT_ERRORS.has(code)) ||
        (err instanceof GatewayError && !proxyReq.socket?.remoteAddress)
      ) {
        this.invalidate(pod);
      }
      this.reply(res, toGatewayError(err), note);
    });

    // The client went away: stop the upstream exchange too.
    res.once("close", () => {
      if (!res.writableFinished) proxyReq.destroy();
    });

    if (bodyless) {
      proxyReq.end();
      return;
    }
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > l.maxBodyBytes) {
        req.off("data", onData);
        req.unpipe(proxyReq);
        proxyReq.destroy();
        if (!res.headersSent) {
          this.reply(
            res,
            new GatewayError("BODY_TOO_LARGE", `request body over ${l.maxBodyBytes} bytes`),
            note,
          );
        } else {
          res.destroy();
        }
        req.resume();
      }
    };
    if (req.headers["content-length"] === undefined) req.on("data", onData);
    req.pipe(proxyReq);
    req.once("error", () => proxyReq.destroy());
  }

  // ------------------------------------------------------------------ WebSockets and other upgrades

  private rawError(socket: Duplex, err: GatewayError): void {
    if (socket.destroyed) return;
    const body = errorBody(err);
    const lines = [
      `HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status] ?? "Error"}`,
      "Content-Type: application/json; charset=utf-8",
      `Content-Length: ${Buffer.byteLength(body)}`,
      "Cache-Control: no-store",
      `X-Tpod-Error: ${err.code}`,
      ...(err.retryable ? [`Retry-After: ${this.limits.retryAfterSeconds}`] : []),
      "Connection: close",
    ];
    socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
  }

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
      this.rawError(socket, err);
    };
    socket.on("error", () => socket.destroy());
    const hit = this.admit(host);
    if (hit instanceof GatewayError) {
      fail(hit);
      return;
    }
    event.podId = hit.pod.podId;
    const pod = hit.pod;
    const release = this.acquire(pod);
    socket.once("close", release);
    this.upstreamFor(pod, hit.route).then(
      (up) => {
        if (socket.destroyed) return;
        this.forwardUpgrade(req, socket, head, pod, up, finish, fail);
      },
      (err) => fail(toGatewayError(err, "POD_START_FAILED")),
    );
  }

  private forwardUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    pod: PodEntry,
    up: Upstream,
    finish: (status: number, err?: GatewayError) => void,
    fail: (err: GatewayError) => void,
  ): void {
    const l = this.limits;
    // Upgraded connections leave the pool anyway: a dedicated connection.
    const proxyReq = http.request({
      host: up.host,
      port: up.port,
      method: req.method,
      path: pathOf(req.url),
      headers: upstreamRequestHeaders(req, this.options.trustForwarded === true, true),
      agent: false,
      setHost: false,
    });
    const timer = setTimeout(
      () =>
        proxyReq.destroy(
          new GatewayError("UPSTREAM_TIMEOUT", `the pod sent no response within ${l.responseTimeoutMs} ms`),
        ),
      l.responseTimeoutMs,
    );
    socket.once("close", () => {
      clearTimeout(timer);
      proxyReq.destroy();
    });

    proxyReq.once("upgrade", (pres, upstream, upstreamHead) => {
      clearTimeout(timer);
      finish(101);
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      const lines = [`HTTP/1.1 101 ${pres.statusMessage || "Switching Protocols"}`];
      for (let i = 0; i < pres.rawHeaders.length; i += 2)
        lines.push(`${pres.rawHeaders[i]}: ${pres.rawHeaders[i + 1]}`);
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (upstreamHead.length) socket.write(upstreamHead);
      if (head.length) upstream.write(head);
      pod.upgraded.add(socket);
      pod.upgraded.add(upstream);
      const closeBoth = () => {
        socket.destroy();
        upstream.destroy();
        pod.upgraded.delete(socket);
        pod.upgraded.delete(upstream);
      };
      for (const s of [socket, upstream]) {
        s.once("close", closeBoth);
        s.on("error", closeBoth);
      }
      upstream.setNoDelay(true);
      (socket as net.Socket).setNoDelay?.(true);
      const idle = l.upgradeIdleTimeoutMs;
      (socket as net.Socket).setTimeout?.(idle);
      upstream.setTimeout(idle);
      if (idle > 0) {
        (socket as net.Socket).once("timeout", closeBoth);
        upstream.once("timeout", closeBoth);
      }
      // pipe() keeps backpressure both ways; a half-close is passed on as a half-close.
      socket.pipe(upstream);
      upstream.pipe(socket);
    });

    // The container answered without switching protocols: relay that answer and close.
    proxyReq.once("response", (pres) => {
      clearTimeout(timer);
      finish(pres.statusCode ?? 502);
      const headers = endToEnd(pres.rawHeaders, new Set(["content-length"]));
      const lines = [`HTTP/1.1 ${pres.statusCode} ${pres.statusMessage ?? ""}`];
      for (let i = 0; i < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
      lines.push("Connection: close");
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      pres.pipe(socket);
    });

    proxyReq.once("error", (err) => {
      clearTimeout(timer);
      const code = (err as NodeJS.ErrnoException).code;
      if (code && CONNECT_ERRORS.has(code)) this.invalidate(pod);
      fail(toGatewayError(err));
    });
    proxyReq.end();
  }

  // ------------------------------------------------------------------ shutdown

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const pod of this.pods.values()) this.dropPod(pod);
    this.pods.clear();
    this.hosts.clear();
    await done;
  }
}

/** Starts the gateway listening; resolves once it accepts connections. */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const gw = new HttpGateway(options);
  await gw.listen();
  return gw;
}
