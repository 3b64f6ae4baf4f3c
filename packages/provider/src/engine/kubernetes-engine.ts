// The Engine contract on a Kubernetes cluster, through @kubernetes/client-node. One namespace per pod holds
// every object of the pod (kubernetes.ts builds them); the Deployment's replica count is the pod's on/off switch.
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  type V1ContainerStatus,
  type V1Deployment,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
// client-node's request context carries the kubeconfig's credentials and TLS settings (its own Log uses it).
import { HttpMethod, RequestContext } from "@kubernetes/client-node/dist/gen/http/http.js";
import { fetch } from "undici";
import { EngineError } from "./errors.js";
import { K8S_LABEL, type KubernetesObjects, type KubernetesOptions, namespaceFor } from "./kubernetes.js";
import { apiReason, KubernetesApplier } from "./kubernetes-apply.js";
import { KubernetesRegistry, type KubernetesRegistryOptions } from "./kubernetes-registry.js";
import { mergeAsync } from "./logstream.js";
import type {
  ContainerState,
  ContainerStatus,
  Engine,
  ImageSource,
  LoadedImage,
  LogLine,
  LogOptions,
  ManagedPod,
  PodSpec,
  PodStats,
  PodStatus,
  RemoveOptions,
} from "./types.js";
import { assertPodId, validatePodSpec } from "./validate.js";

export interface KubernetesEngineOptions extends KubernetesOptions {
  /** How long apply and start wait for the pod's replica to be ready (default 5 minutes: image pulls). */
  readyTimeoutMs?: number;
  /** How long stop and remove wait for the pod's objects to be gone (default 2 minutes). */
  goneTimeoutMs?: number;
  /**
   * The registry pod images are pushed to (loadImage) and the cluster pulls from. Without one the engine runs
   * only images the cluster can already pull, and loadImage fails.
   */
  registry?: KubernetesRegistryOptions;
}

/** The Deployment every pod has (kubernetes.ts names it so). */
const DEPLOYMENT = "pod";
/** Optimistic-concurrency retries of a replica change that lost a race (409 Conflict). */
const CONFLICT_RETRIES = 5;

function httpCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  const c = e?.code ?? e?.statusCode;
  return typeof c === "number" ? c : undefined;
}

function failure(what: string, err: unknown): EngineError {
  if (err instanceof EngineError) return err;
  const code = httpCode(err);
  return new EngineError(
    code === undefined ? "ENGINE_UNAVAILABLE" : "ENGINE_FAILURE",
    `${what}: ${apiReason(err)}`,
    { cause: err },
  );
}

async function ignore404<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (httpCode(err) === 404) return undefined;
    throw err;
  }
}

function containerState(s: V1ContainerStatus | undefined): ContainerState {
  if (!s?.state) return "created";
  if (s.state.running) return "running";
  if (s.state.terminated) return "exited";
  // Waiting after a crash is Kubernetes' back-off before the next restart.
  return (s.restartCount ?? 0) > 0 ? "restarting" : "created";
}

