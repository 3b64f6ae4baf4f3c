// Kubernetes objects, validated against the Kubernetes OpenAPI schemas shipped by `kubernetes-models`
// (its validate() is generated from the upstream OpenAPI spec) and, for KEDA's CRD, against a schema written
// from the CRD. There is no API server here: the applier runs against FakeKubeApiServer, a fake named as
// such, which only records the requests client-node sends.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { Deployment } from "kubernetes-models/apps/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { RuntimeClass } from "kubernetes-models/node.k8s.io/v1";
import { Namespace, PersistentVolumeClaim, Secret, Service } from "kubernetes-models/v1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FIELD_MANAGER,
  KubernetesApplier,
  kubernetesObjects,
  orderedObjects,
  type PodSpec,
  runtimeClass,
  toWire,
} from "../src/index.js";
import { validateHTTPScaledObject } from "./engine-keda-schema.js";

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

/** FAKE Kubernetes API server: answers discovery and records requests. It runs no admission or storage. */
class FakeKubeApiServer {
  readonly requests: { method: string; url: string; contentType: string; body: string }[] = [];
  private server = http.createServer((req, res) => this.handle(req, res));
  private static readonly RESOURCES: Record<string, { name: string; kind: string; namespaced: boolean }[]> = {
    "/api/v1": [
      { name: "namespaces", kind: "Namespace", namespaced: false },
      { name: "secrets", kind: "Secret", namespaced: true },
      { name: "persistentvolumeclaims", kind: "PersistentVolumeClaim", namespaced: true },
      { name: "services", kind: "Service", namespaced: true },
    ],
    "/apis/apps/v1": [{ name: "deployments", kind: "Deployment", namespaced: true }],
    "/apis/networking.k8s.io/v1": [{ name: "networkpolicies", kind: "NetworkPolicy", namespaced: true }],
    "/apis/http.keda.sh/v1alpha1": [
      { name: "httpscaledobjects", kind: "HTTPScaledObject", namespaced: true },
    ],
  };

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      const url = req.url ?? "";
      this.requests.push({
        method: req.method ?? "",
        url,
        contentType: req.headers["content-type"] ?? "",
        body,
      });
      const path = url.split("?")[0]!;
      res.setHeader("content-type", "application/json");
      const resources = FakeKubeApiServer.RESOURCES[path];
      if (req.method === "GET" && resources) {
        res.end(JSON.stringify({ kind: "APIResourceList", groupVersion: path, resources }));
      } else if (req.method === "GET") {
        res.end(JSON.stringify({ kind: "List", apiVersion: "v1", metadata: {}, items: [] }));
      } else if (req.method === "PATCH") {
        res.end(body || "{}");
      } else if (req.method === "DELETE") {
        res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Success" }));
      } else {
        res.statusCode = 405;
        res.end("{}");
      }
    });
  }
}

describe("KubernetesApplier against FakeKubeApiServer (no real cluster here)", () => {
  const fake = new FakeKubeApiServer();
  let applier: KubernetesApplier;

  beforeAll(async () => {
    const server = await fake.start();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server, skipTLSVerify: true }],
      users: [{ name: "fake", token: "fake-token" }],
      contexts: [{ name: "fake", cluster: "fake", user: "fake" }],
      currentContext: "fake",
    });
    applier = new KubernetesApplier(kc, { runtimeClassName: "kata-qemu-tdx" });
  });

  afterAll(() => fake.stop());

  it("server-side applies every object in order with one field manager, then scales and deletes", async () => {
    await applier.apply(spec);
    const patches = fake.requests.filter((r) => r.method === "PATCH");
    expect(patches.map((r) => r.url.split("?")[0])).toEqual([
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
      const q = new URL(p.url, "http://x").searchParams;
      expect(q.get("fieldManager")).toBe(FIELD_MANAGER);
      expect(q.get("force")).toBe("true");
    }
    const sentDeployment = JSON.parse(patches.find((p) => p.url.includes("/deployments/"))!.body) as Wire;
    expect(sentDeployment.spec.template.spec.runtimeClassName).toBe("kata-qemu-tdx");
    expect(() => validate(sentDeployment as never)).not.toThrow();
    const sentPolicy = JSON.parse(patches[2]!.body);
    expect(sentPolicy.spec.ingress[0].from).toEqual([{ podSelector: {} }]);
    // Pruning lists the pod's objects by label.
    expect(fake.requests.some((r) => r.method === "GET" && r.url.includes("labelSelector="))).toBe(true);

    fake.requests.length = 0;
    await applier.scale("k8s-demo", 0);
    expect(JSON.parse(fake.requests.find((r) => r.method === "PATCH")!.body).spec).toEqual({ replicas: 0 });
    await applier.remove("k8s-demo");
    expect(fake.requests.find((r) => r.method === "DELETE")?.url.split("?")[0]).toBe(
      "/api/v1/namespaces/tpod-k8s-demo",
    );
  });
});
