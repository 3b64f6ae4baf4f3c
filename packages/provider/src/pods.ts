/**
 * The pod lifecycle: provision, update, delete and crash recovery, journaled in SQLite so a daemon killed at
 * any point can finish or roll back on its next start. One operation per pod at a time.
 */
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { RpcError } from "@trustedpods/p2p";
import { ErrorCode, type Pod, podFromWire, wire } from "@trustedpods/protocol";
import type { Address, Hex } from "viem";
import type { PaymentGate } from "./billing-seam.js";
import type { Engine } from "./engine/types.js";
import type { PodStopReason } from "./gateway/types.js";
import type { RouteRegistry } from "./gateway-seam.js";
import type { Logger } from "./log.js";
import type { Metrics } from "./metrics.js";
import type { ContentFetcher } from "./provision/content.js";
import { type ProvisionStage, provisionFailure, Redactor } from "./provision/failure.js";
import { localPortFree, movedPortNotes, reusableHostPorts } from "./provision/host-ports.js";
import { checkListingContainer, type ListingImages } from "./provision/listing.js";
import {
  HostPortAllocator,
  type HostPortRange,
  hostPortNeeds,
  hostPortsInUse,
} from "./provision/port-range.js";
import { endpointsOf, planRoutes, routesOf, toPodSpec } from "./provision/translate.js";
import type { EndpointRecord, StateDb, StoredPod } from "./state/db.js";

export interface PodManagerOptions {
  state: StateDb;
  engine: Engine;
  fetcher: ContentFetcher;
  gate: PaymentGate;
  routes: RouteRegistry;
  log: Logger;
  metrics: Metrics;
  stagingDir: string;
  baseDomain: string;
  publishHostIp: string;
  publicHost: string;
  provisionTimeoutMs: number;
  maxConcurrentProvisions: number;
  /** Test hook: hold a provision this long after its containers started, before recording it done. */
  holdProvisionMs?: number;
  /** Marketplace listing images (provision/listing.ts); absent: listing images are refused as UNIMPLEMENTED. */
  listings?: ListingImages;
  /** The provider's own directories (data dir, IPFS, secrets): removed from the reasons publishers see. */
  hostPaths?: string[];
  /**
   * Whether a recorded tcp host port is still free to ask for again (default: a bind probe on this host for the
   * Podman engine, whose published ports are this host's; always true for other engines).
   */
  hostPortFree?: (hostIp: string, port: number) => Promise<boolean>;
  /** engine.hostPortRange: tcp and udp endpoints get host ports from it (absent: the engine picks any). */
  hostPortRange?: HostPortRange;
}

/** What realize() did: the pod's endpoints and images, and notes for the publisher (a tcp port that moved). */
interface Realized {
  endpoints: EndpointRecord[];
  images: Record<string, string>;
  notes: string[];
}

/** A stopped pod's status message, per reason. */
export const STOP_MESSAGES: Record<PodStopReason, string> = {
  funds:
    "stopped by billing: the payment channel's deposit ran out; top up the channel to restart it (volumes are kept until the notice period ends)",
  closed: "stopped by billing: the payment channel closed; the pod is removed after the retention time",
  underpaid:
    "stopped by billing: the channel's rate is below the running pod's quoted price; the provider closed the channel (volumes are kept until the notice period ends)",
};

/** A failure outside realize() (which classifies its own): the same classes, the provider's paths removed. */
function engineFailure(err: unknown, hostPaths: string[] = []): RpcError {
  const redactor = new Redactor();
  for (const p of hostPaths) redactor.addPath(p);
  return provisionFailure(err, null, redactor);
}

/** A tiny semaphore so large pulls cannot all run at once. */
class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export class PodManager {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly provisions: Semaphore;
  private readonly ports: HostPortAllocator | undefined;

  constructor(private readonly o: PodManagerOptions) {
    this.provisions = new Semaphore(o.maxConcurrentProvisions);
    this.ports =
      o.hostPortRange &&
      new HostPortAllocator(
        o.hostPortRange,
        (exceptId) => hostPortsInUse(o.state, exceptId),
        (port, transport) => this.hostPortFree(o.publishHostIp, port, transport),
      );
  }

