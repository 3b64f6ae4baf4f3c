import type {
  KubernetesObject,
  V1Container,
  V1Deployment,
  V1Namespace,
  V1NetworkPolicy,
  V1NetworkPolicyPeer,
  V1PersistentVolumeClaim,
  V1Probe,
  V1RuntimeClass,
  V1Secret,
  V1Service,
  V1Volume,
} from "@kubernetes/client-node";
// client-node's models rename JSON fields that are reserved words (NetworkPolicy's `from` is `_from`) and
// its serializer silently drops the JSON spelling: objects are built with model names and turned into wire
// JSON by the same serializer the client uses for requests.
import { ObjectSerializer } from "@kubernetes/client-node/dist/serializer.js";
import { getSerializationType } from "@kubernetes/client-node/dist/util.js";
import { EngineError } from "./errors.js";
import type { ContainerSpec, HealthCheckSpec, PodSpec, PortProtocol } from "./types.js";
import { assertPodId, validatePodSpec } from "./validate.js";

/** KEDA HTTP add-on's HTTPScaledObject (http.keda.sh/v1alpha1); client-node has no model for CRDs. */
export interface HTTPScaledObject extends KubernetesObject {
  apiVersion: "http.keda.sh/v1alpha1";
  kind: "HTTPScaledObject";
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: {
    hosts: string[];
    pathPrefixes?: string[];
    scaleTargetRef: { name: string; kind: string; apiVersion: string; service: string; port: number };
    replicas: { min: number; max: number };
    scaledownPeriod?: number;
    targetPendingRequests?: number;
  };
}

export interface KubernetesOptions {
  /** Namespace name prefix; the pod's namespace is PREFIX + pod id. */
  namespacePrefix?: string;
  /** RuntimeClass for pods, e.g. "kata-qemu-snp" or "kata-qemu-tdx" (Confidential Containers). */
  runtimeClassName?: string;
  /** Namespace of the HTTP entry point (the KEDA interceptor or our gateway): allowed to reach HTTP ports. */
  gatewayNamespace?: string;
  storageClassName?: string;
  /** Destinations pods may not reach (cluster, node and metadata networks). */
  egressDeniedCidrs?: string[];
  /** Namespace of the cluster DNS (egress on port 53 allowed). */
  dnsNamespace?: string;
}

export interface KubernetesObjects {
  namespace: V1Namespace;
  secrets: V1Secret[];
  claims: V1PersistentVolumeClaim[];
  deployment: V1Deployment;
  services: V1Service[];
  networkPolicies: V1NetworkPolicy[];
  scaledObject: HTTPScaledObject | null;
}

export const K8S_LABEL = { managed: "trustedpods.io/managed", pod: "trustedpods.io/pod" } as const;
const DEFAULT_DENIED = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"];

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

function probe(h: HealthCheckSpec): V1Probe {
  const action: V1Probe =
    h.probe.kind === "http"
      ? { httpGet: { path: h.probe.path, port: h.probe.port } }
      : { exec: { command: h.probe.argv } };
  return {
    ...action,
    periodSeconds: seconds(h.intervalMs),
    timeoutSeconds: seconds(h.timeoutMs),
    failureThreshold: h.retries,
  };
}

function container(c: ContainerSpec): V1Container {
  const out: V1Container = {
    name: c.name,
    image: c.image,
    // Images are preloaded on nodes or in a provider registry under pod-unique names; never fetched by tag.
    imagePullPolicy: "IfNotPresent",
    ...(c.command ? { command: c.command } : {}),
    ...(c.args ? { args: c.args } : {}),
    ...(c.workingDir ? { workingDir: c.workingDir } : {}),
    env: Object.entries(c.env ?? {}).map(([name, value]) => ({ name, value })),
    ports: (c.ports ?? []).map((p) => ({
      containerPort: p.containerPort,
      protocol: k8sProtocol(p.protocol),
    })),
    volumeMounts: (c.mounts ?? []).map((m) => ({
      name: m.volume,
      mountPath: m.path,
      readOnly: m.readOnly ?? false,
    })),
    resources: {
      limits: { cpu: `${c.resources.cpuMillis}m`, memory: String(c.resources.memoryBytes) },
      requests: { cpu: `${c.resources.cpuMillis}m`, memory: String(c.resources.memoryBytes) },
    },
    securityContext: { allowPrivilegeEscalation: false },
  };
  if (c.healthCheck) {
    const p = probe(c.healthCheck);
    out.readinessProbe = p;
    out.livenessProbe = p;
    // Docker's start period: failures do not count until it has passed. startupProbe holds the others back.
    if (c.healthCheck.startPeriodMs > 0) {
      out.startupProbe = {
        ...p,
        failureThreshold: Math.max(1, Math.ceil(c.healthCheck.startPeriodMs / c.healthCheck.intervalMs)),
      };
    }
  }
  return out;
}

