/**
 * The typed pod every tool works with: the manifest reader produces it, the wire conversion carries it, and
 * validatePod checks it wherever it came from (YAML on disk or protobuf from the network).
 */
import type { DiagnosticCode } from "./diagnostics.js";
import type * as pb from "./gen/trustedpods/v1/pod_pb.js";

export interface Pod {
  name: string;
  containers: Container[];
  volumes: Volume[];
  replicas: Replicas;
}

export interface Container {
  name: string;
  image: ImageRef;
  /** Replaces the image's entrypoint when not empty. */
  command: string[];
  /** Replaces the image's command (CMD) when not empty. */
  args: string[];
  workingDir?: string;
  env: EnvVar[];
  ports: Port[];
  volumeMounts: VolumeMount[];
  resources: Resources;
  healthCheck?: HealthCheck;
}

export type ImageRef =
  | { kind: "local"; name: string }
  /** digest is "sha256:" and 64 lowercase hex digits. */
  | { kind: "ipfs"; cid: string; digest: string }
  | { kind: "listing"; listingId: bigint };

export type EnvVar =
  | { name: string; kind: "value"; value: string }
  | { name: string; kind: "secret"; secret: string };

export interface Port {
  name?: string;
  containerPort: number;
  /** http: through the provider's gateway; tcp and udp: published on a host port. */
  protocol: "http" | "tcp" | "udp";
  /** http only; absent lets the provider assign one. */
  hostname?: string;
}

/** Same fields as the wire's (proto/trustedpods/v1/pod.proto is their one declaration). */
export type VolumeMount = Pick<pb.VolumeMount, "name" | "mountPath" | "readOnly">;

export type SecretSource = { kind: "file"; path: string } | { kind: "ipfs"; cid: string; keyRef: string };

export type Volume =
  | { name: string; kind: "emptyDir" }
  | { name: string; kind: "persistent"; sizeBytes: bigint }
  | { name: string; kind: "secret"; source: SecretSource };

/** What one replica of a container reserves. */
export interface Resources {
  cpuMillis: bigint;
  memoryBytes: bigint;
  storageBytes: bigint;
  gpu: bigint;
}

/** Same fields as the wire's; idleSeconds (time before scaling to zero) is 0n exactly when min > 0. */
export type Replicas = Pick<pb.Replicas, "min" | "max" | "idleSeconds">;

export type Probe =
  | ({ kind: "http" } & Pick<pb.HttpProbe, "path" | "port">)
  | ({ kind: "exec" } & Pick<pb.ExecProbe, "command">);

/** The wire's timing fields; the probe as a tagged union instead of the wire's oneof. */
export type HealthCheck = { probe: Probe } & Pick<
  pb.HealthCheck,
  "intervalMs" | "timeoutMs" | "retries" | "startPeriodMs"
>;

/** Defaults the manifest applies to omitted fields (documented in docs/manifest.md). */
export const DEFAULTS = {
  cpuMillis: 100n,
  memoryBytes: 128n << 20n,
  storageBytes: 1n << 30n,
  gpu: 0n,
  idleSeconds: 300n,
  intervalMs: 10_000n,
  timeoutMs: 1_000n,
  retries: 3,
  startPeriodMs: 0n,
} as const;

/** Sanity bounds: far above real use, low enough that sums and prices stay small and input stays bounded. */
export const LIMITS = {
  containers: 16,
  volumes: 64,
  portsPerContainer: 64,
  envPerContainer: 1024,
  argv: 1024,
  string: 65_536,
  path: 4096,
  maxReplicas: 100,
  cpuMillis: 1_024_000n,
  memoryBytes: 16n << 40n,
  storageBytes: 1n << 50n,
  gpu: 64n,
  idleSeconds: 30n * 86_400n,
  probeMs: 86_400_000n,
  retries: 100,
} as const;

export type PathSegment = string | number;