  /**
   * Runs `fn` after every earlier operation on the same pod finished. When it ends, the host ports it took
   * from the range are in the pod's record (or it failed), so they are no longer held for it.
   */
  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(id, tail);
    try {
      return await next;
    } finally {
      this.ports?.release(id);
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  /**
   * Pulls and loads images, fetches and decrypts secrets, applies the engine spec and sets the gateway routes.
   * Returns the endpoints and the image refs. Reuses already loaded images of unchanged containers.
   */
  private async realize(
    id: string,
    pod: Pod,
    loaded: Record<string, string>,
    previous: readonly EndpointRecord[],
    signal: AbortSignal,
    timings?: Record<string, number>,
  ): Promise<Realized> {
    const redactor = new Redactor();
    for (const dir of [this.o.stagingDir, ...(this.o.hostPaths ?? [])]) redactor.addPath(dir);
    for (const c of pod.containers) for (const e of c.env) if (e.kind === "value") redactor.addValue(e.value);
    const progress: { stage: ProvisionStage | null } = { stage: null };
    try {
      return await this.realizeStages(id, pod, loaded, previous, signal, progress, redactor, timings ?? {});
    } catch (err) {
      throw provisionFailure(err, progress.stage, redactor);
    }
  }

  private async realizeStages(
    id: string,
    pod: Pod,
    loaded: Record<string, string>,
    previous: readonly EndpointRecord[],
    signal: AbortSignal,
    progress: { stage: ProvisionStage | null },
    redactor: Redactor,
    timings: Record<string, number>,
  ): Promise<Realized> {
    // Where a provision's time goes (logged with "provisioned"; bench/scale sums them).
    const span = async <T>(name: string, p: Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        return await p;
      } finally {
        timings[name] = (timings[name] ?? 0) + Math.round(performance.now() - t);
      }
    };
    const { engine, fetcher } = this.o;
    const images: Record<string, string> = {};
    const staging = path.join(this.o.stagingDir, id);
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true, mode: 0o700 });
    // Host ports first: a pod the port range has no room for is refused before anything is pulled.
    progress.stage = "engine";
    const kept = await this.hostPortsFor(id, pod, previous);
    progress.stage = "image";
    try {
      for (const [ci, c] of pod.containers.entries()) {
        if (c.image.kind === "listing") {
          images[c.name] = await this.realizeListing(id, c, ci, c.image.listingId, staging, signal);
          images[`${c.name}#src`] = `listing:${c.image.listingId}`;
          continue;
        }
        if (c.image.kind !== "ipfs")
          throw new RpcError(ErrorCode.INVALID_ARGUMENT, "only ipfs images can run");
        const key = `${c.image.cid}@${c.image.digest}`;
        const previous = loaded[`${c.name}#src`];
        if (previous === key && loaded[c.name]) {
          images[c.name] = loaded[c.name]!;
          images[`${c.name}#src`] = key;
          continue;
        }
        const dir = path.join(staging, c.name);
        await span("fetchMs", fetcher.fetchImage(c.image.cid, c.image.digest, dir, signal));
        signal.throwIfAborted();
        const img = await span("loadMs", engine.loadImage(id, c.name, { kind: "oci-layout", dir }));
        await rm(dir, { recursive: true, force: true });
        images[c.name] = img.ref;
        images[`${c.name}#src`] = key;
      }
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    progress.stage = "secret";
    const secrets = new Map<string, Uint8Array>();
    let status: Awaited<ReturnType<Engine["apply"]>>;
    let plan: ReturnType<typeof planRoutes>;
    try {
      for (const v of pod.volumes)
        if (v.kind === "secret" && v.source.kind === "ipfs") {
          const bytes = await this.o.fetcher.fetchSecret(v.source.cid, v.source.keyRef, signal);
          secrets.set(v.name, bytes);
          redactor.addValue(bytes);
        }
      signal.throwIfAborted();
      progress.stage = "gateway";
      plan = planRoutes(pod, id, this.o.baseDomain);
      progress.stage = "engine";
      const spec = toPodSpec(pod, {
        id,
        secrets,
        images,
        publishHostIp: this.o.publishHostIp,
        hosts: plan.map((r) => r.hostname),
        hostPorts: kept.hostPorts,
      });
      status = await span("applyMs", engine.apply(spec));
    } finally {
      // The decrypted secrets now live only in the engine's tmpfs (or nowhere, after a failure): drop our copies.
      for (const b of secrets.values()) b.fill(0);
    }
    progress.stage = "gateway";
    const published = status.containers.flatMap((c) =>
      c.ports.map((p) => ({
        container: c.name,
        containerPort: p.containerPort,
        hostPort: p.hostPort,
        protocol: p.protocol,
      })),
    );
    this.o.routes.setRoutes(
      id,
      routesOf(plan),
      pod.replicas.min === 0 ? { scaleToZero: { idleMs: Number(pod.replicas.idleSeconds) * 1000 } } : {},
    );
    const endpoints = endpointsOf(pod, plan, published, this.o.publicHost, (h) => this.o.routes.urlFor(h));
    const notes = movedPortNotes(kept.moved, endpoints);
    for (const note of notes) this.o.log.warn({ pod: id }, note);
    return { endpoints, images, notes };
  }

  /**
   * The host ports the pod's tcp and udp ports ask for: those it had (publishers and firewalls point at them),
   * unless another program took one meanwhile; with a port range, a port from it for each of the others.
   */
  private async hostPortsFor(
    id: string,
    pod: Pod,
    previous: readonly EndpointRecord[],
  ): Promise<Awaited<ReturnType<typeof reusableHostPorts>>> {
    const kept = await reusableHostPorts(this.o.engine, id, previous, (port, transport) =>
      this.hostPortFree(this.o.publishHostIp, port, transport),
    );
    if (!this.ports) return kept;
    return { ...kept, hostPorts: await this.ports.assign(id, hostPortNeeds(pod), kept.hostPorts) };
  }

  private hostPortFree(hostIp: string, port: number, transport: "tcp" | "udp"): Promise<boolean> {
    if (this.o.hostPortFree) return this.o.hostPortFree(hostIp, port);
    return this.o.engine.kind === "podman" ? localPortFree(hostIp, port, transport) : Promise.resolve(true);
  }

  /**
   * A listing container: every check runs again on each provision and update (authorization can be revoked,
   * and the chain view must be fresh), and the decrypted image is loaded under this pod's engine name only.
   */
  private async realizeListing(
    id: string,
    c: Pod["containers"][number],
    index: number,
    listingId: bigint,
    staging: string,
    signal: AbortSignal,
  ): Promise<string> {
    const listings = this.o.listings;
    if (!listings)
      throw new RpcError(ErrorCode.UNIMPLEMENTED, "this provider does not run marketplace listing images", {
        details: { field: `spec.containers[${index}].image` },
      });
    const view = await listings.resolve(listingId);
    checkListingContainer(c, index, view);
    const dir = path.join(staging, c.name);
    await listings.fetchImage(view, dir, signal);
    signal.throwIfAborted();
    try {
      const img = await this.o.engine.loadImage(id, c.name, { kind: "oci-layout", dir });
      return img.ref;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async removeUnusedImages(
    before: Record<string, string>,
    after: Record<string, string>,
  ): Promise<void> {
    const keep = new Set(Object.values(after));
    for (const [k, ref] of Object.entries(before))
      if (!k.includes("#") && !keep.has(ref)) await this.o.engine.removeImage(ref).catch(() => undefined);
  }

  private deadline(signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, AbortSignal.timeout(this.o.provisionTimeoutMs)]);
  }

  async provision(
    rec: {
      id: string;
      publisher: Address;
      podId: Hex;
      manifest: Uint8Array;
      pod: Pod;
      channel: StoredPod["channel"];
    },
    signal: AbortSignal,
  ): Promise<EndpointRecord[]> {
    const { state, log, metrics } = this.o;
    const started = performance.now();
    return this.locked(rec.id, () =>
      this.provisions.run(async () => {
        const existing = state.getPod(rec.id);
        if (existing && existing.phase !== "deleted" && existing.phase !== "failed")
          throw new RpcError(ErrorCode.ALREADY_EXISTS, "this pod id is already provisioned; use update", {
            details: { field: "pod_id" },
          });
        const opId = state.transaction(() => {
          state.insertPod({
            id: rec.id,
            publisher: rec.publisher,
            podId: rec.podId,
            manifest: rec.manifest,
            phase: "pending",
            message: "provisioning",
            channel: rec.channel,
            endpoints: [],
            images: {},
          });
          return state.beginOperation(rec.id, "provision");
        });
        log.info({ pod: rec.id, publisher: rec.publisher, op: opId }, "provisioning");
        const timings: Record<string, number> = { queuedMs: Math.round(performance.now() - started) };
        try {
          const { endpoints, images } = await this.realize(
            rec.id,
            rec.pod,
            {},
            [],
            this.deadline(signal),
            timings,
          );
          state.updatePod(rec.id, { images, endpoints });
          if (this.o.holdProvisionMs) await new Promise((r) => setTimeout(r, this.o.holdProvisionMs));
          state.transaction(() => {
            state.updatePod(rec.id, { phase: "running", message: "" });
            state.finishOperation(opId, "done");
          });
          await this.o.gate.onProvisioned({
            id: rec.id,
            publisher: rec.publisher,
            podId: rec.podId,
            pod: rec.pod,
          });
          metrics.provisionDuration.observe({ result: "ok" }, (performance.now() - started) / 1000);
          log.info(
            { pod: rec.id, ms: { ...timings, totalMs: Math.round(performance.now() - started) } },
            "provisioned",
          );
          return endpoints;
        } catch (err) {
          const e = engineFailure(err, [this.o.stagingDir, ...(this.o.hostPaths ?? [])]);
          log.warn({ pod: rec.id, code: e.codeName, error: e.message }, "provision failed; rolling back");
          await this.rollback(rec.id);
          state.transaction(() => {
            state.updatePod(rec.id, { phase: "failed", message: e.message });
            state.finishOperation(opId, "failed", e.message);
          });
          metrics.provisionDuration.observe({ result: "failed" }, (performance.now() - started) / 1000);
          throw e;
        }
      }),
    );
  }

  private async rollback(id: string): Promise<void> {
    this.o.routes.removeRoutes(id);
    await this.o.engine.remove(id, { images: true }).catch((err) => {
      this.o.log.error({ pod: id, err }, "rollback could not remove the pod");
    });
  }

  async update(id: string, manifest: Uint8Array, pod: Pod, signal: AbortSignal): Promise<EndpointRecord[]> {
    const { state, log } = this.o;
    return this.locked(id, async () => {
      const rec = state.getPod(id);
      if (!rec || rec.phase === "deleted")
        throw new RpcError(ErrorCode.NOT_FOUND, "no such pod", { details: { field: "pod_id" } });
      if (rec.phase !== "running" && rec.phase !== "stopped")
        throw new RpcError(ErrorCode.FAILED_PRECONDITION, `the pod is ${rec.phase}; it cannot be updated`, {
          details: { field: "pod_id", phase: rec.phase },
        });
      const opId = state.beginOperation(id, "update", manifest);
      log.info({ pod: id, op: opId }, "updating");
      try {
        const out = await this.realize(id, pod, rec.images, rec.endpoints, this.deadline(signal));
        state.transaction(() => {
          state.updatePod(id, {
            manifest,
            images: out.images,
            endpoints: out.endpoints,
            phase: "running",
            message: out.notes.join("; "),
          });
          state.finishOperation(opId, "done");
        });
        await this.removeUnusedImages(rec.images, out.images);
        return out.endpoints;
      } catch (err) {
        const e = engineFailure(err, [this.o.stagingDir, ...(this.o.hostPaths ?? [])]);
        log.warn(
          { pod: id, code: e.codeName, error: e.message },
          "update failed; restoring the previous spec",
        );
        try {
          const old = podFromWire(fromBinary(wire.PodSchema, rec.manifest));
          await this.realize(
            id,
            old,
            rec.images,
            rec.endpoints,
            AbortSignal.timeout(this.o.provisionTimeoutMs),
          );
          state.finishOperation(opId, "failed", e.message);
        } catch {
          state.transaction(() => {
            state.updatePod(id, { phase: "failed", message: `update failed: ${e.message}` });
            state.finishOperation(opId, "failed", e.message);
          });
        }
        throw e;
      }
    });
  }

  async delete(id: string): Promise<void> {
    const { state, log } = this.o;
    return this.locked(id, async () => {
      const rec = state.getPod(id);
      if (!rec || rec.phase === "deleted")
        throw new RpcError(ErrorCode.NOT_FOUND, "no such pod", { details: { field: "pod_id" } });
      const opId = state.beginOperation(id, "delete");
      await this.finishDelete(id, opId);
      log.info({ pod: id }, "deleted");
    });
  }

  /**
   * Billing: the channel stopped paying (deposit ran out, channel closed). The containers stop, volumes and
   * images stay, the gateway answers the pod's hostnames with why it stopped, and the phase becomes "stopped" so
   * crash recovery leaves it stopped.
   */
  async suspend(id: string, reason: PodStopReason, detail?: string): Promise<void> {
    return this.locked(id, async () => {
      const rec = this.o.state.getPod(id);
      if (!rec || rec.phase === "deleted" || rec.phase === "failed") return;
      this.stopRoutes(id, rec.manifest, reason);
      await this.o.engine.stop(id);
      const message = detail ?? STOP_MESSAGES[reason];
      this.o.state.updatePod(id, { phase: "stopped", message, stopReason: reason });
      this.o.log.warn({ pod: id }, message);
    });
  }

  private stopRoutes(id: string, manifest: Uint8Array, reason: PodStopReason): void {
    const pod = podFromWire(fromBinary(wire.PodSchema, manifest));
    this.o.routes.stopRoutes(id, routesOf(planRoutes(pod, id, this.o.baseDomain)), reason);
  }

  /** Billing: a stopped pod is paid for again (top-up). Starts it and routes it again. */
  async resume(id: string): Promise<void> {
    return this.locked(id, async () => {
      const rec = this.o.state.getPod(id);
      if (rec?.phase !== "stopped") return;
      await this.o.engine.start(id);
      const pod = podFromWire(fromBinary(wire.PodSchema, rec.manifest));
      const plan = planRoutes(pod, id, this.o.baseDomain);
      this.o.routes.setRoutes(
        id,
        routesOf(plan),
        pod.replicas.min === 0 ? { scaleToZero: { idleMs: Number(pod.replicas.idleSeconds) * 1000 } } : {},
      );
      this.o.state.updatePod(id, { phase: "running", message: "" });
      this.o.log.info({ pod: id }, "paid again: restarted");
    });
  }

  /** Billing: the notice period passed unpaid (or the channel was settled). Everything of the pod goes. */
  async evict(id: string, message: string): Promise<void> {
    return this.locked(id, async () => {
      const rec = this.o.state.getPod(id);
      this.o.routes.removeRoutes(id);
      await this.o.engine.remove(id, { images: true });
      if (rec && rec.phase !== "deleted")
        this.o.state.updatePod(id, { phase: "deleted", message, endpoints: [], images: {} });
      this.o.log.warn({ pod: id }, message);
    });
  }

  private async finishDelete(id: string, opId: number): Promise<void> {
    this.o.routes.removeRoutes(id);
    await this.o.engine.remove(id, { images: true });
    this.o.state.transaction(() => {
      this.o.state.updatePod(id, {
        phase: "deleted",
        message: "deleted by the publisher",
        endpoints: [],
        images: {},
      });
      this.o.state.finishOperation(opId, "done");
    });
    await this.o.gate.onDeleted(id);
  }

  /**
   * Startup reconciliation, before the daemon accepts requests: half-done operations are rolled back
   * (provision: the caller got no answer, nothing was billed) or finished (update, delete: the publisher signed
   * them and every input is in the journal); pods the state says run are running again; engine pods the state
   * does not know (or knows as deleted/failed) are removed; leftover staging is deleted.
   */
  async recover(): Promise<{
    rolledBack: string[];
    finished: string[];
    restarted: string[];
    orphans: string[];
  }> {
    const { state, engine, log } = this.o;
    const started = performance.now();
    const report = {
      rolledBack: [] as string[],
      finished: [] as string[],
      restarted: [] as string[],
      orphans: [] as string[],
    };
    await rm(this.o.stagingDir, { recursive: true, force: true });
    await mkdir(this.o.stagingDir, { recursive: true, mode: 0o700 });
    for (const op of state.pendingOperations()) {
      const rec = state.getPod(op.podKey);
      try {
        if (op.kind === "provision" || !rec) {
          await this.rollback(op.podKey);
          state.transaction(() => {
            if (rec)
              state.updatePod(op.podKey, {
                phase: "failed",
                message: "provision interrupted by a daemon restart; provision again",
              });
            state.finishOperation(op.id, "failed", "interrupted by a restart; rolled back");
          });
          report.rolledBack.push(op.podKey);
        } else if (op.kind === "delete") {
          await this.finishDelete(op.podKey, op.id);
          report.finished.push(op.podKey);
        } else {
          const pod = podFromWire(fromBinary(wire.PodSchema, op.manifest!));
          const out = await this.realize(
            op.podKey,
            pod,
            rec.images,
            rec.endpoints,
            AbortSignal.timeout(this.o.provisionTimeoutMs),
          );
          state.transaction(() => {
            state.updatePod(op.podKey, {
              manifest: op.manifest!,
              images: out.images,
              endpoints: out.endpoints,
              phase: "running",
              message: out.notes.join("; "),
            });
            state.finishOperation(op.id, "done");
          });
          report.finished.push(op.podKey);
        }
      } catch (err) {
        log.error(
          { pod: op.podKey, op: op.id, err: (err as Error).message },
          "recovery of an operation failed",
        );
        state.transaction(() => {
          state.updatePod(op.podKey, { phase: "failed", message: "recovery failed" });
          state.finishOperation(op.id, "failed", "recovery failed");
        });
      } finally {
        this.ports?.release(op.podKey);
      }
    }
    const known = new Map(state.listPods(["running", "stopped", "pending"]).map((p) => [p.id, p]));
    const managed = await engine.listPods();
    for (const m of managed) {
      if (known.has(m.podId)) continue;
      await engine.remove(m.podId, { images: true });
      report.orphans.push(m.podId);
    }
    // What the engine's listing already says runs needs no status call (one Podman listing, not one per pod).
    const listedRunning = new Map(managed.map((m) => [m.podId, m.running]));
    for (const rec of known.values()) {
      // A pod billing stopped still answers why on its hostnames after a restart (not 404).
      if (rec.phase === "stopped" && rec.stopReason) this.stopRoutes(rec.id, rec.manifest, rec.stopReason);
      if (rec.phase !== "running") continue;
      const pod = podFromWire(fromBinary(wire.PodSchema, rec.manifest));
      const running =
        listedRunning.get(rec.id) ?? (await engine.status(rec.id).catch(() => undefined))?.running;
      if (running) {
        const plan = planRoutes(pod, rec.id, this.o.baseDomain);
        this.o.routes.setRoutes(
          rec.id,
          routesOf(plan),
          pod.replicas.min === 0 ? { scaleToZero: { idleMs: Number(pod.replicas.idleSeconds) * 1000 } } : {},
        );
        continue;
      }
      try {
        // Secrets are gone after a reboot (tmpfs) and images may be: realize() redoes what is missing.
        const out = await this.realize(
          rec.id,
          pod,
          rec.images,
          rec.endpoints,
          AbortSignal.timeout(this.o.provisionTimeoutMs),
        );
        state.updatePod(rec.id, {
          images: out.images,
          endpoints: out.endpoints,
          ...(out.notes.length ? { message: out.notes.join("; ") } : {}),
        });
        report.restarted.push(rec.id);
      } catch (err) {
        log.error({ pod: rec.id, err: (err as Error).message }, "cannot restart pod");
        state.updatePod(rec.id, {
          phase: "failed",
          message: "could not be restarted after a daemon restart",
        });
      } finally {
        this.ports?.release(rec.id);
      }
    }
    log.info({ ...report, ms: Math.round(performance.now() - started) }, "recovered");
    return report;
  }
}