function toDate(v: Date | string | undefined): Date | null {
  if (!v) return null;
  const d = v instanceof Date ? v : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Why a pod is not ready, in Kubernetes' words (ImagePullBackOff, CrashLoopBackOff, Unschedulable, ...). */
function notReadyReasons(pods: V1Pod[]): string[] {
  const out: string[] = [];
  for (const p of pods) {
    for (const c of p.status?.conditions ?? []) {
      if (c.type === "PodScheduled" && c.status === "False")
        out.push(`${c.reason ?? "unschedulable"}: ${c.message ?? ""}`);
    }
    for (const s of p.status?.containerStatuses ?? []) {
      const w = s.state?.waiting;
      if (w?.reason) out.push(`${s.name}: ${w.reason}${w.message ? ` (${w.message})` : ""}`);
      const t = s.state?.terminated;
      if (t) out.push(`${s.name}: exited ${t.exitCode}${t.reason ? ` (${t.reason})` : ""}`);
    }
  }
  return out;
}

/**
 * Why a kubeconfig could not be read, without its contents: a YAML error's message quotes the offending line,
 * which may hold a token or a key.
 */
function kubeconfigProblem(err: unknown): string {
  const e = err as { code?: unknown; reason?: unknown; mark?: unknown; message?: unknown };
  if (e.code === "ENOENT") return "no such file";
  if (typeof e.code === "string") return `cannot read it (${e.code})`;
  if (e.mark !== undefined) return `not valid YAML${typeof e.reason === "string" ? ` (${e.reason})` : ""}`;
  return String(e.message ?? err)
    .split("\n")[0]!
    .slice(0, 200);
}

export class KubernetesEngine implements Engine {
  readonly kind = "kubernetes";
  readonly applier: KubernetesApplier;
  readonly registry: KubernetesRegistry | undefined;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly watcher: Watch;
  private readonly open = new Set<AbortController>();
  private closed = false;

  constructor(
    readonly kubeConfig: KubeConfig,
    private readonly options: KubernetesEngineOptions = {},
  ) {
    this.applier = new KubernetesApplier(kubeConfig, options);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.watcher = new Watch(kubeConfig);
    this.registry = options.registry ? new KubernetesRegistry(options.registry) : undefined;
  }

  /** Reads a kubeconfig file (optionally one of its contexts); a file that cannot be used is a typed error. */
  static fromKubeconfigFile(
    file: string,
    options: KubernetesEngineOptions & { context?: string } = {},
  ): KubernetesEngine {
    const kc = new KubeConfig();
    try {
      kc.loadFromFile(file);
    } catch (err) {
      throw new EngineError("ENGINE_UNAVAILABLE", `kubeconfig ${file}: ${kubeconfigProblem(err)}`, {
        cause: err,
      });
    }
    if (options.context) {
      if (!kc.getContexts().some((c) => c.name === options.context))
        throw new EngineError(
          "ENGINE_UNAVAILABLE",
          `kubeconfig ${file} has no context "${options.context}" (it has: ${kc
            .getContexts()
            .map((c) => c.name)
            .join(", ")})`,
        );
      kc.setCurrentContext(options.context);
    }
    if (!kc.getCurrentCluster())
      throw new EngineError("ENGINE_UNAVAILABLE", `kubeconfig ${file} names no current cluster`);
    return new KubernetesEngine(kc, options);
  }

  private ns(podId: string): string {
    return namespaceFor(podId, this.options);
  }

  // ---------------------------------------------------------------- lifecycle

  async apply(spec: PodSpec): Promise<PodStatus> {
    validatePodSpec(spec);
    let objects: KubernetesObjects;
    try {
      objects = await this.applier.apply(spec);
    } catch (err) {
      throw failure(`apply pod ${spec.podId}`, err);
    }
    // With KEDA the replica count is KEDA's: a pod scaled to zero is "applied" without a running replica.
    if (objects.scaledObject === null) await this.waitForReplicas(spec.podId, 1);
    return this.status(spec.podId);
  }

  async start(podId: string): Promise<void> {
    assertPodId(podId);
    await this.setReplicas(podId, 1);
    await this.waitForReplicas(podId, 1);
  }

  async stop(podId: string): Promise<void> {
    assertPodId(podId);
    await this.setReplicas(podId, 0);
    await this.waitForReplicas(podId, 0);
    await this.waitForPodsGone(podId);
  }

  /**
   * The Deployment stops counting a pod once it is terminating; its containers run until the grace period
   * ends. Stop returns when the pods are gone, as Podman's stop returns when the containers have exited.
   */
  private async waitForPodsGone(podId: string): Promise<void> {
    const namespace = this.ns(podId);
    const labelSelector = `${K8S_LABEL.pod}=${podId}`;
    await this.waitFor(
      `the pods of ${podId} to terminate`,
      `/api/v1/namespaces/${namespace}/pods`,
      { labelSelector },
      async () => {
        const list = await this.core.listNamespacedPod({ namespace, labelSelector });
        return list.items.length === 0 || (list.metadata?.resourceVersion ?? "0");
      },
      this.options.goneTimeoutMs ?? 120_000,
    );
  }

  /** With `options.images`, the pod's images in the engine's registry are deleted once its namespace is gone. */
  async remove(podId: string, options: RemoveOptions = {}): Promise<void> {
    assertPodId(podId);
    const name = this.ns(podId);
    const images = options.images && this.registry ? await this.registryImagesOf(podId) : [];
    try {
      // Foreground: the namespace stays (Terminating) until everything in it is gone, PVCs included.
      await ignore404(this.core.deleteNamespace({ name, propagationPolicy: "Foreground" }));
    } catch (err) {
      throw failure(`delete namespace ${name}`, err);
    }
    await this.waitFor(
      `namespace ${name} to be deleted`,
      "/api/v1/namespaces",
      { fieldSelector: `metadata.name=${name}` },
      async () => {
        const ns = await ignore404(this.core.readNamespace({ name }));
        return ns === undefined || (ns.metadata?.resourceVersion ?? "0");
      },
      this.options.goneTimeoutMs ?? 120_000,
    );
    // Best effort: a registry that refuses deletes keeps them until its operator collects them; the pod is gone.
    for (const ref of images) await this.registry?.remove(ref).catch(() => undefined);
  }

  /** The images of the pod's Deployment that this engine pushed (the pod's own repositories of the registry). */
  private async registryImagesOf(podId: string): Promise<string[]> {
    const d = await ignore404(
      this.apps.readNamespacedDeployment({ name: DEPLOYMENT, namespace: this.ns(podId) }),
    ).catch(() => undefined);
    const refs = (d?.spec?.template.spec?.containers ?? []).map((c) => c.image ?? "");
    return [...new Set(refs.filter((r) => this.registry?.owns(r, podId)))];
  }

  /**
   * Changes spec.replicas through the scale subresource with the resourceVersion read: a concurrent writer
   * (KEDA, an operator's kubectl) makes the API server answer 409, and the change is redone on fresh state.
   * Server-side apply of a partial Deployment is not used here: with our field manager it would drop every
   * field the partial object leaves out.
   */
  private async setReplicas(podId: string, replicas: 0 | 1): Promise<void> {
    const namespace = this.ns(podId);
    for (let attempt = 0; ; attempt++) {
      let scale: Awaited<ReturnType<AppsV1Api["readNamespacedDeploymentScale"]>> | undefined;
      try {
        scale = await ignore404(this.apps.readNamespacedDeploymentScale({ name: DEPLOYMENT, namespace }));
      } catch (err) {
        throw failure(`read scale of pod ${podId}`, err);
      }
      if (!scale) throw new EngineError("NOT_FOUND", `pod ${podId} has no deployment`);
      if (scale.spec?.replicas === replicas) return;
      try {
        await this.apps.replaceNamespacedDeploymentScale({
          name: DEPLOYMENT,
          namespace,
          body: { ...scale, spec: { ...scale.spec, replicas } },
        });
        return;
      } catch (err) {
        if (httpCode(err) === 409 && attempt < CONFLICT_RETRIES) continue;
        throw failure(`scale pod ${podId} to ${replicas}`, err);
      }
    }
  }

  private deploymentSettled(d: V1Deployment | undefined, replicas: number): boolean {
    if (!d) return false;
    const st = d.status ?? {};
    const observed = (st.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
    if (replicas === 0) return observed && (st.replicas ?? 0) === 0;
    return (
      observed &&
      (st.replicas ?? 0) === replicas &&
      (st.updatedReplicas ?? 0) === replicas &&
      (st.readyReplicas ?? 0) === replicas
    );
  }

  /** Waits, watching the Deployment, until its controller reports `replicas` ready (or none left). */
  private async waitForReplicas(podId: string, replicas: 0 | 1): Promise<void> {
    const namespace = this.ns(podId);
    try {
      await this.waitFor(
        `pod ${podId} to have ${replicas} ready replica(s)`,
        `/apis/apps/v1/namespaces/${namespace}/deployments`,
        { fieldSelector: `metadata.name=${DEPLOYMENT}` },
        async () => {
          const d = await ignore404(this.apps.readNamespacedDeployment({ name: DEPLOYMENT, namespace }));
          if (!d) throw new EngineError("NOT_FOUND", `pod ${podId} has no deployment`);
          return this.deploymentSettled(d, replicas) || (d.metadata?.resourceVersion ?? "0");
        },
        replicas === 0 ? (this.options.goneTimeoutMs ?? 120_000) : (this.options.readyTimeoutMs ?? 300_000),
      );
    } catch (err) {
      if (!(err instanceof EngineError) || err.code !== "ENGINE_FAILURE") throw err;
      const pods = await this.podsOf(podId).catch(() => [] as V1Pod[]);
      const why = notReadyReasons(pods);
      throw new EngineError("ENGINE_FAILURE", why.length ? `${err.message}: ${why.join("; ")}` : err.message);
    }
  }

  /**
   * Reads state with `check`; until it says done (true) it returns the resourceVersion it read, and a watch
   * of `path` from that version wakes the next check: nothing that changed after the read is missed. A watch
   * the server ends (its timeout, 410 Gone) just leads to a fresh read.
   */
  private async waitFor(
    what: string,
    path: string,
    query: Record<string, string>,
    check: () => Promise<true | string>,
    timeoutMs: number,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.closed) throw new EngineError("ENGINE_UNAVAILABLE", `engine closed while waiting for ${what}`);
      let seen: true | string;
      try {
        seen = await check();
      } catch (err) {
        throw failure(`waiting for ${what}`, err);
      }
      if (seen === true) return;
      const left = deadline - Date.now();
      if (left <= 0) throw new EngineError("ENGINE_FAILURE", `timed out waiting for ${what}`);
      await this.nextEvent(path, { ...query, resourceVersion: seen }, Math.min(left, 30_000));
    }
  }

  /** Resolves on the first event of a watch (or when it ends, fails or `ms` pass). */
  private nextEvent(path: string, query: Record<string, string>, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let ac: AbortController | undefined;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        if (ac) {
          this.open.delete(ac);
          ac.abort();
        }
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.watcher
        .watch(path, { ...query, timeoutSeconds: Math.ceil(ms / 1000) }, finish, finish)
        .then((c) => {
          ac = c;
          this.open.add(c);
          if (finished) c.abort();
        })
        .catch(finish);
    });
  }

  // ---------------------------------------------------------------- status

  private async podsOf(podId: string): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({
      namespace: this.ns(podId),
      labelSelector: `${K8S_LABEL.pod}=${podId}`,
    });
    return list.items.filter((p) => !p.metadata?.deletionTimestamp);
  }

  async status(podId: string): Promise<PodStatus> {
    assertPodId(podId);
    const namespace = this.ns(podId);
    let deployment: V1Deployment | undefined;
    let pods: V1Pod[];
    try {
      deployment = await ignore404(this.apps.readNamespacedDeployment({ name: DEPLOYMENT, namespace }));
      pods = deployment ? await this.podsOf(podId) : [];
    } catch (err) {
      throw failure(`status of pod ${podId}`, err);
    }
    if (!deployment) return { podId, running: false, containers: [] };
    // One replica per pod: the newest pod is the one the pod is (an old one may still be terminating).
    pods.sort(
      (a, b) =>
        (toDate(b.metadata?.creationTimestamp)?.getTime() ?? 0) -
        (toDate(a.metadata?.creationTimestamp)?.getTime() ?? 0),
    );
    const pod = pods[0];
    const specs = deployment.spec?.template.spec?.containers ?? [];
    const containers: ContainerStatus[] = specs.map((c) => {
      const s = pod?.status?.containerStatuses?.find((x) => x.name === c.name);
      const state: ContainerState = pod ? containerState(s) : "missing";
      const hasCheck = Boolean(c.readinessProbe ?? c.livenessProbe);
      const term = s?.state?.terminated ?? s?.lastState?.terminated;
      return {
        name: c.name,
        id: s?.containerID ?? "",
        image: c.image ?? "",
        state,
        health: !hasCheck ? "none" : state !== "running" ? "unhealthy" : s?.ready ? "healthy" : "starting",
        exitCode: state === "running" || !term ? null : term.exitCode,
        restarts: s?.restartCount ?? 0,
        startedAt: toDate(s?.state?.running?.startedAt ?? s?.state?.terminated?.startedAt),
        finishedAt: toDate(s?.state?.terminated?.finishedAt),
        ip: state === "running" ? (pod?.status?.podIP ?? null) : null,
        // Ports are reached through the pod's Services (the gateway, NodePorts), not published per container.
        ports: [],
      };
    });
    containers.sort((a, b) => a.name.localeCompare(b.name));
    return {
      podId,
      running: containers.length > 0 && containers.every((c) => c.state === "running"),
      containers,
    };
  }

  // ---------------------------------------------------------------- logs

  async *logs(podId: string, options: LogOptions = {}): AsyncGenerator<LogLine> {
    assertPodId(podId);
    const pods = await this.podsOf(podId).catch((err) => {
      throw failure(`logs of pod ${podId}`, err);
    });
    const pod = pods[0];
    if (!pod?.metadata?.name) return;
    const names = (pod.spec?.containers ?? [])
      .map((c) => c.name)
      .filter((n) => !options.containers || options.containers.includes(n));
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const sources = names.map((c) =>
        this.containerLogs(this.ns(podId), pod.metadata?.name ?? "", c, options, ac.signal),
      );
      if (options.follow) {
        yield* mergeAsync(sources, ac.signal);
      } else {
        const all: LogLine[] = [];
        for (const s of sources) for await (const l of s) all.push(l);
        all.sort((a, b) => a.time.getTime() - b.time.getTime());
        yield* all;
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      ac.abort();
    }
  }

  /**
   * One container's log with kubelet timestamps; Kubernetes does not keep stdout and stderr apart. The request
   * is made here rather than with client-node's Log, whose piped stream throws an uncaught AbortError when a
   * followed log is cancelled.
   */
  private async *containerLogs(
    namespace: string,
    pod: string,
    container: string,
    options: LogOptions,
    signal: AbortSignal,
  ): AsyncGenerator<LogLine> {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) throw new EngineError("ENGINE_UNAVAILABLE", "kubeconfig has no current cluster");
    const url = new URL(`${cluster.server}/api/v1/namespaces/${namespace}/pods/${pod}/log`);
    url.searchParams.set("container", container);
    url.searchParams.set("timestamps", "true");
    url.searchParams.set("follow", String(options.follow ?? false));
    if (options.since) url.searchParams.set("sinceTime", options.since.toISOString());
    if (options.tail !== undefined) url.searchParams.set("tailLines", String(options.tail));
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    await this.kubeConfig.applySecurityAuthentication(ctx);
    let body: AsyncIterable<Uint8Array>;
    try {
      const res = await fetch(url, { headers: ctx.getHeaders(), dispatcher: ctx.getDispatcher(), signal });
      if (res.status !== 200 || !res.body) {
        const text = await res.text().catch(() => "");
        throw Object.assign(new Error(`HTTP ${res.status}`), { code: res.status, body: text });
      }
      body = res.body;
    } catch (err) {
      if (signal.aborted) return;
      throw failure(`logs of ${namespace}/${pod}/${container}`, err);
    }
    const decoder = new TextDecoder();
    let rest = "";
    try {
      for await (const chunk of body) {
        rest += decoder.decode(chunk, { stream: true });
        const lines = rest.split("\n");
        rest = lines.pop() ?? "";
        for (const l of lines) yield this.logLine(container, l);
      }
    } catch (err) {
      if (!signal.aborted) throw failure(`logs of ${namespace}/${pod}/${container}`, err);
      return;
    }
    if (rest) yield this.logLine(container, rest);
  }

  private logLine(container: string, raw: string): LogLine {
    // "2026-12-07T18:00:00.123456789Z text": RFC 3339 with nanoseconds, which Date parses once cut to ms.
    const sp = raw.indexOf(" ");
    const time = new Date(sp > 0 ? raw.slice(0, sp).replace(/(\.\d{3})\d+/, "$1") : Number.NaN);
    if (Number.isNaN(time.getTime())) return { container, stream: "stdout", time: new Date(), line: raw };
    return { container, stream: "stdout", time, line: raw.slice(sp + 1) };
  }

  // ---------------------------------------------------------------- what this engine leaves to the cluster

  async stats(podId: string): Promise<PodStats> {
    assertPodId(podId);
    // metrics.k8s.io reports rates (nanocores now), not the cumulative counters PodStats carries.
    throw new EngineError(
      "ENGINE_FAILURE",
      "stats: the kubernetes engine has no cumulative CPU and network counters (metrics.k8s.io reports rates)",
    );
  }

  /**
   * Pushes the image to the engine's registry by digest (kubernetes-registry.ts); the ref it returns,
   * `REPOSITORY/<pod>/<container>@sha256:…`, is what the pod's objects name, so the nodes pull exactly it.
   */
  async loadImage(podId: string, container: string, source: ImageSource): Promise<LoadedImage> {
    assertPodId(podId);
    if (!this.registry)
      throw new EngineError(
        "IMAGE_LOAD_FAILED",
        `cannot load the image of ${podId}/${container}: the kubernetes engine has no registry to push it to ` +
          "(set engine.registry)",
      );
    return this.registry.push(podId, container, source);
  }

  /** Deletes an image this engine pushed; any other reference is not ours and is left alone. */
  async removeImage(ref: string): Promise<void> {
    await this.registry?.remove(ref);
  }

  // ---------------------------------------------------------------- reconciliation

  async listPods(): Promise<ManagedPod[]> {
    const out: ManagedPod[] = [];
    let ids: string[];
    try {
      ids = await this.applier.listPods();
    } catch (err) {
      throw failure("list pods", err);
    }
    for (const podId of ids) {
      const namespace = this.ns(podId);
      const d = await ignore404(this.apps.readNamespacedDeployment({ name: DEPLOYMENT, namespace })).catch(
        () => undefined,
      );
      const claims = await this.core
        .listNamespacedPersistentVolumeClaim({ namespace, labelSelector: `${K8S_LABEL.pod}=${podId}` })
        .catch(() => ({ items: [] }));
      out.push({
        podId,
        containers: (d?.spec?.template.spec?.containers ?? []).map((c) => c.name),
        networks: [namespace],
        volumes: claims.items.map((c) => c.metadata?.name ?? "").filter(Boolean),
        images: [
          ...new Set(
            (d?.spec?.template.spec?.containers ?? [])
              .map((c) => c.image ?? "")
              .filter((r) => this.registry?.owns(r, podId)),
          ),
        ],
      });
    }
    return out.sort((a, b) => a.podId.localeCompare(b.podId));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.open) c.abort();
    this.open.clear();
  }
}