/**
 * The Kubernetes equivalent of a PodSpec. One namespace per pod carries everything of the pod, so deleting
 * the namespace deletes the pod; network policies make the namespace the isolation boundary.
 */
export function kubernetesObjects(spec: PodSpec, options: KubernetesOptions = {}): KubernetesObjects {
  validatePodSpec(spec);
  const ns = `${options.namespacePrefix ?? "tpod-"}${spec.podId}`;
  const labels = { [K8S_LABEL.managed]: "true", [K8S_LABEL.pod]: spec.podId };
  const selector = { [K8S_LABEL.pod]: spec.podId };
  const meta = (name: string) => ({ name, namespace: ns, labels });
  const httpPorts = spec.containers.flatMap((c) => (c.ports ?? []).filter((p) => p.protocol === "http"));
  const tcpPorts = spec.containers.flatMap((c) => (c.ports ?? []).filter((p) => p.protocol === "tcp"));
  const udpPorts = spec.containers.flatMap((c) => (c.ports ?? []).filter((p) => p.protocol === "udp"));
  const allPorts = [...httpPorts, ...tcpPorts, ...udpPorts];
  // Containers of a Kubernetes pod share one network namespace: a port can only be used once per transport.
  const seen = new Set<string>();
  for (const p of allPorts) {
    const key = `${p.containerPort}/${k8sProtocol(p.protocol)}`;
    if (seen.has(key)) {
      throw new EngineError("INVALID_SPEC", `port ${key} is used twice in one pod`);
    }
    seen.add(key);
  }

  const namespace: V1Namespace = {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name: ns,
      labels: {
        ...labels,
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
      },
    },
  };

  const secrets: V1Secret[] = [];
  const claims: V1PersistentVolumeClaim[] = [];
  const volumes: V1Volume[] = [];
  for (const v of spec.volumes ?? []) {
    if (v.kind === "secret") {
      const name = `secret-${v.name}`;
      secrets.push({
        apiVersion: "v1",
        kind: "Secret",
        metadata: meta(name),
        type: "Opaque",
        immutable: false,
        data: Object.fromEntries(
          Object.entries(v.files).map(([f, b]) => [f, Buffer.from(b).toString("base64")]),
        ),
      });
      // kubelet mounts secret volumes on tmpfs.
      volumes.push({ name: v.name, secret: { secretName: name, defaultMode: 0o444 } });
    } else if (v.kind === "persistent") {
      const name = `data-${v.name}`;
      claims.push({
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: meta(name),
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: String(v.sizeBytes) } },
          ...(options.storageClassName ? { storageClassName: options.storageClassName } : {}),
        },
      });
      volumes.push({ name: v.name, persistentVolumeClaim: { claimName: name } });
    } else {
      volumes.push({ name: v.name, emptyDir: {} });
    }
  }

  const scaleToZero = spec.scaling?.minReplicas === 0 && httpPorts.length > 0;
  const deployment: V1Deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta("pod"),
    spec: {
      // With KEDA the replica count belongs to KEDA: leaving it out keeps server-side apply off its field.
      ...(scaleToZero ? {} : { replicas: 1 }),
      selector: { matchLabels: selector },
      // ReadWriteOnce volumes cannot be attached to an old and a new pod at once.
      strategy: { type: claims.length > 0 ? "Recreate" : "RollingUpdate" },
      template: {
        metadata: { labels },
        spec: {
          ...(options.runtimeClassName ? { runtimeClassName: options.runtimeClassName } : {}),
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          // Containers find each other by name, as on Podman: every name points at the shared loopback.
          hostAliases: [{ ip: "127.0.0.1", hostnames: spec.containers.map((c) => c.name) }],
          restartPolicy: "Always",
          containers: spec.containers.map(container),
          volumes,
        },
      },
    },
  };

  const services: V1Service[] = [];
  if (httpPorts.length > 0) {
    services.push({
      apiVersion: "v1",
      kind: "Service",
      metadata: meta("http"),
      spec: {
        type: "ClusterIP",
        selector,
        ports: httpPorts.map((p) => ({
          name: `http-${p.containerPort}`,
          port: p.containerPort,
          targetPort: p.containerPort,
        })),
      },
    });
  }
  for (const [transport, ports] of [
    ["tcp", tcpPorts],
    ["udp", udpPorts],
  ] as const) {
    if (ports.length === 0) continue;
    services.push({
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(transport),
      spec: {
        type: "NodePort",
        selector,
        ports: ports.map((p) => ({
          name: `${transport}-${p.containerPort}`,
          port: p.containerPort,
          targetPort: p.containerPort,
          protocol: k8sProtocol(transport),
          // The NodePort range is the cluster's; other requested ports are left to the cluster to choose.
          ...(p.hostPort && p.hostPort >= 30000 && p.hostPort <= 32767 ? { nodePort: p.hostPort } : {}),
        })),
      },
    });
  }

  const denied = options.egressDeniedCidrs ?? DEFAULT_DENIED;
  const samePod: V1NetworkPolicyPeer = { podSelector: {} };
  const networkPolicies: V1NetworkPolicy[] = [
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: meta("default-deny"),
      spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
    },
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: meta("allow-same-namespace"),
      spec: {
        podSelector: {},
        policyTypes: ["Ingress", "Egress"],
        ingress: [{ _from: [samePod] }],
        egress: [{ to: [samePod] }],
      },
    },
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: meta("allow-dns-and-internet"),
      spec: {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [
          {
            to: [
              {
                namespaceSelector: {
                  matchLabels: { "kubernetes.io/metadata.name": options.dnsNamespace ?? "kube-system" },
                },
              },
            ],
            ports: [
              { protocol: "UDP", port: 53 },
              { protocol: "TCP", port: 53 },
            ],
          },
          { to: [{ ipBlock: { cidr: "0.0.0.0/0", except: denied } }] },
        ],
      },
    },
  ];
  if (httpPorts.length > 0) {
    networkPolicies.push({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: meta("allow-gateway"),
      spec: {
        podSelector: { matchLabels: selector },
        policyTypes: ["Ingress"],
        ingress: [
          {
            _from: [
              {
                namespaceSelector: {
                  matchLabels: { "kubernetes.io/metadata.name": options.gatewayNamespace ?? "keda" },
                },
              },
            ],
            ports: httpPorts.map((p) => ({ protocol: "TCP", port: p.containerPort })),
          },
        ],
      },
    });
  }
  for (const [transport, ports] of [
    ["tcp", tcpPorts],
    ["udp", udpPorts],
  ] as const) {
    if (ports.length === 0) continue;
    networkPolicies.push({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: meta(`allow-public-${transport}`),
      spec: {
        podSelector: { matchLabels: selector },
        policyTypes: ["Ingress"],
        ingress: [
          {
            _from: [{ ipBlock: { cidr: "0.0.0.0/0" } }],
            ports: ports.map((p) => ({ protocol: k8sProtocol(transport), port: p.containerPort })),
          },
        ],
      },
    });
  }

  let scaledObject: HTTPScaledObject | null = null;
  if (scaleToZero && spec.scaling) {
    scaledObject = {
      apiVersion: "http.keda.sh/v1alpha1",
      kind: "HTTPScaledObject",
      metadata: meta("pod"),
      spec: {
        hosts: spec.scaling.hosts,
        scaleTargetRef: {
          name: "pod",
          kind: "Deployment",
          apiVersion: "apps/v1",
          service: "http",
          port: httpPorts[0]!.containerPort,
        },
        replicas: { min: 0, max: 1 },
        scaledownPeriod: spec.scaling.idleSeconds,
      },
    };
  }
  return { namespace, secrets, claims, deployment, services, networkPolicies, scaledObject };
}

