// A pod as the gateway sees it: its routes, the addresses (and connection pools) of its containers while it
// is awake, requests in flight, and scale to zero: stop after the idle time, start on the next request and
// hold requests until the pod is ready. One transition (wake/lookup or sleep) at a time per pod.
import net from "node:net";
import type { ContainerStatus, Engine, PodStatus } from "../engine/types.js";
import { GatewayError, messageOf, toGatewayError } from "./errors.js";
import { destroyTargets, openTargets, retireTargets, type Target, type Upstream } from "./pool.js";
import type { GatewayLimits, GatewayLogger, GatewayPodState, HttpRoute, PodWaker } from "./types.js";

/**
 * After a failed wake or lookup, further requests get the same answer for this long instead of starting the
 * pod (or asking the engine) again each: a flood of requests to a crashing pod must not become a flood of
 * starts. setRoutes() clears it (the daemon changed something).
 */
const FAILURE_HOLD_MS = 1_000;

export interface PodEntry {
  podId: string;
  routes: HttpRoute[];
  scaleToZero: { idleMs: number } | null;
  /** container:port -> address and pool, valid while state is awake. */
  targets: Map<string, Target>;
  state: GatewayPodState["state"];
  /** Bumped whenever addresses may have changed: a lookup begun before must not install its result. */
  generation: number;
  active: number;
  lastActivity: number;
  idleTimer: NodeJS.Timeout | null;
  /** The one wake/resolve or sleep in progress: concurrent requests wait for it instead of starting their own. */
  transition: Promise<void> | null;
  changing: GatewayPodState["changing"];
  upgraded: Set<{ destroy(): void }>;
  /** Last resolve failure and until when it is answered without trying again. */
  failure: GatewayError | null;
  failedUntil: number;
  removed: boolean;
  wakes: number;
  sleeps: number;
}

/** A hostname's route with its pool key, computed once per setRoutes (not per request). */
export interface HostEntry {
  pod: PodEntry;
  route: HttpRoute;
  key: string;
}