/** A problem found in a pod, located by its path in manifest terms (e.g. spec.containers[0].ports[1]). */
export interface PodIssue {
  path: PathSegment[];
  code: DiagnosticCode;
  message: string;
}

export function formatPath(path: readonly PathSegment[]): string {
  return path.reduce<string>((s, p) => (typeof p === "number" ? `${s}[${p}]` : s ? `${s}.${p}` : p), "");
}

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HOSTNAME_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const CID_RE = /^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,200})$/;
// OCI distribution reference grammar: [host[:port]/]path[:tag][@digest], path components lowercase.
const IMAGE_RE =
  /^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$/;
const UINT256_MAX = (1n << 256n) - 1n;

export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS_LABEL_RE.test(s);
}

export function isHostname(s: string): boolean {
  return s.length <= 253 && s.split(".").every((l) => l.length <= 63 && HOSTNAME_LABEL_RE.test(l));
}

export function isImageReference(s: string): boolean {
  return s.length <= 512 && IMAGE_RE.test(s);
}

function dnsLabelProblem(s: string): string | undefined {
  if (s === "") return "must not be empty";
  if (s.length > 63) return `"${s.slice(0, 20)}..." is longer than 63 characters`;
  if (!DNS_LABEL_RE.test(s))
    return `"${s}" is not a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit)`;
  return undefined;
}

function isAbsolutePath(s: string): boolean {
  return s.startsWith("/") && !s.includes("\0") && s.length <= LIMITS.path && !s.split("/").includes("..");
}

class IssueList {
  readonly issues: PodIssue[] = [];
  add(path: PathSegment[], code: DiagnosticCode, message: string): void {
    this.issues.push({ path, code, message });
  }
}

function checkRange(
  out: IssueList,
  path: PathSegment[],
  what: string,
  value: bigint,
  min: bigint,
  max: bigint,
  show: (v: bigint) => string,
): void {
  if (value < min)
    out.add(path, "INVALID_VALUE", `${what} must be at least ${show(min)}, not ${show(value)}`);
  else if (value > max)
    out.add(path, "INVALID_VALUE", `${what} must be at most ${show(max)}, not ${show(value)}`);
}

function checkPort(out: IssueList, path: PathSegment[], port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    out.add(path, "INVALID_PORT", `port ${port} is out of range (1-65535)`);
  }
}

function checkArgv(out: IssueList, path: PathSegment[], argv: string[], what: string): void {
  if (argv.length > LIMITS.argv) out.add(path, "TOO_LARGE", `${what} has more than ${LIMITS.argv} items`);
  argv.forEach((a, i) => {
    if (a.includes("\0"))
      out.add([...path, i], "INVALID_VALUE", `${what} items must not contain NUL characters`);
  });
}

function checkImage(out: IssueList, path: PathSegment[], image: ImageRef): void {
  switch (image.kind) {
    case "local":
      if (!isImageReference(image.name))
        out.add(path, "INVALID_VALUE", `"${image.name}" is not an image reference (e.g. busybox:1.36)`);
      break;
    case "ipfs":
      if (!CID_RE.test(image.cid))
        out.add([...path, "ipfs"], "INVALID_VALUE", `"${image.cid}" is not a CID (CIDv1 base32 or CIDv0)`);
      if (!DIGEST_RE.test(image.digest))
        out.add(
          [...path, "digest"],
          "INVALID_VALUE",
          `"${image.digest}" is not a digest ("sha256:" and 64 lowercase hex digits)`,
        );
      break;
    case "listing":
      if (image.listingId < 0n || image.listingId > UINT256_MAX)
        out.add([...path, "listing"], "INVALID_VALUE", "listing id must be a uint256");
      break;
  }
}

