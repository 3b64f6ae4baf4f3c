// Kubernetes objects, validated against the Kubernetes OpenAPI schemas shipped by `kubernetes-models`
// (its validate() is generated from the upstream OpenAPI spec) and, for KEDA's CRD, against a schema written
// from the CRD. There is no API server here: KubernetesEngine runs against the FAKE API server of
// test-support/ (kube-fake-apiserver.ts), which validates what it stores and answers as an API server does
// for what the engine uses; it runs no containers.
import { type KubeConfig, KubernetesObjectApi, PatchStrategy } from "@kubernetes/client-node";
import { Deployment } from "kubernetes-models/apps/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { RuntimeClass } from "kubernetes-models/node.k8s.io/v1";
import { Namespace, PersistentVolumeClaim, Secret, Service } from "kubernetes-models/v1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FakeKubeApiServer,
  fakeKubeConfig,
  type RecordedRequest,
} from "../../../test-support/kube-fake-apiserver.js";
import { validateHTTPScaledObject } from "../../../test-support/kube-keda-schema.js";
import {
  EngineError,
  FIELD_MANAGER,
  KubernetesEngine,
  kubernetesObjects,
  orderedObjects,
  type PodSpec,
  runtimeClass,
  toWire,
} from "../src/index.js";

// Wire JSON is walked freely in assertions; a wrong path fails the assertion, not the compiler.
// biome-ignore lint/suspicious/noExplicitAny: see above
type Wire = Record<string, any>;

const res = { cpuMillis: 250, memoryBytes: 128 * 1024 * 1024, pids: 100 };
const secretBytes = new TextEncoder().encode("db-password\n");

const spec: PodSpec = {
  podId: "k8s-demo",
  containers: [
    {
      name: "web",
      image: "registry.provider.local/tpod-k8s-demo/web:0123456789ab",
      command: ["httpd"],
      args: ["-f", "-p", "8080"],
      env: { MODE: "prod" },
      workingDir: "/www",
      ports: [
        { containerPort: 8080, protocol: "http" },
        { containerPort: 5432, protocol: "tcp", hostPort: 30432 },
        // The same number on the other transport is a different port (DNS listens on 53/tcp and 53/udp).
        { containerPort: 5432, protocol: "udp", hostPort: 30433 },
      ],
      mounts: [
        { volume: "data", path: "/data" },
        { volume: "creds", path: "/run/secrets", readOnly: true },
        { volume: "scratch", path: "/tmp/scratch" },
      ],
      resources: res,
      healthCheck: {
        probe: { kind: "http", path: "/healthz", port: 8080 },
        intervalMs: 5000,
        timeoutMs: 1500,
        retries: 3,
        startPeriodMs: 20_000,
      },
    },
    {
      name: "worker",
      image: "registry.provider.local/tpod-k8s-demo/worker:ba9876543210",
      resources: res,
      mounts: [{ volume: "scratch", path: "/scratch" }],
      healthCheck: {
        probe: { kind: "exec", argv: ["test", "-f", "/tmp/ready"] },
        intervalMs: 2000,
        timeoutMs: 1000,
        retries: 2,
        startPeriodMs: 0,
      },
    },
  ],
  volumes: [
    { name: "data", kind: "persistent", sizeBytes: 1024 ** 3 },
    { name: "creds", kind: "secret", files: { "db.txt": secretBytes } },
    { name: "scratch", kind: "emptyDir" },
  ],
  scaling: { minReplicas: 0, idleSeconds: 300, hosts: ["k8s-demo.pods.provider.example"] },
};

const validators: Record<string, (o: Record<string, unknown>) => void> = {
  Namespace: (o) => new Namespace(o as never).validate(),
  Secret: (o) => new Secret(o as never).validate(),
  PersistentVolumeClaim: (o) => new PersistentVolumeClaim(o as never).validate(),
  Service: (o) => new Service(o as never).validate(),
  NetworkPolicy: (o) => new NetworkPolicy(o as never).validate(),
  Deployment: (o) => new Deployment(o as never).validate(),
  RuntimeClass: (o) => new RuntimeClass(o as never).validate(),
  HTTPScaledObject: (o) => validateHTTPScaledObject(o),
};

