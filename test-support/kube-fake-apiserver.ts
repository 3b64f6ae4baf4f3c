// FAKE Kubernetes API server, for tests only: no kube-apiserver, kind or k3s can run on this machine.
//
// It is a real HTTP server speaking the Kubernetes REST API for the resources the provider's KubernetesEngine
// uses, and it behaves as an API server does where the engine depends on it:
// - every object it stores is validated against the Kubernetes OpenAPI schemas (kubernetes-models' validators
//   are generated from the upstream spec; KEDA's HTTPScaledObject against a schema written from its CRD):
//   an invalid object is answered 422 Invalid and not stored;
// - resourceVersions are one global counter; a PUT (object or scale subresource) carrying a stale
//   resourceVersion is answered 409 Conflict;
// - server-side apply (application/apply-patch+yaml, fieldManager required) replaces what the manager applied
//   before; a field last written by another manager (spec.replicas through /scale) is kept when the applied
//   configuration leaves it out and is a 409 Conflict when the apply changes it without force;
// - watch streams ADDED/MODIFIED/DELETED events from a resourceVersion (history is kept, never compacted);
// - deletion honours propagationPolicy: Foreground keeps the owner (with deletionTimestamp) until its
//   dependents are gone; a namespace goes Terminating, its contents are deleted, then the namespace;
//   creating in a terminating namespace is 403, in a missing one 404; reading a missing object is 404.
//
// It cannot run containers. Its stand-ins for the deployment controller, scheduler and kubelet (on unless
// `simulateWorkloads: false`) create a Pod per desired replica straight from the Deployment's template
// (no ReplicaSet in between), set container statuses as a kubelet would report them (running and ready, or
// waiting with a reason the test chooses), keep the Deployment's status in step, and serve log lines the test
// appends. Nothing here pulls an image, starts a process or enforces a network policy.
import { createHash, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { Deployment } from "kubernetes-models/apps/v1";
import { Scale } from "kubernetes-models/autoscaling/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { Namespace, PersistentVolumeClaim, Pod, Secret, Service } from "kubernetes-models/v1";
import { parse as parseYaml } from "yaml";
import { validateHTTPScaledObject } from "./kube-keda-schema.js";

// biome-ignore lint/suspicious/noExplicitAny: API objects are free-form JSON walked by path
export type Obj = Record<string, any>;

interface ResourceType {
  group: string; // "" for the core group
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  validate: (o: Obj) => void;
}

// kubernetes-models' validate() throws with the schema errors; its constructors take the object as is.
const model = (C: new (data: never) => { validate(): void }) => (o: Obj) => new C(o as never).validate();

const RESOURCES: ResourceType[] = [
  {
    group: "",
    version: "v1",
    plural: "namespaces",
    kind: "Namespace",
    namespaced: false,
    validate: model(Namespace),
  },
  { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true, validate: model(Secret) },
  {
    group: "",
    version: "v1",
    plural: "persistentvolumeclaims",
    kind: "PersistentVolumeClaim",
    namespaced: true,
    validate: model(PersistentVolumeClaim),
  },
  {
    group: "",
    version: "v1",
    plural: "services",
    kind: "Service",
    namespaced: true,
    validate: model(Service),
  },
  { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true, validate: model(Pod) },
  {
    group: "apps",
    version: "v1",
    plural: "deployments",
    kind: "Deployment",
    namespaced: true,
    validate: model(Deployment),
  },
  {
    group: "networking.k8s.io",
    version: "v1",
    plural: "networkpolicies",
    kind: "NetworkPolicy",
    namespaced: true,
    validate: model(NetworkPolicy),
  },
  {
    group: "http.keda.sh",
    version: "v1alpha1",
    plural: "httpscaledobjects",
    kind: "HTTPScaledObject",
    namespaced: true,
    validate: validateHTTPScaledObject,
  },
];

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string;
  body: string;
  status: number;
}

interface WatchEvent {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  rt: ResourceType;
  obj: Obj;
}

interface Watcher {
  rt: ResourceType;
  ns: string | undefined;
  match: (o: Obj) => boolean;
  send: (e: WatchEvent) => void;
}

export interface FakeWaiting {
  reason: string;
  message?: string;
}

export interface FakeKubeApiServerOptions {
  /** Run the stand-ins for the deployment controller, scheduler and kubelet (default true). */
  simulateWorkloads?: boolean;
  /** How long a deleted pod of a scaled-down Deployment stays terminating (default 200 ms). */
  terminationGraceMs?: number;
}