function checkHealthCheck(out: IssueList, path: PathSegment[], hc: HealthCheck): void {
  if (hc.probe.kind === "http") {
    if (!hc.probe.path.startsWith("/") || /[\s\0]/.test(hc.probe.path) || hc.probe.path.length > LIMITS.path)
      out.add([...path, "http", "path"], "INVALID_VALUE", `"${hc.probe.path}" is not an absolute URL path`);
    checkPort(out, [...path, "http", "port"], hc.probe.port);
  } else {
    if (hc.probe.command.length === 0)
      out.add([...path, "exec", "command"], "INVALID_VALUE", "exec command must not be empty");
    checkArgv(out, [...path, "exec", "command"], hc.probe.command, "exec command");
  }
  const ms = (v: bigint) => `${v}ms`;
  checkRange(out, [...path, "interval"], "interval", hc.intervalMs, 1n, LIMITS.probeMs, ms);
  checkRange(out, [...path, "timeout"], "timeout", hc.timeoutMs, 1n, LIMITS.probeMs, ms);
  checkRange(out, [...path, "startPeriod"], "startPeriod", hc.startPeriodMs, 0n, LIMITS.probeMs, ms);
  if (!Number.isInteger(hc.retries) || hc.retries < 1 || hc.retries > LIMITS.retries)
    out.add([...path, "retries"], "INVALID_VALUE", `retries must be between 1 and ${LIMITS.retries}`);
}

function checkResources(out: IssueList, path: PathSegment[], r: Resources): void {
  const str = (v: bigint) => String(v);
  checkRange(out, [...path, "cpu"], "cpu (millicores)", r.cpuMillis, 1n, LIMITS.cpuMillis, str);
  checkRange(out, [...path, "memory"], "memory (bytes)", r.memoryBytes, 1n << 20n, LIMITS.memoryBytes, str);
  checkRange(out, [...path, "storage"], "storage (bytes)", r.storageBytes, 0n, LIMITS.storageBytes, str);
  checkRange(out, [...path, "gpu"], "gpu", r.gpu, 0n, LIMITS.gpu, str);
}

function checkVolumes(out: IssueList, volumes: Volume[]): Map<string, Volume> {
  const byName = new Map<string, Volume>();
  if (volumes.length > LIMITS.volumes)
    out.add(["spec", "volumes"], "TOO_LARGE", `more than ${LIMITS.volumes} volumes`);
  volumes.forEach((v, i) => {
    const path = ["spec", "volumes", i];
    const problem = dnsLabelProblem(v.name);
    if (problem) out.add([...path, "name"], "INVALID_NAME", `volume name ${problem}`);
    else if (byName.has(v.name)) out.add([...path, "name"], "DUPLICATE", `duplicate volume name "${v.name}"`);
    else byName.set(v.name, v);
    if (v.kind === "persistent") {
      checkRange(
        out,
        [...path, "persistent", "size"],
        "size (bytes)",
        v.sizeBytes,
        1n,
        LIMITS.storageBytes,
        String,
      );
    } else if (v.kind === "secret") {
      const s = v.source;
      if (s.kind === "file") {
        if (s.path === "" || s.path.includes("\0") || s.path.length > LIMITS.path)
          out.add([...path, "secret", "file"], "INVALID_VALUE", "secret file must be a path");
      } else {
        if (!CID_RE.test(s.cid))
          out.add(
            [...path, "secret", "cid"],
            "INVALID_VALUE",
            `"${s.cid}" is not a CID (CIDv1 base32 or CIDv0)`,
          );
        if (!/^[\x21-\x7e]{1,256}$/.test(s.keyRef))
          out.add(
            [...path, "secret", "keyRef"],
            "INVALID_VALUE",
            "keyRef must be 1-256 printable ASCII characters",
          );
      }
    }
  });
  return byName;
}

interface PodWide {
  /** Published ports by portKey (a udp port may share its number with a tcp or http one). */
  containerPorts: Map<string, string>;
  portNames: Set<string>;
  hostnames: Set<string>;
  volumes: Map<string, Volume>;
}