/** Objects in the order they must be applied (namespace first, workload after what it mounts). */
export function orderedObjects(o: KubernetesObjects): KubernetesObject[] {
  return [
    o.namespace,
    ...o.networkPolicies,
    ...o.secrets,
    ...o.claims,
    ...o.services,
    o.deployment,
    ...(o.scaledObject ? [o.scaledObject] : []),
  ];
}

/** The JSON the API server receives for an object (what client-node sends). */
export function toWire(obj: KubernetesObject): Record<string, unknown> {
  return ObjectSerializer.serialize(obj, getSerializationType(obj.apiVersion, obj.kind)) as Record<
    string,
    unknown
  >;
}

/** A RuntimeClass for a Kata / Confidential Containers handler, for cluster setup. */
export function runtimeClass(name: string, handler = name): V1RuntimeClass {
  return { apiVersion: "node.k8s.io/v1", kind: "RuntimeClass", metadata: { name }, handler };
}

export function namespaceFor(podId: string, options: KubernetesOptions = {}): string {
  assertPodId(podId);
  return `${options.namespacePrefix ?? "tpod-"}${podId}`;
}

/** Kubernetes' protocol of a port: http is served over TCP. */
function k8sProtocol(protocol: PortProtocol): "TCP" | "UDP" {
  return protocol === "udp" ? "UDP" : "TCP";
}