function validate(obj: Record<string, unknown>): void {
  const v = validators[obj.kind as string];
  if (!v) throw new Error(`no validator for ${String(obj.kind)}`);
  v(obj);
}

describe("Kubernetes objects for a PodSpec", () => {
  const objects = kubernetesObjects(spec, { runtimeClassName: "kata-qemu-snp", gatewayNamespace: "keda" });
  const wire = orderedObjects(objects).map(toWire);
  const byKindName = (kind: string, name: string) =>
    wire.find((o) => o.kind === kind && (o.metadata as { name: string }).name === name) as Wire;

  it("validates every generated object against the Kubernetes OpenAPI schemas (and KEDA's CRD schema)", () => {
    expect(wire.map((o) => o.kind)).toEqual([
      "Namespace",
      "NetworkPolicy",
      "NetworkPolicy",
      "NetworkPolicy",
      "NetworkPolicy",
      "NetworkPolicy",
      "NetworkPolicy",
      "Secret",
      "PersistentVolumeClaim",
      "Service",
      "Service",
      "Service",
      "Deployment",
      "HTTPScaledObject",
    ]);
    for (const o of wire) expect(() => validate(o), `${o.kind}`).not.toThrow();
    expect(() => validate(toWire(runtimeClass("kata-qemu-tdx")))).not.toThrow();
  });

  it("maps the pod faithfully: namespace, limits, probes, volumes, names, runtime class, scale-to-zero", () => {
    for (const o of wire) {
      if (o.kind !== "Namespace")
        expect((o.metadata as { namespace: string }).namespace).toBe("tpod-k8s-demo");
    }
    const dep = byKindName("Deployment", "pod");
    expect(dep.spec.replicas).toBeUndefined(); // KEDA owns replicas
    expect(dep.spec.strategy.type).toBe("Recreate");
    const pod = dep.spec.template.spec;
    expect(pod.runtimeClassName).toBe("kata-qemu-snp");
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.hostAliases).toEqual([{ ip: "127.0.0.1", hostnames: ["web", "worker"] }]);
    const web = pod.containers[0];
    expect(web.resources.limits).toEqual({ cpu: "250m", memory: String(128 * 1024 * 1024) });
    expect(web.command).toEqual(["httpd"]);
    expect(web.env).toEqual([{ name: "MODE", value: "prod" }]);
    expect(web.readinessProbe.httpGet).toEqual({ path: "/healthz", port: 8080 });
    expect(web.livenessProbe.failureThreshold).toBe(3);
    expect(web.startupProbe.failureThreshold).toBe(4);
    expect(pod.containers[1].livenessProbe.exec.command).toEqual(["test", "-f", "/tmp/ready"]);
    expect(pod.volumes).toEqual([
      { name: "data", persistentVolumeClaim: { claimName: "data-data" } },
      { name: "creds", secret: { secretName: "secret-creds", defaultMode: 0o444 } },
      { name: "scratch", emptyDir: {} },
    ]);
    const secret = byKindName("Secret", "secret-creds");
    expect(Buffer.from(secret.data["db.txt"], "base64").toString()).toBe("db-password\n");
    expect(byKindName("PersistentVolumeClaim", "data-data").spec.resources.requests.storage).toBe(
      String(1024 ** 3),
    );
    expect(byKindName("Service", "http").spec.ports).toEqual([
      { name: "http-8080", port: 8080, targetPort: 8080 },
    ]);
    expect(byKindName("Service", "tcp").spec.type).toBe("NodePort");
    expect(byKindName("Service", "tcp").spec.ports[0].nodePort).toBe(30432);
    expect(byKindName("Service", "udp").spec.type).toBe("NodePort");
    expect(byKindName("Service", "udp").spec.ports).toEqual([
      { name: "udp-5432", port: 5432, targetPort: 5432, protocol: "UDP", nodePort: 30433 },
    ]);
    expect(web.ports).toEqual([
      { containerPort: 8080, protocol: "TCP" },
      { containerPort: 5432, protocol: "TCP" },
      { containerPort: 5432, protocol: "UDP" },
    ]);
    expect(byKindName("NetworkPolicy", "allow-public-udp").spec.ingress[0].ports).toEqual([
      { protocol: "UDP", port: 5432 },
    ]);
    const so = byKindName("HTTPScaledObject", "pod");
    expect(so.spec).toMatchObject({
      hosts: ["k8s-demo.pods.provider.example"],
      scaleTargetRef: { name: "pod", service: "http", port: 8080 },
      replicas: { min: 0, max: 1 },
      scaledownPeriod: 300,
    });
  });

  it("isolates the namespace with network policies whose peers survive serialization", () => {
    const deny = byKindName("NetworkPolicy", "default-deny");
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ["Ingress", "Egress"] });
    const same = byKindName("NetworkPolicy", "allow-same-namespace");
    // client-node's model calls it `_from`: the wire form must say `from`, or the rule would allow nothing.
    expect(same.spec.ingress).toEqual([{ from: [{ podSelector: {} }] }]);
    const gw = byKindName("NetworkPolicy", "allow-gateway");
    expect(gw.spec.ingress[0].from).toEqual([
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "keda" } } },
    ]);
    expect(gw.spec.ingress[0].ports).toEqual([{ protocol: "TCP", port: 8080 }]);
    const egress = byKindName("NetworkPolicy", "allow-dns-and-internet");
    expect(egress.spec.egress[1].to[0].ipBlock.except).toContain("169.254.0.0/16");
    expect(JSON.stringify(wire)).not.toContain("_from");
  });

  it("has no autoscaler, fixed replicas and rolling updates for an always-on pod without volumes", () => {
    const plain = kubernetesObjects({
      podId: "plain",
      containers: [
        { name: "app", image: "x/app:1", resources: res, ports: [{ containerPort: 80, protocol: "http" }] },
      ],
      scaling: { minReplicas: 1, idleSeconds: 60, hosts: ["plain.example"] },
    });
    expect(plain.scaledObject).toBeNull();
    expect(plain.deployment.spec?.replicas).toBe(1);
    expect(plain.deployment.spec?.strategy?.type).toBe("RollingUpdate");
    expect(plain.deployment.spec?.template.spec?.runtimeClassName).toBeUndefined();
    for (const o of orderedObjects(plain).map(toWire)) expect(() => validate(o)).not.toThrow();
    // Two containers of one Kubernetes pod cannot both listen on a port.
    expect(() =>
      kubernetesObjects({
        podId: "clash",
        containers: [
          { name: "a", image: "x/a:1", resources: res, ports: [{ containerPort: 80, protocol: "http" }] },
          { name: "b", image: "x/b:1", resources: res, ports: [{ containerPort: 80, protocol: "tcp" }] },
        ],
      }),
    ).toThrow(/port 80 is already used by container a/);
  });

  it("catches deliberately broken objects (negative tests of the validators)", () => {
    const dep = structuredClone(byKindName("Deployment", "pod"));
    delete dep.spec.selector;
    expect(() => validate(dep)).toThrow(/selector/);
    const dep2 = structuredClone(byKindName("Deployment", "pod"));
    dep2.spec.template.spec.containers[0].ports[0].containerPort = "eighty";
    expect(() => validate(dep2)).toThrow();
    const np = structuredClone(byKindName("NetworkPolicy", "allow-gateway"));
    np.spec.policyTypes = "Ingress";
    expect(() => validate(np)).toThrow();
    const svc = structuredClone(byKindName("Service", "http"));
    svc.spec.ports[0].port = "http";
    expect(() => validate(svc)).toThrow();
    const ns = structuredClone(byKindName("Namespace", "tpod-k8s-demo"));
    ns.metadata.labels.bad = 42;
    expect(() => validate(ns)).toThrow();
    const so = structuredClone(byKindName("HTTPScaledObject", "pod"));
    delete so.spec.scaleTargetRef.port;
    expect(() => validate(so)).toThrow(/port/);
    const so2 = structuredClone(byKindName("HTTPScaledObject", "pod"));
    so2.spec.replicas.min = "zero";
    expect(() => validate(so2)).toThrow(/replicas/);
    const so3 = structuredClone(byKindName("HTTPScaledObject", "pod"));
    so3.spec.scaleDownPeriod = 10; // misspelt: the API server would drop it silently
    expect(() => validate(so3)).toThrow(/additional/);
  });
});