function checkPorts(out: IssueList, path: PathSegment[], c: Container, wide: PodWide): void {
  if (c.ports.length > LIMITS.portsPerContainer)
    out.add([...path, "ports"], "TOO_LARGE", `more than ${LIMITS.portsPerContainer} ports`);
  c.ports.forEach((p, j) => {
    const pp = [...path, "ports", j];
    checkPort(out, [...pp, "containerPort"], p.containerPort);
    const key = p.protocol === "udp" ? `${p.containerPort}/udp` : String(p.containerPort);
    const owner = wide.containerPorts.get(key);
    if (owner !== undefined) {
      out.add(
        [...pp, "containerPort"],
        "DUPLICATE",
        `port ${key} is already published by container "${owner}" (containers share the pod's network)`,
      );
    } else wide.containerPorts.set(key, c.name);
    if (p.name !== undefined) {
      const problem = dnsLabelProblem(p.name);
      if (problem) out.add([...pp, "name"], "INVALID_NAME", `port name ${problem}`);
      else if (wide.portNames.has(p.name))
        out.add([...pp, "name"], "DUPLICATE", `duplicate port name "${p.name}"`);
      wide.portNames.add(p.name);
    }
    if (p.hostname !== undefined) {
      if (p.protocol !== "http") out.add([...pp, p.protocol], "CONFLICT", "only http ports have a hostname");
      else if (!isHostname(p.hostname))
        out.add(
          [...pp, "http", "hostname"],
          "INVALID_VALUE",
          `"${p.hostname}" is not a lowercase DNS hostname`,
        );
      else if (wide.hostnames.has(p.hostname))
        out.add([...pp, "http", "hostname"], "DUPLICATE", `hostname "${p.hostname}" is used by another port`);
      wide.hostnames.add(p.hostname);
    }
  });
}

function checkContainer(out: IssueList, c: Container, i: number, wide: PodWide): void {
  const path: PathSegment[] = ["spec", "containers", i];
  checkImage(out, [...path, "image"], c.image);
  checkArgv(out, [...path, "command"], c.command, "command");
  checkArgv(out, [...path, "args"], c.args, "args");
  if (c.workingDir !== undefined && !isAbsolutePath(c.workingDir))
    out.add(
      [...path, "workingDir"],
      "INVALID_VALUE",
      `workingDir "${c.workingDir}" must be an absolute path`,
    );
  if (c.env.length > LIMITS.envPerContainer)
    out.add([...path, "env"], "TOO_LARGE", `more than ${LIMITS.envPerContainer} environment variables`);
  const envNames = new Set<string>();
  c.env.forEach((e, j) => {
    const ep = [...path, "env", j];
    if (!ENV_NAME_RE.test(e.name) || e.name.length > 256)
      out.add([...ep, "name"], "INVALID_NAME", `"${e.name}" is not an environment variable name`);
    else if (envNames.has(e.name))
      out.add([...ep, "name"], "DUPLICATE", `duplicate environment variable "${e.name}"`);
    envNames.add(e.name);
    if (e.kind === "value" && (e.value.includes("\0") || e.value.length > LIMITS.string))
      out.add([...ep, "value"], "INVALID_VALUE", "value must be at most 64 KiB without NUL characters");
    if (e.kind === "secret") {
      const v = wide.volumes.get(e.secret);
      if (!v)
        out.add(
          [...ep, "valueFrom", "secret"],
          "UNKNOWN_REFERENCE",
          `no secret volume named "${e.secret}"${known(wide.volumes, "secret")}`,
        );
      else if (v.kind !== "secret")
        out.add(
          [...ep, "valueFrom", "secret"],
          "UNKNOWN_REFERENCE",
          `volume "${e.secret}" is not a secret volume`,
        );
    }
  });
  checkPorts(out, path, c, wide);
  const mountPaths = new Set<string>();
  c.volumeMounts.forEach((m, j) => {
    const mp = [...path, "volumeMounts", j];
    if (!wide.volumes.has(m.name))
      out.add([...mp, "name"], "UNKNOWN_REFERENCE", `no volume named "${m.name}"${known(wide.volumes)}`);
    if (!isAbsolutePath(m.mountPath))
      out.add([...mp, "mountPath"], "INVALID_VALUE", `mountPath "${m.mountPath}" must be an absolute path`);
    else if (mountPaths.has(m.mountPath))
      out.add(
        [...mp, "mountPath"],
        "DUPLICATE",
        `"${m.mountPath}" is already a mount path of this container`,
      );
    mountPaths.add(m.mountPath);
  });
  checkResources(out, [...path, "resources"], c.resources);
  if (c.healthCheck) checkHealthCheck(out, [...path, "healthCheck"], c.healthCheck);
}