const keyOf = (rt: ResourceType, ns: string | undefined, name: string) =>
  `${rt.group}/${rt.plural}/${ns ?? ""}/${name}`;
const apiVersionOf = (rt: ResourceType) => (rt.group ? `${rt.group}/${rt.version}` : rt.version);
const clone = <T>(o: T): T => structuredClone(o);

// An image reference as the kubelet parses it (distribution's reference grammar): [domain[:port]/]path[:tag][@digest].
const REF_DOMAIN = String.raw`(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?`;
const REF_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*";
const IMAGE_REF_RE = new RegExp(
  String.raw`^${REF_DOMAIN}${REF_COMPONENT}(?:/${REF_COMPONENT})*(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`,
);

/** Why the kubelet would not pull `image` (InvalidImageName), or undefined. */
function invalidImage(image: unknown): FakeWaiting | undefined {
  if (typeof image === "string" && image.length <= 255 && IMAGE_REF_RE.test(image)) return undefined;
  return {
    reason: "InvalidImageName",
    message: `couldn't parse image reference ${JSON.stringify(image)}: invalid reference format`,
  };
}

export class FakeKubeApiServer {
  readonly requests: RecordedRequest[] = [];
  /** Deletions in the order the fake carried them out ("Kind ns/name"). */
  readonly deletions: string[] = [];
  /** The next Pods the fake kubelet reports start waiting with this reason instead of running. */
  waiting: FakeWaiting | undefined;
  /** Runs before a request is handled (a test's way to race a concurrent writer against the engine). */
  beforeRequest: ((method: string, path: string) => void) | undefined;

  private readonly store = new Map<string, Obj>();
  private readonly history: WatchEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly logs = new Map<string, { time: Date; line: string }[]>();
  private readonly logFollowers = new Map<string, Set<(l: { time: Date; line: string } | null) => void>>();
  /** Keys of Deployments whose spec.replicas was last written through /scale (another field manager). */
  private readonly replicasFromScale = new Set<string>();
  private rv = 1;
  private podIp = 10;
  private readonly server = http.createServer((req, res) => {
    this.handle(req, res).catch((err) => this.fail(res, err));
  });

