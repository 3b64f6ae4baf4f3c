// Engine-neutral types: what the provider daemon asks of a container engine (Podman, Kubernetes).
// The daemon translates a publisher's manifest into a PodSpec; engines never see manifests, channels or keys.

/** Pod ids and container/volume names become parts of engine object names and DNS names. */
export const POD_ID_PATTERN = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

/** http ports are routed by the gateway; tcp and udp ports are published on host ports. */
export type PortProtocol = "http" | "tcp" | "udp";

export interface PortSpec {
  containerPort: number;
  protocol: PortProtocol;
  /** Host port to publish on; 0 lets the engine choose; undefined means not published on the host. */
  hostPort?: number;
  /** Host address to bind when published (engine default when absent). */
  hostIp?: string;
}

export interface MountSpec {
  /** Name of a volume in PodSpec.volumes. */
  volume: string;
  /** Absolute path in the container. */
  path: string;
  readOnly?: boolean;
}

export interface ResourceSpec {
  /** CPU limit in millicores (1000 = one core). */
  cpuMillis: number;
  /** Memory limit in bytes. */
  memoryBytes: number;
  /** Maximum number of processes/threads. */
  pids: number;
}

export type HealthCheckProbe =
  | { kind: "http"; path: string; port: number }
  | { kind: "exec"; argv: string[] };

export interface HealthCheckSpec {
  probe: HealthCheckProbe;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failures before the container counts as unhealthy. */
  retries: number;
  /** Failures during this time after start do not count. */
  startPeriodMs: number;
}

export interface ContainerSpec {
  name: string;
  /** Image reference already loaded into the engine (see Engine.loadImage). */
  image: string;
  /** Replaces the image's entrypoint when given. */
  command?: string[];
  /** Replaces the image's cmd when given. */
  args?: string[];
  env?: Record<string, string>;
  workingDir?: string;
  ports?: PortSpec[];
  mounts?: MountSpec[];
  resources: ResourceSpec;
  healthCheck?: HealthCheckSpec;
}

export type VolumeSpec =
  | { name: string; kind: "emptyDir" }
  | { name: string; kind: "persistent"; sizeBytes: number }
  /** Secret files live in memory only (tmpfs); contents are never written to disk by the engine. */
  | { name: string; kind: "secret"; files: Record<string, Uint8Array> };

export interface RestartPolicy {
  mode: "never" | "on-failure" | "always";
  /** For on-failure: restarts before giving up (0 = engine default). */
  maxRetries?: number;
}

/** HTTP scale-to-zero: the Podman daemon's gateway does it itself; Kubernetes maps it to KEDA. */
export interface ScalingSpec {
  minReplicas: 0 | 1;
  /** Idle time before scaling to zero. */
  idleSeconds: number;
  /** Host names routed to the pod's HTTP port. */
  hosts: string[];
}

export interface PodSpec {
  podId: string;
  containers: ContainerSpec[];
  volumes?: VolumeSpec[];
  restart?: RestartPolicy;
  scaling?: ScalingSpec;
  /** Free-form labels copied to engine objects (keys are prefixed by the engine). */
  labels?: Record<string, string>;
}

export type ContainerState = "created" | "running" | "paused" | "restarting" | "exited" | "dead" | "missing";
export type HealthState = "none" | "starting" | "healthy" | "unhealthy";

export interface PublishedPort {
  containerPort: number;
  protocol: PortProtocol;
  hostIp: string;
  hostPort: number;
}

export interface ContainerStatus {
  name: string;
  /** Engine's own id for the container (empty when missing). */
  id: string;
  image: string;
  state: ContainerState;
  health: HealthState;
  exitCode: number | null;
  restarts: number;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Address of the container on the pod's own network (null when not running). */
  ip: string | null;
  ports: PublishedPort[];
}

export interface PodStatus {
  podId: string;
  /** True when every container of the pod is running. */
  running: boolean;
  containers: ContainerStatus[];
}

export interface LogLine {
  container: string;
  stream: "stdout" | "stderr";
  time: Date;
  line: string;
}

export interface LogOptions {
  follow?: boolean;
  /** Only these containers (default: all of the pod's). */
  containers?: string[];
  /** Only lines after this time. */
  since?: Date;
  /** Last N lines per container. */
  tail?: number;
  signal?: AbortSignal;
}

export interface ContainerStats {
  name: string;
  cpuSeconds: number;
  memoryBytes: number;
  rxBytes: number;
  txBytes: number;
}

export interface PodStats {
  podId: string;
  time: Date;
  containers: ContainerStats[];
  cpuSeconds: number;
  memoryBytes: number;
  rxBytes: number;
  txBytes: number;
}

export type ImageSource = { kind: "archive"; path: string } | { kind: "oci-layout"; dir: string };

export interface LoadedImage {
  /** Engine image reference unique to the pod, e.g. localhost/tpod-<podid>/<container>:<id-prefix>. */
  ref: string;
  /** Engine image id (sha256:...). */
  id: string;
}

export interface ManagedPod {
  podId: string;
  containers: string[];
  networks: string[];
  volumes: string[];
  images: string[];
  /**
   * Whether `status(podId).running` would say the pod runs, when the engine learns it from the same listing
   * (Podman): start-up reconciliation then needs no status call per pod. Undefined: ask status().
   */
  running?: boolean;
}

export interface RemoveOptions {
  /** Also remove the images loaded for this pod. */
  images?: boolean;
}

/** The contract the provider daemon programs against. */
export interface Engine {
  readonly kind: string;
  /** Create or replace the pod's containers so they match spec; keeps persistent volumes. Leaves the pod running. */
  apply(spec: PodSpec): Promise<PodStatus>;
  start(podId: string): Promise<void>;
  /** Stop every container; keep containers, volumes, network and images. */
  stop(podId: string): Promise<void>;
  /** Delete everything of the pod (containers, network, volumes, secrets; images when asked). Idempotent. */
  remove(podId: string, options?: RemoveOptions): Promise<void>;
  status(podId: string): Promise<PodStatus>;
  logs(podId: string, options?: LogOptions): AsyncIterable<LogLine>;
  stats(podId: string): Promise<PodStats>;
  loadImage(podId: string, container: string, source: ImageSource): Promise<LoadedImage>;
  removeImage(ref: string): Promise<void>;
  /** Pods that carry our ownership labels, for crash-recovery reconciliation. */
  listPods(): Promise<ManagedPod[]>;
  close(): Promise<void>;
}