function known(volumes: Map<string, Volume>, kind?: Volume["kind"]): string {
  const names = [...volumes.values()].filter((v) => !kind || v.kind === kind).map((v) => v.name);
  return names.length ? ` (declared: ${names.join(", ")})` : " (no such volumes are declared)";
}

function checkReplicas(out: IssueList, pod: Pod): void {
  const r = pod.replicas;
  const path = ["spec", "replicas"];
  if (!Number.isInteger(r.min) || r.min < 0 || r.min > LIMITS.maxReplicas)
    out.add([...path, "min"], "INVALID_VALUE", `min must be between 0 and ${LIMITS.maxReplicas}`);
  if (!Number.isInteger(r.max) || r.max < 1 || r.max > LIMITS.maxReplicas)
    out.add([...path, "max"], "INVALID_VALUE", `max must be between 1 and ${LIMITS.maxReplicas}`);
  else if (r.min > r.max)
    out.add([...path, "min"], "CONFLICT", `min (${r.min}) is larger than max (${r.max})`);
  if (r.min === 0) {
    checkRange(
      out,
      [...path, "scaleToZeroAfter"],
      "scaleToZeroAfter (seconds)",
      r.idleSeconds,
      1n,
      LIMITS.idleSeconds,
      String,
    );
    const hasHttp = pod.containers.some((c) => c.ports.some((p) => p.protocol === "http"));
    if (!hasHttp)
      out.add(
        [...path, "min"],
        "CONFLICT",
        "scaling to zero needs an http port: an HTTP request is what wakes the pod",
      );
  } else if (r.idleSeconds !== 0n) {
    out.add([...path, "scaleToZeroAfter"], "CONFLICT", "scaleToZeroAfter needs min: 0");
  }
}

/** Every problem with a pod, in manifest order; empty when the pod is valid. */
export function validatePod(pod: Pod): PodIssue[] {
  const out = new IssueList();
  const problem = dnsLabelProblem(pod.name);
  if (problem) out.add(["metadata", "name"], "INVALID_NAME", `pod name ${problem}`);
  const volumes = checkVolumes(out, pod.volumes);
  if (pod.containers.length === 0)
    out.add(["spec", "containers"], "MISSING_KEY", "a pod needs at least one container");
  if (pod.containers.length > LIMITS.containers)
    out.add(["spec", "containers"], "TOO_LARGE", `more than ${LIMITS.containers} containers`);
  const wide: PodWide = { containerPorts: new Map(), portNames: new Set(), hostnames: new Set(), volumes };
  const names = new Set<string>();
  pod.containers.forEach((c, i) => {
    const p = dnsLabelProblem(c.name);
    if (p) out.add(["spec", "containers", i, "name"], "INVALID_NAME", `container name ${p}`);
    else if (names.has(c.name))
      out.add(["spec", "containers", i, "name"], "DUPLICATE", `duplicate container name "${c.name}"`);
    names.add(c.name);
    checkContainer(out, c, i, wide);
  });
  checkReplicas(out, pod);
  return out.issues;
}