  constructor(private readonly options: FakeKubeApiServerOptions = {}) {}

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const set of this.logFollowers.values()) for (const f of set) f(null);
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---------------------------------------------------------------- test-facing helpers

  get(kind: string, namespace: string | undefined, name: string): Obj | undefined {
    const rt = RESOURCES.find((r) => r.kind === kind);
    if (!rt) throw new Error(`the fake serves no ${kind}`);
    const o = this.store.get(keyOf(rt, rt.namespaced ? namespace : undefined, name));
    return o ? clone(o) : undefined;
  }

  list(kind: string, namespace?: string): Obj[] {
    const rt = RESOURCES.find((r) => r.kind === kind);
    if (!rt) throw new Error(`the fake serves no ${kind}`);
    return [...this.store.values()]
      .filter((o) => o.kind === kind && (namespace === undefined || o.metadata.namespace === namespace))
      .map(clone);
  }

  /** A line the container "wrote" (the fake runs no process: the test writes what it would print). */
  appendLog(namespace: string, pod: string, container: string, line: string): void {
    const k = `${namespace}/${pod}/${container}`;
    const entry = { time: new Date(), line };
    const list = this.logs.get(k) ?? [];
    list.push(entry);
    this.logs.set(k, list);
    for (const f of this.logFollowers.get(k) ?? []) f(entry);
  }

  /** The kubelet's report that the waiting containers of a namespace's pods now run and are ready. */
  kubeletReady(namespace: string): void {
    const prt = RESOURCES.find((r) => r.kind === "Pod")!;
    for (const p of this.list("Pod", namespace)) {
      const now = new Date().toISOString();
      p.status.phase = "Running";
      p.status.conditions = [
        { type: "PodScheduled", status: "True" },
        { type: "Ready", status: "True" },
      ];
      p.status.containerStatuses = p.status.containerStatuses.map((c: Obj) => ({
        ...c,
        imageID: `fake-image://${c.image}`,
        containerID: `fake://${p.metadata.uid}/${c.name}`,
        ready: true,
        started: true,
        state: { running: { startedAt: now } },
      }));
      this.put(prt, keyOf(prt, namespace, p.metadata.name), p, "MODIFIED");
    }
    for (const d of this.list("Deployment", namespace)) this.reconcileDeployment(namespace, d.metadata.name);
  }

  /** Another client's write to an object (bumps its resourceVersion): what a concurrent writer does. */
  touch(kind: string, namespace: string | undefined, name: string): void {
    const rt = RESOURCES.find((r) => r.kind === kind);
    if (!rt) throw new Error(`the fake serves no ${kind}`);
    const k = keyOf(rt, rt.namespaced ? namespace : undefined, name);
    const o = this.store.get(k);
    if (!o) throw new Error(`no ${kind} ${namespace}/${name}`);
    o.metadata.annotations = { ...(o.metadata.annotations ?? {}), "fake.test/touched": String(this.rv) };
    this.put(rt, k, o, "MODIFIED");
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString();
    const url = new URL(req.url ?? "/", "http://fake");
    const method = req.method ?? "GET";
    const record: RecordedRequest = {
      method,
      path: url.pathname,
      query: url.searchParams,
      contentType: req.headers["content-type"] ?? "",
      body,
      status: 0,
    };
    this.requests.push(record);
    res.on("finish", () => {
      record.status = res.statusCode;
    });
    this.beforeRequest?.(method, url.pathname);
    res.setHeader("content-type", "application/json");

    const discovery = this.discovery(url.pathname);
    if (discovery && method === "GET") return this.send(res, 200, discovery);
    const route = this.route(url.pathname);
    if (!route) throw new ApiError(404, "NotFound", `the server could not find the requested resource`);
    const { rt, ns, name, sub } = route;
    if (rt.namespaced && ns === undefined && name !== undefined)
      throw new ApiError(404, "NotFound", "namespaced resource needs a namespace");
    const q = url.searchParams;

    if (sub === "log" && rt.plural === "pods" && method === "GET" && name && ns)
      return this.serveLog(res, ns, name, q);
    if (sub === "scale" && rt.plural === "deployments" && name && ns) {
      if (method === "GET") return this.send(res, 200, this.scaleOf(this.mustGet(rt, ns, name)));
      if (method === "PUT") return this.send(res, 200, this.replaceScale(rt, ns, name, body));
    }
    if (sub !== undefined) throw new ApiError(404, "NotFound", `no subresource ${sub} on ${rt.plural}`);

    if (method === "GET" && name === undefined) {
      if (q.get("watch") === "true" || q.get("watch") === "1") return this.serveWatch(req, res, rt, ns, q);
      return this.send(res, 200, this.listOf(rt, ns, q));
    }
    if (method === "GET" && name) return this.send(res, 200, this.mustGet(rt, ns, name));
    if (method === "PATCH" && name) {
      if (!record.contentType.startsWith("application/apply-patch+yaml"))
        throw new ApiError(415, "UnsupportedMediaType", `the fake only serves server-side apply patches`);
      const { status, obj } = this.serverSideApply(rt, ns, name, body, q);
      return this.send(res, status, obj);
    }
    if (method === "PUT" && name) return this.send(res, 200, this.replace(rt, ns, name, body));
    if (method === "POST" && name === undefined)
      return this.send(res, 201, this.create(rt, ns, JSON.parse(body)));
    if (method === "DELETE" && name) {
      const opts = body ? (JSON.parse(body) as Obj) : {};
      const policy =
        (opts.propagationPolicy as string | undefined) ?? q.get("propagationPolicy") ?? "Background";
      return this.send(res, 200, this.deleteObject(rt, ns, name, policy));
    }
    throw new ApiError(405, "MethodNotAllowed", `${method} is not supported on ${url.pathname}`);
  }

  private send(res: http.ServerResponse, status: number, body: unknown): void {
    res.statusCode = status;
    res.end(JSON.stringify(body));
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    const e =
      err instanceof ApiError
        ? err
        : new ApiError(500, "InternalError", String((err as Error)?.message ?? err));
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.setHeader("content-type", "application/json");
    this.send(res, e.code, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: e.message,
      reason: e.reason,
      code: e.code,
    });
  }

  private discovery(path: string): Obj | undefined {
    const gv = RESOURCES.filter(
      (r) => (r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`) === path,
    );
    if (gv.length === 0) return undefined;
    return {
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: apiVersionOf(gv[0]!),
      resources: gv.map((r) => ({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        kind: r.kind,
        namespaced: r.namespaced,
        verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
      })),
    };
  }

  private route(path: string): { rt: ResourceType; ns?: string; name?: string; sub?: string } | undefined {
    const parts = path.split("/").filter(Boolean);
    let group = "";
    let rest: string[];
    if (parts[0] === "api") {
      rest = parts.slice(2);
      if (parts[1] !== "v1") return undefined;
    } else if (parts[0] === "apis") {
      group = parts[1] ?? "";
      rest = parts.slice(3);
    } else return undefined;
    const version = parts[0] === "api" ? parts[1] : parts[2];
    const find = (plural: string | undefined) =>
      RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
    if (rest[0] === "namespaces" && rest.length >= 3 && find(rest[2])?.namespaced) {
      const [, ns, plural, name, sub] = rest;
      const rt = find(plural)!;
      return { rt, ...(ns ? { ns } : {}), ...(name ? { name } : {}), ...(sub ? { sub } : {}) };
    }
    const rt = find(rest[0]);
    if (!rt) return undefined;
    return { rt, ...(rest[1] ? { name: rest[1] } : {}), ...(rest[2] ? { sub: rest[2] } : {}) };
  }

  // ---------------------------------------------------------------- storage

  private mustGet(rt: ResourceType, ns: string | undefined, name: string): Obj {
    const o = this.store.get(keyOf(rt, ns, name));
    if (!o) {
      const what = rt.group ? `${rt.plural}.${rt.group}` : rt.plural;
      throw new ApiError(404, "NotFound", `${what} "${name}" not found`);
    }
    return clone(o);
  }

  private put(rt: ResourceType, key: string, obj: Obj, type: WatchEvent["type"]): Obj {
    const rv = ++this.rv;
    obj.metadata.resourceVersion = String(rv);
    if (type === "DELETED") this.store.delete(key);
    else this.store.set(key, obj);
    const event: WatchEvent = { rv, type, rt, obj: clone(obj) };
    this.history.push(event);
    for (const w of this.watchers) {
      if (w.rt === rt && (w.ns === undefined || w.ns === obj.metadata.namespace) && w.match(obj))
        w.send(event);
    }
    return clone(obj);
  }

  /** Everything an API server checks before storing: names, namespace state, the OpenAPI schema. */
  private admit(rt: ResourceType, ns: string | undefined, obj: Obj): void {
    const name = obj.metadata?.name as string | undefined;
    if (obj.kind !== rt.kind || obj.apiVersion !== apiVersionOf(rt))
      throw new ApiError(
        400,
        "BadRequest",
        `body is ${obj.apiVersion}/${obj.kind}, the URL is for ${rt.kind}`,
      );
    const nameRe = rt.kind === "Namespace" || rt.kind === "Service" ? DNS_LABEL : DNS_SUBDOMAIN;
    if (!name || !nameRe.test(name))
      throw new ApiError(
        422,
        "Invalid",
        `${rt.kind} "${name ?? ""}" is invalid: metadata.name: Invalid value`,
      );
    if (rt.namespaced && obj.metadata.namespace !== ns)
      throw new ApiError(
        400,
        "BadRequest",
        "the namespace of the object does not match the namespace of the URL",
      );
    try {
      rt.validate(obj);
    } catch (err) {
      throw new ApiError(422, "Invalid", `${rt.kind} "${name}" is invalid: ${(err as Error).message}`);
    }
  }

  private checkNamespaceWritable(rt: ResourceType, ns: string | undefined): void {
    if (!rt.namespaced) return;
    const n = this.store.get(keyOf(RESOURCES[0]!, undefined, ns ?? ""));
    if (!n) throw new ApiError(404, "NotFound", `namespaces "${ns}" not found`);
    if (n.metadata.deletionTimestamp)
      throw new ApiError(
        403,
        "Forbidden",
        `unable to create new content in namespace ${ns} because it is being terminated`,
      );
  }

  private withServerFields(rt: ResourceType, obj: Obj, old: Obj | undefined): Obj {
    const meta = obj.metadata;
    meta.uid = old?.metadata.uid ?? randomUUID();
    meta.creationTimestamp = old?.metadata.creationTimestamp ?? new Date().toISOString();
    if (old?.metadata.deletionTimestamp) meta.deletionTimestamp = old.metadata.deletionTimestamp;
    if (rt.kind === "Deployment") {
      obj.spec.replicas ??= 1;
      const changed = JSON.stringify(old?.spec) !== JSON.stringify(obj.spec);
      meta.generation = (old?.metadata.generation ?? 0) + (changed || !old ? 1 : 0);
      obj.status = old?.status ?? {};
    } else if (rt.kind === "Namespace") {
      obj.status = old?.status ?? { phase: "Active" };
      meta.labels = { ...meta.labels, "kubernetes.io/metadata.name": meta.name };
    } else if (rt.kind === "Service") {
      obj.spec.clusterIP = old?.spec?.clusterIP ?? `10.96.0.${this.podIp++ % 250}`;
    } else if (old?.status) obj.status = old.status;
    return obj;
  }

  private create(rt: ResourceType, ns: string | undefined, body: Obj): Obj {
    const name = body.metadata?.name as string;
    if (this.store.has(keyOf(rt, ns, name)))
      throw new ApiError(409, "AlreadyExists", `${rt.plural} "${name}" already exists`);
    this.checkNamespaceWritable(rt, ns);
    const obj = this.withServerFields(rt, clone(body), undefined);
    this.admit(rt, ns, obj);
    const out = this.put(rt, keyOf(rt, ns, name), obj, "ADDED");
    this.afterWrite(rt, ns, name);
    return out;
  }

  private replace(rt: ResourceType, ns: string | undefined, name: string, text: string): Obj {
    const body = JSON.parse(text) as Obj;
    const key = keyOf(rt, ns, name);
    const old = this.store.get(key);
    if (!old) throw new ApiError(404, "NotFound", `${rt.plural} "${name}" not found`);
    const sent = body.metadata?.resourceVersion as string | undefined;
    if (sent !== undefined && sent !== old.metadata.resourceVersion) throw this.conflict(rt, name);
    const obj = this.withServerFields(rt, clone(body), old);
    this.admit(rt, ns, obj);
    if (rt.kind === "Deployment") this.replicasFromScale.delete(key);
    const out = this.put(rt, key, obj, "MODIFIED");
    this.afterWrite(rt, ns, name);
    return out;
  }

  private conflict(rt: ResourceType, name: string): ApiError {
    const what = rt.group ? `${rt.plural}.${rt.group}` : rt.plural;
    return new ApiError(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${what} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    );
  }

  private serverSideApply(
    rt: ResourceType,
    ns: string | undefined,
    name: string,
    text: string,
    q: URLSearchParams,
  ): { status: number; obj: Obj } {
    if (!q.get("fieldManager"))
      throw new ApiError(
        400,
        "BadRequest",
        "PATCH, fieldManager: Required value: is required for apply patch",
      );
    const applied = parseYaml(text) as Obj;
    if (applied?.metadata?.name !== name)
      throw new ApiError(400, "BadRequest", "the name of the object does not match the name on the URL");
    const key = keyOf(rt, ns, name);
    const old = this.store.get(key);
    if (!old) {
      this.checkNamespaceWritable(rt, ns);
      const obj = this.withServerFields(rt, clone(applied), undefined);
      this.admit(rt, ns, obj);
      const out = this.put(rt, key, obj, "ADDED");
      this.afterWrite(rt, ns, name);
      return { status: 201, obj: out };
    }
    const obj = clone(applied);
    if (rt.kind === "Deployment" && this.replicasFromScale.has(key)) {
      if (obj.spec?.replicas === undefined) obj.spec = { ...obj.spec, replicas: old.spec.replicas };
      else if (obj.spec.replicas !== old.spec.replicas && q.get("force") !== "true")
        throw new ApiError(
          409,
          "Conflict",
          `Apply failed with 1 conflict: conflict with "scale" using apps/v1: .spec.replicas`,
        );
      else this.replicasFromScale.delete(key);
    }
    // The manager's earlier configuration is replaced: what it no longer applies is gone.
    const merged = this.withServerFields(rt, obj, old);
    merged.metadata = { ...merged.metadata, labels: merged.metadata.labels };
    this.admit(rt, ns, merged);
    const out = this.put(rt, key, merged, "MODIFIED");
    this.afterWrite(rt, ns, name);
    return { status: 200, obj: out };
  }

  private scaleOf(d: Obj): Obj {
    return {
      apiVersion: "autoscaling/v1",
      kind: "Scale",
      metadata: {
        name: d.metadata.name,
        namespace: d.metadata.namespace,
        uid: d.metadata.uid,
        resourceVersion: d.metadata.resourceVersion,
        creationTimestamp: d.metadata.creationTimestamp,
      },
      spec: { replicas: d.spec.replicas },
      status: {
        replicas: d.status?.replicas ?? 0,
        selector: Object.entries(d.spec.selector?.matchLabels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(","),
      },
    };
  }

  private replaceScale(rt: ResourceType, ns: string, name: string, text: string): Obj {
    const body = JSON.parse(text) as Obj;
    try {
      new Scale(body as never).validate();
    } catch (err) {
      throw new ApiError(422, "Invalid", `Scale "${name}" is invalid: ${(err as Error).message}`);
    }
    const key = keyOf(rt, ns, name);
    const old = this.store.get(key);
    if (!old) throw new ApiError(404, "NotFound", `deployments.apps "${name}" not found`);
    const sent = body.metadata?.resourceVersion as string | undefined;
    if (sent !== undefined && sent !== old.metadata.resourceVersion) throw this.conflict(rt, name);
    const obj = clone(old);
    obj.spec.replicas = body.spec?.replicas ?? 0;
    if (obj.spec.replicas !== old.spec.replicas) obj.metadata.generation = (old.metadata.generation ?? 0) + 1;
    this.admit(rt, ns, obj);
    this.replicasFromScale.add(key);
    const out = this.put(rt, key, obj, "MODIFIED");
    this.afterWrite(rt, ns, name);
    return this.scaleOf(out);
  }

  // ---------------------------------------------------------------- lists and watches

  private selectorMatch(q: URLSearchParams): (o: Obj) => boolean {
    const labels = (q.get("labelSelector") ?? "").split(",").filter(Boolean);
    const fields = (q.get("fieldSelector") ?? "").split(",").filter(Boolean);
    return (o) =>
      labels.every((s) => {
        const [k, v] = s.split("=") as [string, string | undefined];
        const have = o.metadata.labels?.[k];
        return v === undefined ? have !== undefined : have === v;
      }) &&
      fields.every((s) => {
        const [k, v] = s.split("=") as [string, string];
        if (k === "metadata.name") return o.metadata.name === v;
        if (k === "metadata.namespace") return o.metadata.namespace === v;
        throw new ApiError(400, "BadRequest", `field label not supported: ${k}`);
      });
  }

  private listOf(rt: ResourceType, ns: string | undefined, q: URLSearchParams): Obj {
    const match = this.selectorMatch(q);
    const items = [...this.store.values()]
      .filter((o) => o.kind === rt.kind && (ns === undefined || o.metadata.namespace === ns) && match(o))
      .map(clone);
    return {
      kind: `${rt.kind}List`,
      apiVersion: apiVersionOf(rt),
      metadata: { resourceVersion: String(this.rv) },
      items,
    };
  }

  private serveWatch(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    rt: ResourceType,
    ns: string | undefined,
    q: URLSearchParams,
  ): void {
    const match = this.selectorMatch(q);
    res.statusCode = 200;
    res.flushHeaders();
    const send = (e: WatchEvent) => res.write(`${JSON.stringify({ type: e.type, object: e.obj })}\n`);
    const from = q.get("resourceVersion");
    if (from && from !== "0") {
      for (const e of this.history)
        if (
          e.rv > Number(from) &&
          e.rt === rt &&
          (ns === undefined || e.obj.metadata.namespace === ns) &&
          match(e.obj)
        )
          send(e);
    } else {
      // No starting version: the current state as synthetic ADDED events, then changes.
      for (const o of this.listOf(rt, ns, q).items as Obj[])
        send({ rv: Number(o.metadata.resourceVersion), type: "ADDED", rt, obj: o });
    }
    const w: Watcher = { rt, ns, match, send };
    this.watchers.add(w);
    const end = () => {
      this.watchers.delete(w);
      clearTimeout(timer);
      if (!res.writableEnded) res.end();
    };
    const timer = setTimeout(end, Number(q.get("timeoutSeconds") ?? 1800) * 1000);
    req.on("close", end);
    res.on("close", end);
  }

  private serveLog(res: http.ServerResponse, ns: string, name: string, q: URLSearchParams): void {
    const pod = this.mustGet(RESOURCES.find((r) => r.kind === "Pod")!, ns, name);
    const container = q.get("container") ?? pod.spec.containers[0]?.name;
    if (!pod.spec.containers.some((c: Obj) => c.name === container))
      throw new ApiError(400, "BadRequest", `container ${container} is not valid for pod ${name}`);
    const k = `${ns}/${name}/${container}`;
    const stamps = q.get("timestamps") === "true";
    const since = q.get("sinceTime") ? new Date(q.get("sinceTime")!) : undefined;
    const fmt = (l: { time: Date; line: string }) => `${stamps ? `${l.time.toISOString()} ` : ""}${l.line}\n`;
    let lines = (this.logs.get(k) ?? []).filter((l) => !since || l.time >= since);
    const tail = q.get("tailLines");
    if (tail) lines = lines.slice(-Number(tail));
    res.setHeader("content-type", "text/plain");
    res.statusCode = 200;
    res.write(lines.map(fmt).join(""));
    if (q.get("follow") !== "true") {
      res.end();
      return;
    }
    const set = this.logFollowers.get(k) ?? new Set();
    this.logFollowers.set(k, set);
    const f = (l: { time: Date; line: string } | null) => {
      if (l === null) {
        set.delete(f);
        if (!res.writableEnded) res.end();
      } else res.write(fmt(l));
    };
    set.add(f);
    res.on("close", () => set.delete(f));
  }

  // ---------------------------------------------------------------- deletion

  private deleteObject(rt: ResourceType, ns: string | undefined, name: string, policy: string): Obj {
    if (!["Foreground", "Background", "Orphan"].includes(policy))
      throw new ApiError(400, "BadRequest", `propagationPolicy ${policy} is not valid`);
    const key = keyOf(rt, ns, name);
    const old = this.mustGet(rt, ns, name);
    if (rt.kind === "Namespace") {
      if (!old.metadata.deletionTimestamp) {
        old.metadata.deletionTimestamp = new Date().toISOString();
        old.spec = { finalizers: ["kubernetes"] };
        old.status = { phase: "Terminating" };
        const out = this.put(rt, key, old, "MODIFIED");
        // The namespace controller empties it, then the namespace goes.
        setImmediate(() => this.finalizeNamespace(name, policy));
        return out;
      }
      return old;
    }
    const dependents = this.dependentsOf(old);
    if (policy === "Foreground" && dependents.length > 0) {
      old.metadata.deletionTimestamp ??= new Date().toISOString();
      old.metadata.finalizers = ["foregroundDeletion"];
      const out = this.put(rt, key, old, "MODIFIED");
      setImmediate(() => {
        for (const d of dependents) this.remove(d, "Foreground");
        this.remove(this.store.get(key), "Foreground");
      });
      return out;
    }
    this.remove(old, policy);
    return { kind: "Status", apiVersion: "v1", status: "Success", details: { name, kind: rt.plural } };
  }

  private dependentsOf(owner: Obj): Obj[] {
    return [...this.store.values()].filter((o) =>
      (o.metadata.ownerReferences ?? []).some((r: Obj) => r.uid === owner.metadata.uid),
    );
  }

  private remove(obj: Obj | undefined, policy: string): void {
    if (!obj) return;
    const rt = RESOURCES.find((r) => r.kind === obj.kind)!;
    const key = keyOf(rt, obj.metadata.namespace, obj.metadata.name);
    const current = this.store.get(key);
    if (!current) return;
    const dependents = this.dependentsOf(current);
    if (policy !== "Orphan") for (const d of dependents) this.remove(d, policy);
    if (obj.kind === "Pod") {
      for (const c of current.spec.containers ?? []) {
        const k = `${obj.metadata.namespace}/${obj.metadata.name}/${c.name}`;
        for (const f of this.logFollowers.get(k) ?? []) f(null);
        this.logs.delete(k);
      }
    }
    this.replicasFromScale.delete(key);
    this.deletions.push(`${obj.kind} ${obj.metadata.namespace ?? ""}/${obj.metadata.name}`);
    this.put(rt, key, clone(current), "DELETED");
  }

  private finalizeNamespace(name: string, policy: string): void {
    // Workloads first (their pods with them), then everything else, then the namespace.
    const inside = [...this.store.values()].filter((o) => o.metadata.namespace === name);
    const order = (o: Obj) => (o.kind === "Deployment" ? 0 : o.kind === "Pod" ? 1 : 2);
    for (const o of inside.sort((a, b) => order(a) - order(b)))
      this.remove(o, policy === "Orphan" ? "Background" : policy);
    this.remove(this.store.get(keyOf(RESOURCES[0]!, undefined, name)), "Background");
  }

  // ---------------------------------------------------------------- stand-ins for controllers and kubelet

  private afterWrite(rt: ResourceType, ns: string | undefined, name: string): void {
    if (rt.kind !== "Deployment" || this.options.simulateWorkloads === false) return;
    setImmediate(() => this.reconcileDeployment(ns ?? "", name));
  }

  private reconcileDeployment(ns: string, name: string): void {
    const drt = RESOURCES.find((r) => r.kind === "Deployment")!;
    const prt = RESOURCES.find((r) => r.kind === "Pod")!;
    const dkey = keyOf(drt, ns, name);
    const d = this.store.get(dkey);
    if (!d || d.metadata.deletionTimestamp) return;
    const hash = createHash("sha256").update(JSON.stringify(d.spec.template)).digest("hex").slice(0, 10);
    const owned = this.dependentsOf(d).filter((o) => o.kind === "Pod" && !o.metadata.deletionTimestamp);
    const desired = d.spec.replicas as number;
    let current = owned.filter((p) => p.metadata.labels?.["pod-template-hash"] === hash);
    for (const p of owned) if (!current.includes(p)) this.terminate(p);
    while (current.length > desired) this.terminate(current.pop()!);
    while (current.length < desired) {
      const pod = this.podFor(d, hash);
      this.admit(prt, ns, pod);
      current.push(this.put(prt, keyOf(prt, ns, pod.metadata.name), pod, "ADDED"));
    }
    current = current.map((p) => this.store.get(keyOf(prt, ns, p.metadata.name))!);
    const ready = current.filter((p) =>
      (p.status.conditions ?? []).some((c: Obj) => c.type === "Ready" && c.status === "True"),
    ).length;
    const fresh = clone(d);
    fresh.status = {
      observedGeneration: d.metadata.generation,
      ...(current.length ? { replicas: current.length, updatedReplicas: current.length } : {}),
      ...(ready ? { readyReplicas: ready, availableReplicas: ready } : {}),
      ...(current.length - ready ? { unavailableReplicas: current.length - ready } : {}),
    };
    if (JSON.stringify(fresh.status) !== JSON.stringify(d.status)) this.put(drt, dkey, fresh, "MODIFIED");
  }

  /**
   * Graceful pod deletion as the kubelet does it: the pod is marked (deletionTimestamp) and disappears when
   * its containers have stopped, here after `terminationGraceMs`. The Deployment stops counting it at once.
   */
  private terminate(pod: Obj): void {
    const prt = RESOURCES.find((r) => r.kind === "Pod")!;
    const key = keyOf(prt, pod.metadata.namespace, pod.metadata.name);
    const p = this.store.get(key);
    if (!p || p.metadata.deletionTimestamp) return;
    const marked = clone(p);
    marked.metadata.deletionTimestamp = new Date().toISOString();
    marked.metadata.deletionGracePeriodSeconds = 30;
    this.put(prt, key, marked, "MODIFIED");
    setTimeout(() => this.remove(this.store.get(key), "Background"), this.options.terminationGraceMs ?? 200);
  }

  private podFor(d: Obj, hash: string): Obj {
    const now = new Date().toISOString();
    const uid = randomUUID();
    const containers = d.spec.template.spec.containers as Obj[];
    // As a kubelet: a reference it cannot parse is never pulled, and the pod stays pending.
    const waiting = this.waiting ?? containers.map((c) => invalidImage(c.image)).find((w) => w !== undefined);
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${d.metadata.name}-${hash}-${uid.slice(0, 5)}`,
        namespace: d.metadata.namespace,
        uid,
        creationTimestamp: now,
        labels: { ...d.spec.template.metadata?.labels, "pod-template-hash": hash },
        ownerReferences: [
          {
            apiVersion: "apps/v1",
            kind: "Deployment",
            name: d.metadata.name,
            uid: d.metadata.uid,
            controller: true,
          },
        ],
      },
      spec: { ...clone(d.spec.template.spec), nodeName: "fake-node" },
      status: {
        phase: waiting ? "Pending" : "Running",
        podIP: `10.244.0.${this.podIp++ % 250}`,
        startTime: now,
        conditions: [
          { type: "PodScheduled", status: "True" },
          { type: "Ready", status: waiting ? "False" : "True" },
        ],
        containerStatuses: containers.map((c) => ({
          name: c.name,
          image: c.image,
          // A runtime reports the digest it pulled; for a ref by digest that is the ref's own digest.
          imageID: waiting ? "" : String(c.image).includes("@") ? c.image : `fake-image://${c.image}`,
          ...(waiting ? {} : { containerID: `fake://${uid}/${c.name}` }),
          ready: !waiting,
          started: !waiting,
          restartCount: 0,
          state: waiting
            ? {
                waiting: { reason: waiting.reason, ...(waiting.message ? { message: waiting.message } : {}) },
              }
            : { running: { startedAt: now } },
        })),
      },
    };
  }
}

/** A kubeconfig for the fake at `server` (a bearer token it accepts; TLS not verified: the fake serves plain HTTP). */
export function fakeKubeConfig(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server, skipTLSVerify: true }],
    users: [{ name: "fake", token: "fake-token" }],
    contexts: [{ name: "fake", cluster: "fake", user: "fake" }],
    currentContext: "fake",
  });
  return kc;
}