export const upstreamKey = (route: HttpRoute) => `${route.container}:${route.containerPort}`;
const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function newPodEntry(podId: string): PodEntry {
  return {
    podId,
    routes: [],
    scaleToZero: null,
    targets: new Map(),
    state: "unknown",
    generation: 0,
    active: 0,
    lastActivity: Date.now(),
    idleTimer: null,
    transition: null,
    changing: null,
    upgraded: new Set(),
    failure: null,
    failedUntil: 0,
    removed: false,
    wakes: 0,
    sleeps: 0,
  };
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

export class PodLifecycle {
  constructor(
    private readonly engine: Engine,
    private readonly waker: PodWaker,
    private readonly limits: GatewayLimits,
    private readonly log: GatewayLogger,
    private readonly isClosed: () => boolean,
    /** Called when a pod's addresses were installed or forgotten (the native data plane follows them). */
    private readonly onAddresses: (pod: PodEntry) => void = () => {},
  ) {}

  // ------------------------------------------------------------------ addresses

  /** The pooled target for a route when the pod is awake: the per-request fast path, no promise. */
  ready(pod: PodEntry, key: string): Target | undefined {
    return pod.state === "awake" ? pod.targets.get(key) : undefined;
  }

  /** Addresses may have changed (routes set again, update, failed connect): look them up on the next request. */
  forget(pod: PodEntry): void {
    pod.generation++;
    const wasAwake = pod.state === "awake";
    if (wasAwake) pod.state = "unknown";
    if (pod.targets.size) {
      retireTargets(pod.targets);
      pod.targets = new Map();
    }
    if (wasAwake) this.onAddresses(pod);
  }

  /**
   * A request to `target` failed to connect: forget the pod's addresses, unless they were replaced already
   * (many requests failing on the same stale address must not keep restarting a lookup under way).
   */
  invalidate(pod: PodEntry, target: Target): void {
    for (const t of pod.targets.values()) {
      if (t === target) {
        this.forget(pod);
        return;
      }
    }
  }

  /** The pod is no longer routed: stop everything of it now. */
  drop(pod: PodEntry): void {
    pod.removed = true;
    pod.generation++;
    this.clearIdle(pod);
    for (const s of pod.upgraded) s.destroy();
    pod.upgraded.clear();
    destroyTargets(pod.targets);
    pod.targets = new Map();
  }

  /** The container target for a route, waking the pod when it is asleep. Concurrent callers share one wake. */
  async target(pod: PodEntry, entry: HostEntry): Promise<Target> {
    for (let attempt = 0; attempt < 4; attempt++) {
      if (pod.transition) await pod.transition;
      if (this.isClosed()) throw new GatewayError("GATEWAY_CLOSING", "the gateway is shutting down");
      if (pod.removed)
        throw new GatewayError("UNKNOWN_HOST", `no pod is served at ${entry.route.hostname} any more`);
      const t = this.ready(pod, entry.key);
      if (t) return t;
      if (pod.failure && Date.now() < pod.failedUntil) throw pod.failure;
      if (!pod.transition) {
        this.runTransition(pod, "wake", () =>
          this.resolve(pod).catch((err: unknown) => {
            pod.failure = toGatewayError(err, "POD_START_FAILED");
            pod.failedUntil = Date.now() + FAILURE_HOLD_MS;
            throw pod.failure;
          }),
        );
      }
    }
    throw new GatewayError(
      "POD_NOT_RUNNING",
      `pod for ${entry.route.hostname} keeps changing state; try again`,
    );
  }

  // ------------------------------------------------------------------ activity and scale to zero

  /** Counts a request or upgraded connection as activity until release() is called. */
  acquire(pod: PodEntry): void {
    pod.active++;
    // lastActivity is set on release: while a request is active no idle timer runs.
    if (pod.idleTimer) this.clearIdle(pod);
  }

  release(pod: PodEntry): void {
    pod.active--;
    pod.lastActivity = Date.now();
    if (pod.active === 0) this.armIdle(pod);
  }

  clearIdle(pod: PodEntry): void {
    if (pod.idleTimer) clearTimeout(pod.idleTimer);
    pod.idleTimer = null;
  }

  armIdle(pod: PodEntry, delayMs?: number): void {
    if (!pod.scaleToZero || pod.removed || this.isClosed()) return;
    this.clearIdle(pod);
    pod.idleTimer = setTimeout(() => this.onIdle(pod), delayMs ?? pod.scaleToZero.idleMs);
    pod.idleTimer.unref();
  }

  private onIdle(pod: PodEntry): void {
    pod.idleTimer = null;
    if (!pod.scaleToZero || pod.removed || this.isClosed() || pod.active > 0) return;
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
    this.forget(pod);
    pod.state = "asleep";
    pod.sleeps++;
    this.log.info({ podId: pod.podId, idleMs: pod.scaleToZero.idleMs }, "gateway: scaling pod to zero");
    this.runTransition(pod, "sleep", async () => {
      try {
        await this.waker.sleep(pod.podId);
      } catch (err) {
        pod.state = "unknown";
        this.log.warn({ podId: pod.podId, err: messageOf(err) }, "gateway: stopping idle pod failed");
      }
    });
  }

  private runTransition(pod: PodEntry, kind: "sleep" | "wake", op: () => Promise<void>): Promise<void> {
    pod.changing = kind;
    const p = op().finally(() => {
      if (pod.transition !== p) return;
      pod.transition = null;
      pod.changing = null;
    });
    // Waiters get the rejection; nobody waiting must not make it an unhandled one.
    p.catch(() => {});
    pod.transition = p;
    return p;
  }

  // ------------------------------------------------------------------ lookup and wake

  private async resolve(pod: PodEntry): Promise<void> {
    const generation = pod.generation;
    const t0 = Date.now();
    const deadline = t0 + this.limits.wakeTimeoutMs;
    const timeoutMsg = `the pod did not become ready within ${Math.round(this.limits.wakeTimeoutMs / 1000)} s`;
    // A pod we stopped ourselves (and whose stop succeeded) is known to be stopped: skip one status lookup.
    const knownAsleep = pod.state === "asleep" && pod.scaleToZero !== null;
    let status = knownAsleep ? null : await before(this.engine.status(pod.podId), deadline, timeoutMsg);
    let woke = false;
    if (!status?.running) {
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
    if (!status) throw new GatewayError("POD_NOT_RUNNING", "the pod is not running");
    const startedMs = Date.now() - t0;
    const upstreams = this.upstreamsFrom(pod, status, woke);
    // A scale-to-zero pod may have just been started by us or by the daemon: wait until it listens.
    if (woke || pod.scaleToZero) await this.waitReady(pod, upstreams, status, deadline, timeoutMsg);
    if (woke) {
      this.log.info({ podId: pod.podId, startMs: startedMs, readyMs: Date.now() - t0 }, "gateway: pod awake");
    }
    // Removed, or routes set again meanwhile (an update may have replaced the containers): the waiting
    // requests look up again instead of using what this lookup saw.
    if (pod.removed || pod.generation !== generation) return;
    pod.targets = openTargets(upstreams, this.limits);
    pod.state = "awake";
    pod.failure = null;
    pod.lastActivity = Date.now();
    if (pod.active === 0) this.armIdle(pod);
    this.onAddresses(pod);
  }

  private upstreamsFrom(pod: PodEntry, status: PodStatus, woke: boolean): Map<string, Upstream> {
    const out = new Map<string, Upstream>();
    for (const route of pod.routes) {
      const c = status.containers.find((x) => x.name === route.container);
      if (!c) throw new GatewayError("POD_NOT_RUNNING", `the pod has no container ${route.container}`);
      if (c.state !== "running" || !c.ip) throw notRunning(c, woke);
      out.set(upstreamKey(route), { host: c.ip, port: route.containerPort });
    }
    return out;
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
        if (c.state === "exited" || c.state === "dead") throw notRunning(c, true);
        if (c.ip) upstreams.set(key, { host: c.ip, port: route.containerPort });
      }
    }
  }
}

function notRunning(c: ContainerStatus, woke: boolean): GatewayError {
  const exit = c.exitCode !== null ? ` (exit code ${c.exitCode})` : "";
  return woke
    ? new GatewayError("POD_START_FAILED", `container ${c.name} is ${c.state}${exit} after starting`)
    : new GatewayError("POD_NOT_RUNNING", `container ${c.name} is ${c.state}${exit}`);
}