const plainPod = (podId: string): PodSpec => ({
  podId,
  containers: [
    {
      name: "app",
      image: "registry.provider.local/app:1",
      command: ["sleep", "3600"],
      ports: [{ containerPort: 8080, protocol: "http" }],
      resources: res,
    },
  ],
  volumes: [{ name: "data", kind: "persistent", sizeBytes: 1024 ** 2 }],
});

describe("KubernetesEngine against the FAKE API server (no real cluster here)", () => {
  const fake = new FakeKubeApiServer();
  let kc: KubeConfig;
  let engine: KubernetesEngine;
  const since = (n: number) => fake.requests.slice(n);

  beforeAll(async () => {
    kc = fakeKubeConfig(await fake.start());
    engine = new KubernetesEngine(kc, { runtimeClassName: "kata-qemu-tdx", readyTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    await engine.close();
    await fake.stop();
  });

  it("server-side applies every object in order with one field manager; the fake stored each, validated", async () => {
    const n = fake.requests.length;
    await engine.apply(spec);
    const patches = since(n).filter((r) => r.method === "PATCH");
    expect(patches.map((r) => r.path)).toEqual([
      "/api/v1/namespaces/tpod-k8s-demo",
      "/apis/networking.k8s.io/v1/namespaces/tpod-k8s-demo/networkpolicies/default-deny",
      "/apis/networking.k8s.io/v1/namespaces/tpod-k8s-demo/networkpolicies/allow-same-namespace",
      "/apis/networking.k8s.io/v1/namespaces/tpod-k8s-demo/networkpolicies/allow-dns-and-internet",
      "/apis/networking.k8s.io/v1/namespaces/tpod-k8s-demo/networkpolicies/allow-gateway",
      "/apis/networking.k8s.io/v1/namespaces/tpod-k8s-demo/networkpolicies/allow-public-tcp",
      "/apis/networking.k8s.io/v1/namespaces/tpod-k8s-demo/networkpolicies/allow-public-udp",
      "/api/v1/namespaces/tpod-k8s-demo/secrets/secret-creds",
      "/api/v1/namespaces/tpod-k8s-demo/persistentvolumeclaims/data-data",
      "/api/v1/namespaces/tpod-k8s-demo/services/http",
      "/api/v1/namespaces/tpod-k8s-demo/services/tcp",
      "/api/v1/namespaces/tpod-k8s-demo/services/udp",
      "/apis/apps/v1/namespaces/tpod-k8s-demo/deployments/pod",
      "/apis/http.keda.sh/v1alpha1/namespaces/tpod-k8s-demo/httpscaledobjects/pod",
    ]);
    for (const p of patches) {
      expect(p.contentType).toContain("application/apply-patch+yaml");
      expect(p.query.get("fieldManager")).toBe(FIELD_MANAGER);
      expect(p.query.get("force")).toBe("true");
      expect(p.status).toBe(201);
    }
    const stored = fake.get("Deployment", "tpod-k8s-demo", "pod")!;
    expect(stored.spec.template.spec.runtimeClassName).toBe("kata-qemu-tdx");
    // KEDA owns the replica count: the engine sent none, the API server defaulted it.
    expect(JSON.parse(patches[10]!.body).spec.replicas).toBeUndefined();
    expect(stored.spec.replicas).toBe(1);
    expect(fake.get("NetworkPolicy", "tpod-k8s-demo", "allow-same-namespace")!.spec.ingress[0].from).toEqual([
      { podSelector: {} },
    ]);
    expect(fake.get("HTTPScaledObject", "tpod-k8s-demo", "pod")!.spec.scaleTargetRef.port).toBe(8080);
    // Pruning lists the pod's objects by label.
    expect(
      since(n).some(
        (r) => r.method === "GET" && r.query.get("labelSelector") === "trustedpods.io/pod=k8s-demo",
      ),
    ).toBe(true);
    await engine.remove("k8s-demo");
  });

  it("the fake refuses what a real API server refuses: invalid objects (422), partial applies (422), no fieldManager (400)", async () => {
    await engine.apply(plainPod("refusals"));
    const api = KubernetesObjectApi.makeApiClient(kc);
    const dep = toWire(kubernetesObjects(plainPod("refusals")).deployment) as Wire;
    dep.spec.template.spec.containers[0].ports[0].containerPort = "eighty";
    const apply = (o: Wire, manager: string | undefined = FIELD_MANAGER) =>
      api.patch(o as never, undefined, undefined, manager, true, PatchStrategy.ServerSideApply).then(
        () => 200,
        (e: { code?: number }) => e.code,
      );
    expect(await apply(dep)).toBe(422);
    // What KubernetesApplier.scale used to send: with one field manager owning the Deployment, a partial apply
    // drops selector and template, and the API server refuses the result.
    const partial = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "pod", namespace: "tpod-refusals" },
      spec: { replicas: 0 },
    };
    expect(await apply(partial)).toBe(422);
    expect(await apply(toWire(kubernetesObjects(plainPod("refusals")).deployment) as Wire, "")).toBe(400);
    expect(fake.get("Deployment", "tpod-refusals", "pod")!.spec.replicas).toBe(1);
    await engine.remove("refusals");
  });

  it("stop scales to zero through the scale subresource and redoes a change that lost a race (409)", async () => {
    await engine.apply(plainPod("race"));
    const n = fake.requests.length;
    let raced = false;
    fake.beforeRequest = (method, path) => {
      // Another writer (KEDA, an operator) changes the Deployment between the engine's read and its write.
      if (!raced && method === "PUT" && path.endsWith("/deployments/pod/scale")) {
        raced = true;
        fake.touch("Deployment", "tpod-race", "pod");
      }
    };
    try {
      await engine.stop("race");
    } finally {
      fake.beforeRequest = undefined;
    }
    const puts = since(n).filter((r: RecordedRequest) => r.method === "PUT");
    expect(puts.map((r) => [r.path, r.status])).toEqual([
      ["/apis/apps/v1/namespaces/tpod-race/deployments/pod/scale", 409],
      ["/apis/apps/v1/namespaces/tpod-race/deployments/pod/scale", 200],
    ]);
    expect(since(n).some((r) => r.method === "PATCH")).toBe(false);
    expect(fake.get("Deployment", "tpod-race", "pod")!.spec.replicas).toBe(0);
    expect(fake.list("Pod", "tpod-race")).toEqual([]);
    // A new apply takes the replica count back (forced apply) and runs the pod again; volumes were kept.
    const claimUid = fake.get("PersistentVolumeClaim", "tpod-race", "data-data")!.metadata.uid;
    expect((await engine.apply(plainPod("race"))).running).toBe(true);
    expect(fake.get("Deployment", "tpod-race", "pod")!.spec.replicas).toBe(1);
    expect(fake.get("PersistentVolumeClaim", "tpod-race", "data-data")!.metadata.uid).toBe(claimUid);
    await engine.remove("race");
  });

  it("remove deletes the namespace in the foreground and returns once it is gone", async () => {
    await engine.apply(plainPod("gone"));
    const n = fake.requests.length;
    const d0 = fake.deletions.length;
    await engine.remove("gone");
    const del = since(n).find((r) => r.method === "DELETE")!;
    expect(del.path).toBe("/api/v1/namespaces/tpod-gone");
    const sent = del.body ? (JSON.parse(del.body) as Wire).propagationPolicy : undefined;
    expect(sent ?? del.query.get("propagationPolicy")).toBe("Foreground");
    expect(fake.get("Namespace", undefined, "tpod-gone")).toBeUndefined();
    const order = fake.deletions.slice(d0);
    expect(order.at(-1)).toBe("Namespace /tpod-gone");
    const podAt = order.findIndex((d) => d.startsWith("Pod tpod-gone/"));
    expect(podAt).toBeGreaterThanOrEqual(0);
    expect(podAt).toBeLessThan(order.indexOf("Deployment tpod-gone/pod"));
    expect(order).toContain("PersistentVolumeClaim tpod-gone/data-data");
    // Deleting what is not there is 404 from the API server and nothing from the engine.
    await engine.remove("gone");
    expect(
      since(n)
        .filter((r) => r.method === "DELETE")
        .map((r) => r.status),
    ).toEqual([200, 404]);
  });

  it("apply fails with the kubelet's reason when the pod never gets ready; status says why", async () => {
    const impatient = new KubernetesEngine(kc, { readyTimeoutMs: 1_000 });
    fake.waiting = {
      reason: "ImagePullBackOff",
      message: 'Back-off pulling image "registry.provider.local/app:1"',
    };
    try {
      const err = await impatient.apply(plainPod("stuck")).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineError);
      expect((err as EngineError).code).toBe("ENGINE_FAILURE");
      expect((err as EngineError).message).toMatch(/app: ImagePullBackOff \(Back-off pulling image/);
      const st = await impatient.status("stuck");
      expect(st.running).toBe(false);
      expect(st.containers.map((c) => [c.name, c.state])).toEqual([["app", "created"]]);
    } finally {
      fake.waiting = undefined;
      await impatient.remove("stuck");
      await impatient.close();
    }
  });

  it("apply waits on a watch of the Deployment and returns when the kubelet reports the pod ready", async () => {
    fake.waiting = { reason: "ContainerCreating" };
    const n = fake.requests.length;
    fake.beforeRequest = (method, path) => {
      // The engine is now waiting on its watch: the kubelet finishes starting the containers.
      if (method === "GET" && path === "/apis/apps/v1/namespaces/tpod-watched/deployments") {
        fake.beforeRequest = undefined;
        setImmediate(() => fake.kubeletReady("tpod-watched"));
      }
    };
    try {
      const st = await engine.apply(plainPod("watched"));
      expect(st.running).toBe(true);
    } finally {
      fake.waiting = undefined;
      fake.beforeRequest = undefined;
    }
    const watches = since(n).filter((r) => r.query.get("watch") === "true");
    expect(watches.length).toBeGreaterThan(0);
    expect(watches[0]!.query.get("fieldSelector")).toBe("metadata.name=pod");
    // From the version the engine had read: no event between its read and its watch can be missed.
    expect(Number(watches[0]!.query.get("resourceVersion"))).toBeGreaterThan(0);
    await engine.remove("watched");
  });

  it("refuses what it cannot do on Kubernetes with typed errors", async () => {
    await expect(engine.loadImage("x", "app", { kind: "oci-layout", dir: "/nope" })).rejects.toMatchObject({
      code: "IMAGE_LOAD_FAILED",
    });
    await expect(engine.stats("x")).rejects.toMatchObject({ code: "ENGINE_FAILURE" });
    await expect(engine.stop("never-applied")).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
