/**
 * The pod manifest: YAML close to a Kubernetes Pod (apiVersion, kind, metadata, spec), read into a typed Pod
 * with every error located as FILE:LINE:COL, and written back (formatManifest) so that reading what was
 * written gives the same Pod.
 */
import { isMap, type Node, stringify } from "yaml";
import { type Diagnostic, ManifestError } from "./diagnostics.js";
import { DurationError, formatDuration, parseDuration } from "./duration.js";
import {
  type Container,
  DEFAULTS,
  type EnvVar,
  type HealthCheck,
  type ImageRef,
  type PathSegment,
  type Pod,
  type Port,
  type Replicas,
  type Resources,
  type Volume,
  type VolumeMount,
  validatePod,
} from "./pod.js";
import { formatBytes, formatCpu, parseBytes, parseCount, parseCpu, QuantityError } from "./quantity.js";
import { type Entry, type MapView, YamlReader } from "./yaml-reader.js";

export const API_VERSION = "trustedpods/v1";
export const KIND = "Pod";

// "x-*": extension keys, ignored, so that anchors for reuse have somewhere to live (as in Compose).
const TOP_KEYS = ["apiVersion", "kind", "metadata", "spec", "x-*"] as const;
const METADATA_KEYS = ["name"] as const;
const SPEC_KEYS = ["containers", "volumes", "replicas"] as const;
const CONTAINER_KEYS = [
  "name",
  "image",
  "command",
  "args",
  "workingDir",
  "env",
  "ports",
  "volumeMounts",
  "resources",
  "healthCheck",
] as const;
const IMAGE_KEYS = ["ipfs", "digest", "listing"] as const;
const ENV_KEYS = ["name", "value", "valueFrom"] as const;
const PORT_KEYS = ["name", "containerPort", "http", "tcp", "udp"] as const;
const MOUNT_KEYS = ["name", "mountPath", "readOnly"] as const;
const RESOURCE_KEYS = ["cpu", "memory", "storage", "gpu"] as const;
const VOLUME_KEYS = ["name", "emptyDir", "persistent", "secret"] as const;
const REPLICA_KEYS = ["min", "max", "scaleToZeroAfter"] as const;
const HEALTH_KEYS = ["http", "exec", "interval", "timeout", "retries", "startPeriod"] as const;

/** Reads one manifest; each reader function returns a placeholder after reporting, so reading goes on. */
class ManifestReader {
  constructor(private readonly r: YamlReader) {}

  pod(root: Node): Pod {
    const r = this.r;
    const top = r.map(root, [], "the manifest", TOP_KEYS);
    const pod: Pod = { name: "", containers: [], volumes: [], replicas: { min: 1, max: 1, idleSeconds: 0n } };
    if (!top) return pod;
    this.constant(top, "apiVersion", API_VERSION);
    this.constant(top, "kind", KIND);
    const metaEntry = r.require(top, "metadata", "the manifest", []);
    const meta =
      metaEntry && r.map(metaEntry.value, ["metadata"], "metadata", METADATA_KEYS, metaEntry.keyNode);
    if (meta) pod.name = this.requiredString(meta, "name", "metadata", ["metadata"]);
    else r.poison(["metadata"]);
    const specEntry = r.require(top, "spec", "the manifest", []);
    const spec = specEntry && r.map(specEntry.value, ["spec"], "spec", SPEC_KEYS, specEntry.keyNode);
    if (!spec) {
      r.poison(["spec"]);
      return pod;
    }
    const containers = r.require(spec, "containers", "spec", ["spec"]);
    if (containers) {
      const items = r.seq(containers.value, ["spec", "containers"], "containers", containers.keyNode);
      if (items.length === 0) r.record(["spec", "containers"], containers.keyNode);
      pod.containers = items.map((n, i) => this.container(n, ["spec", "containers", i]));
    }
    const volumes = spec.get("volumes");
    if (volumes) {
      const items = r.seq(volumes.value, ["spec", "volumes"], "volumes", volumes.keyNode);
      pod.volumes = items.map((n, i) => this.volume(n, ["spec", "volumes", i]));
    }
    const replicas = spec.get("replicas");
    if (replicas) pod.replicas = this.replicas(replicas, ["spec", "replicas"]);
    return pod;
  }

  private constant(m: MapView, key: string, expected: string): void {
    const e = this.r.require(m, key, "the manifest", []);
    if (!e) return;
    const v = this.r.string(e.value, [key], key, e.keyNode);
    if (v !== undefined && v !== expected)
      this.r.report(e.value, "INVALID_VALUE", `${key} must be "${expected}", not "${v}"`);
  }

  private requiredString(m: MapView, key: string, what: string, path: PathSegment[]): string {
    const e = this.r.require(m, key, what, path);
    return (e && this.r.string(e.value, [...path, key], key, e.keyNode)) ?? "";
  }

  private optionalString(m: MapView, key: string, path: PathSegment[]): string | undefined {
    const e = m.get(key);
    return e ? this.r.string(e.value, [...path, key], key, e.keyNode) : undefined;
  }

  private stringList(e: Entry | undefined, path: PathSegment[], what: string): string[] {
    if (!e) return [];
    return this.r
      .seq(e.value, path, what, e.keyNode)
      .map((n, i) => this.r.scalarText(n, [...path, i], `${what} items`, e.keyNode) ?? "");
  }

  private container(node: Node | null, path: PathSegment[]): Container {
    const r = this.r;
    const c: Container = {
      name: "",
      image: { kind: "local", name: "" },
      command: [],
      args: [],
      env: [],
      ports: [],
      volumeMounts: [],
      resources: {
        cpuMillis: DEFAULTS.cpuMillis,
        memoryBytes: DEFAULTS.memoryBytes,
        storageBytes: DEFAULTS.storageBytes,
        gpu: DEFAULTS.gpu,
      },
    };
    const m = r.map(node, path, "container", CONTAINER_KEYS);
    if (!m) return c;
    c.name = this.requiredString(m, "name", "a container", path);
    const image = r.require(m, "image", "a container", path);
    if (image) c.image = this.image(image, [...path, "image"]);
    c.command = this.stringList(m.get("command"), [...path, "command"], "command");
    c.args = this.stringList(m.get("args"), [...path, "args"], "args");
    const wd = this.optionalString(m, "workingDir", path);
    if (wd !== undefined) c.workingDir = wd;
    const env = m.get("env");
    if (env)
      c.env = r
        .seq(env.value, [...path, "env"], "env", env.keyNode)
        .map((n, i) => this.env(n, [...path, "env", i]));
    const ports = m.get("ports");
    if (ports)
      c.ports = r
        .seq(ports.value, [...path, "ports"], "ports", ports.keyNode)
        .map((n, i) => this.port(n, [...path, "ports", i]));
    const mounts = m.get("volumeMounts");
    if (mounts)
      c.volumeMounts = r
        .seq(mounts.value, [...path, "volumeMounts"], "volumeMounts", mounts.keyNode)
        .map((n, i) => this.mount(n, [...path, "volumeMounts", i]));
    const res = m.get("resources");
    if (res) c.resources = this.resources(res, [...path, "resources"]);
    const hc = m.get("healthCheck");
    if (hc) {
      const h = this.healthCheck(hc, [...path, "healthCheck"]);
      if (h) c.healthCheck = h;
    }
    return c;
  }

  private image(e: Entry, path: PathSegment[]): ImageRef {
    const r = this.r;
    const node = r.resolve(e.value);
    if (node && isMap(node)) {
      const m = r.map(node, path, "image", IMAGE_KEYS)!;
      const ipfs = m.get("ipfs");
      const listing = m.get("listing");
      if (ipfs && listing) {
        r.report(listing.keyNode, "CONFLICT", "an image is either ipfs or listing, not both");
        r.poison(path);
      }
      if (listing) {
        if (m.has("digest"))
          r.report(m.get("digest")!.keyNode, "CONFLICT", "a listing image takes its digest from the listing");
        const text = r.scalarText(listing.value, [...path, "listing"], "listing", listing.keyNode);
        if (text !== undefined && /^\d{1,78}$/.test(text))
          return { kind: "listing", listingId: BigInt(text) };
        if (text !== undefined) {
          r.report(listing.value, "INVALID_VALUE", `listing id "${text}" must be a decimal integer`);
          r.poison([...path, "listing"]);
        }
        return { kind: "listing", listingId: 0n };
      }
      if (ipfs) {
        const cid = r.string(ipfs.value, [...path, "ipfs"], "ipfs", ipfs.keyNode) ?? "";
        const digest = this.requiredString(m, "digest", "an ipfs image", path);
        return { kind: "ipfs", cid, digest };
      }
      r.report(node, "MISSING_KEY", 'an image mapping needs "ipfs" (with "digest") or "listing"');
      r.poison(path);
      return { kind: "local", name: "" };
    }
    const name = r.string(e.value, path, "image", e.keyNode);
    return { kind: "local", name: name ?? "" };
  }

  private env(node: Node | null, path: PathSegment[]): EnvVar {
    const r = this.r;
    const m = r.map(node, path, "env entry", ENV_KEYS);
    if (!m) return { name: "", kind: "value", value: "" };
    const name = this.requiredString(m, "name", "an env entry", path);
    const value = m.get("value");
    const from = m.get("valueFrom");
    if (value && from)
      r.report(from.keyNode, "CONFLICT", 'an env entry has either "value" or "valueFrom", not both');
    if (from) {
      const f = r.map(from.value, [...path, "valueFrom"], "valueFrom", ["secret"], from.keyNode);
      const secret = f ? this.requiredString(f, "secret", "valueFrom", [...path, "valueFrom"]) : "";
      return { name, kind: "secret", secret };
    }
    if (!value) {
      r.report(m.node, "MISSING_KEY", `env entry "${name}" needs "value" or "valueFrom"`);
      r.poison(path);
      return { name, kind: "value", value: "" };
    }
    return {
      name,
      kind: "value",
      value: r.scalarText(value.value, [...path, "value"], "value", value.keyNode) ?? "",
    };
  }

  private port(node: Node | null, path: PathSegment[]): Port {
    const r = this.r;
    const m = r.map(node, path, "port", PORT_KEYS);
    const port: Port = { containerPort: 1, protocol: "tcp" };
    if (!m) return port;
    const name = this.optionalString(m, "name", path);
    if (name !== undefined) port.name = name;
    const cp = r.require(m, "containerPort", "a port", path);
    if (cp)
      port.containerPort = r.integer(cp.value, [...path, "containerPort"], "containerPort", cp.keyNode) ?? 1;
    const http = m.get("http");
    const tcp = m.get("tcp");
    const udp = m.get("udp");
    // The placeholder protocol (tcp) cannot cause further errors, so the port's other fields are still checked.
    const given = [http, tcp, udp].filter((e) => e !== undefined);
    if (given.length > 1)
      r.report(given[1]!.keyNode, "CONFLICT", 'a port is one of "http", "tcp" or "udp", not several');
    else if (given.length === 0) r.report(m.node, "MISSING_KEY", 'a port needs "http", "tcp" or "udp"');
    if (http) {
      port.protocol = "http";
      const h = r.map(http.value, [...path, "http"], "http", ["hostname"], http.keyNode);
      const hostname = h && this.optionalString(h, "hostname", [...path, "http"]);
      if (hostname !== undefined) port.hostname = hostname;
    } else if (tcp) {
      r.map(tcp.value, [...path, "tcp"], "tcp", [], tcp.keyNode);
    } else if (udp) {
      port.protocol = "udp";
      r.map(udp.value, [...path, "udp"], "udp", [], udp.keyNode);
    }
    return port;
  }

  private mount(node: Node | null, path: PathSegment[]): VolumeMount {
    const m = this.r.map(node, path, "volume mount", MOUNT_KEYS);
    const mount: VolumeMount = { name: "", mountPath: "/", readOnly: false };
    if (!m) return mount;
    mount.name = this.requiredString(m, "name", "a volume mount", path);
    mount.mountPath = this.requiredString(m, "mountPath", "a volume mount", path);
    const ro = m.get("readOnly");
    if (ro) mount.readOnly = this.r.boolean(ro.value, [...path, "readOnly"], "readOnly", ro.keyNode) ?? false;
    return mount;
  }

  private quantity(
    m: MapView,
    key: string,
    path: PathSegment[],
    parse: (s: string) => bigint,
    fallback: bigint,
  ): bigint {
    const e = m.get(key);
    if (!e) return fallback;
    const text = this.r.scalarText(e.value, [...path, key], key, e.keyNode);
    if (text === undefined) return fallback;
    try {
      return parse(text);
    } catch (err) {
      if (!(err instanceof QuantityError)) throw err;
      this.r.report(e.value, "INVALID_QUANTITY", `${key}: ${err.message}`);
      this.r.poison([...path, key]);
      return fallback;
    }
  }

  private duration(m: MapView, key: string, path: PathSegment[], fallback: bigint): bigint {
    const e = m.get(key);
    if (!e) return fallback;
    const text = this.r.scalarText(e.value, [...path, key], key, e.keyNode);
    if (text === undefined) return fallback;
    try {
      return parseDuration(text);
    } catch (err) {
      if (!(err instanceof DurationError)) throw err;
      this.r.report(e.value, "INVALID_VALUE", `${key}: ${err.message}`);
      this.r.poison([...path, key]);
      return fallback;
    }
  }

  private resources(e: Entry, path: PathSegment[]): Resources {
    const m = this.r.map(e.value, path, "resources", RESOURCE_KEYS, e.keyNode);
    const res: Resources = {
      cpuMillis: DEFAULTS.cpuMillis,
      memoryBytes: DEFAULTS.memoryBytes,
      storageBytes: DEFAULTS.storageBytes,
      gpu: DEFAULTS.gpu,
    };
    if (!m) return res;
    res.cpuMillis = this.quantity(m, "cpu", path, parseCpu, res.cpuMillis);
    res.memoryBytes = this.quantity(m, "memory", path, parseBytes, res.memoryBytes);
    res.storageBytes = this.quantity(m, "storage", path, parseBytes, res.storageBytes);
    res.gpu = this.quantity(m, "gpu", path, parseCount, res.gpu);
    return res;
  }

  private healthCheck(e: Entry, path: PathSegment[]): HealthCheck | undefined {
    const r = this.r;
    const m = r.map(e.value, path, "healthCheck", HEALTH_KEYS, e.keyNode);
    if (!m) return undefined;
    const hc: HealthCheck = {
      probe: { kind: "exec", command: ["true"] },
      intervalMs: this.duration(m, "interval", path, DEFAULTS.intervalMs),
      timeoutMs: this.duration(m, "timeout", path, DEFAULTS.timeoutMs),
      retries: DEFAULTS.retries,
      startPeriodMs: this.duration(m, "startPeriod", path, DEFAULTS.startPeriodMs),
    };
    const retries = m.get("retries");
    if (retries)
      hc.retries =
        r.integer(retries.value, [...path, "retries"], "retries", retries.keyNode) ?? DEFAULTS.retries;
    const http = m.get("http");
    const exec = m.get("exec");
    if (http && exec)
      r.report(exec.keyNode, "CONFLICT", 'a health check is either "http" or "exec", not both');
    else if (!http && !exec) r.report(m.node, "MISSING_KEY", 'a health check needs "http" or "exec"');
    if (http) {
      const hp = [...path, "http"];
      const h = r.map(http.value, hp, "http probe", ["path", "port"], http.keyNode);
      const port = h && r.require(h, "port", "an http probe", hp);
      hc.probe = {
        kind: "http",
        path: (h && this.optionalString(h, "path", hp)) ?? "/",
        port: (port && r.integer(port.value, [...hp, "port"], "port", port.keyNode)) ?? 1,
      };
    } else if (exec) {
      const ep = [...path, "exec"];
      const x = r.map(exec.value, ep, "exec probe", ["command"], exec.keyNode);
      const cmd = x && r.require(x, "command", "an exec probe", ep);
      hc.probe = { kind: "exec", command: this.stringList(cmd, [...ep, "command"], "command") };
    }
    return hc;
  }

  private volume(node: Node | null, path: PathSegment[]): Volume {
    const r = this.r;
    const m = r.map(node, path, "volume", VOLUME_KEYS);
    if (!m) return { name: "", kind: "emptyDir" };
    const name = this.requiredString(m, "name", "a volume", path);
    const kinds = (["emptyDir", "persistent", "secret"] as const).filter((k) => m.has(k));
    if (kinds.length !== 1) {
      r.report(
        kinds.length ? m.get(kinds[1]!)!.keyNode : m.node,
        kinds.length ? "CONFLICT" : "MISSING_KEY",
        kinds.length
          ? `a volume has one kind, not ${kinds.join(" and ")}`
          : 'a volume needs "emptyDir", "persistent" or "secret"',
      );
      r.poison(path);
    }
    const kind = kinds[0] ?? "emptyDir";
    const e = m.get(kind);
    const kp = [...path, kind];
    if (kind === "persistent" && e) {
      const p = r.map(e.value, kp, "persistent", ["size"], e.keyNode);
      if (p && !p.has("size")) r.require(p, "size", "a persistent volume", kp);
      const size = p ? this.quantity(p, "size", kp, parseBytes, 1n) : 1n;
      return { name, kind: "persistent", sizeBytes: size };
    }
    if (kind === "secret" && e) {
      const s = r.map(e.value, kp, "secret", ["file", "cid", "keyRef"], e.keyNode);
      if (s?.has("cid") || s?.has("keyRef")) {
        if (s.has("file"))
          r.report(
            s.get("file")!.keyNode,
            "CONFLICT",
            'a secret comes from "file" or from "cid" and "keyRef", not both',
          );
        return {
          name,
          kind: "secret",
          source: {
            kind: "ipfs",
            cid: this.requiredString(s, "cid", "a secret", kp),
            keyRef: this.requiredString(s, "keyRef", "a secret", kp),
          },
        };
      }
      const file = s ? this.requiredString(s, "file", "a secret", kp) : "";
      return { name, kind: "secret", source: { kind: "file", path: file } };
    }
    if (e) r.map(e.value, kp, "emptyDir", [], e.keyNode);
    return { name, kind: "emptyDir" };
  }

  private replicas(e: Entry, path: PathSegment[]): Replicas {
    const r = this.r;
    const out: Replicas = { min: 1, max: 1, idleSeconds: 0n };
    const m = r.map(e.value, path, "replicas", REPLICA_KEYS, e.keyNode);
    if (!m) return out;
    const min = m.get("min");
    const max = m.get("max");
    if (min) out.min = r.integer(min.value, [...path, "min"], "min", min.keyNode) ?? 1;
    if (max) out.max = r.integer(max.value, [...path, "max"], "max", max.keyNode) ?? Math.max(1, out.min);
    else out.max = Math.max(1, out.min);
    const idleMs = this.duration(
      m,
      "scaleToZeroAfter",
      path,
      out.min === 0 ? DEFAULTS.idleSeconds * 1000n : 0n,
    );
    if (idleMs % 1000n !== 0n) {
      r.report(m.get("scaleToZeroAfter")!.value, "INVALID_VALUE", "scaleToZeroAfter must be whole seconds");
      r.poison([...path, "scaleToZeroAfter"]);
    }
    out.idleSeconds = idleMs / 1000n;
    return out;
  }
}

export interface ManifestCheck {
  /** Present when there are no errors. */
  pod?: Pod;
  /** Errors and warnings in source order. */
  diagnostics: Diagnostic[];
}

export interface ManifestOptions {
  /** Called with each secret file path as written; false reports the file as missing. */
  fileExists?: (path: string) => boolean;
}

function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return ds.sort((a, b) => a.line - b.line || a.col - b.col);
}

/** Reads and validates a manifest, returning every diagnostic; never throws for bad input. */
export function checkManifest(text: string, file: string, options: ManifestOptions = {}): ManifestCheck {
  const { reader, root } = YamlReader.parse(text, file);
  if (!root) {
    if (!reader.hasErrors()) reader.report(null, "MISSING_KEY", "the manifest is empty");
    return { diagnostics: sortDiagnostics(reader.diagnostics) };
  }
  const pod = new ManifestReader(reader).pod(root);
  for (const issue of validatePod(pod)) {
    if (reader.isPoisoned(issue.path)) continue;
    reader.report(reader.nodeAt(issue.path), issue.code, issue.message);
  }
  if (options.fileExists) {
    pod.volumes.forEach((v, i) => {
      if (v.kind !== "secret" || v.source.kind !== "file" || v.source.path === "") return;
      if (!options.fileExists!(v.source.path)) {
        const path = ["spec", "volumes", i, "secret", "file"];
        reader.report(reader.nodeAt(path), "FILE_NOT_FOUND", `secret file "${v.source.path}" does not exist`);
      }
    });
  }
  const diagnostics = sortDiagnostics(reader.diagnostics);
  return reader.hasErrors() ? { diagnostics } : { pod, diagnostics };
}

/** Reads and validates a manifest; throws ManifestError listing every error. */
export function parseManifest(text: string, file: string, options: ManifestOptions = {}): Pod {
  const { pod, diagnostics } = checkManifest(text, file, options);
  if (!pod) throw new ManifestError(diagnostics.filter((d) => d.severity === "error"));
  return pod;
}

/** The manifest document for a pod as plain data (what formatManifest prints). */
export function manifestObject(pod: Pod): Record<string, unknown> {
  const spec: Record<string, unknown> = { containers: pod.containers.map(containerObject) };
  if (pod.volumes.length) spec.volumes = pod.volumes.map(volumeObject);
  const r = pod.replicas;
  if (r.min !== 1 || r.max !== 1) {
    spec.replicas = {
      min: r.min,
      max: r.max,
      ...(r.min === 0 ? { scaleToZeroAfter: formatDuration(r.idleSeconds * 1000n) } : {}),
    };
  }
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name: pod.name }, spec };
}

function containerObject(c: Container): Record<string, unknown> {
  const o: Record<string, unknown> = { name: c.name };
  const img = c.image;
  o.image =
    img.kind === "local"
      ? img.name
      : img.kind === "ipfs"
        ? { ipfs: img.cid, digest: img.digest }
        : { listing: String(img.listingId) };
  if (c.command.length) o.command = c.command;
  if (c.args.length) o.args = c.args;
  if (c.workingDir !== undefined) o.workingDir = c.workingDir;
  if (c.env.length)
    o.env = c.env.map((e) =>
      e.kind === "value"
        ? { name: e.name, value: e.value }
        : { name: e.name, valueFrom: { secret: e.secret } },
    );
  if (c.ports.length)
    o.ports = c.ports.map((p) => ({
      ...(p.name !== undefined ? { name: p.name } : {}),
      containerPort: p.containerPort,
      ...(p.protocol === "http"
        ? { http: p.hostname !== undefined ? { hostname: p.hostname } : {} }
        : p.protocol === "udp"
          ? { udp: {} }
          : { tcp: {} }),
    }));
  if (c.volumeMounts.length)
    o.volumeMounts = c.volumeMounts.map((m) => ({
      name: m.name,
      mountPath: m.mountPath,
      ...(m.readOnly ? { readOnly: true } : {}),
    }));
  const r = c.resources;
  o.resources = {
    cpu: formatCpu(r.cpuMillis),
    memory: formatBytes(r.memoryBytes),
    storage: formatBytes(r.storageBytes),
    ...(r.gpu ? { gpu: Number(r.gpu) } : {}),
  };
  if (c.healthCheck) {
    const h = c.healthCheck;
    o.healthCheck = {
      ...(h.probe.kind === "http"
        ? { http: { path: h.probe.path, port: h.probe.port } }
        : { exec: { command: h.probe.command } }),
      interval: formatDuration(h.intervalMs),
      timeout: formatDuration(h.timeoutMs),
      retries: h.retries,
      ...(h.startPeriodMs ? { startPeriod: formatDuration(h.startPeriodMs) } : {}),
    };
  }
  return o;
}

function volumeObject(v: Volume): Record<string, unknown> {
  switch (v.kind) {
    case "emptyDir":
      return { name: v.name, emptyDir: {} };
    case "persistent":
      return { name: v.name, persistent: { size: formatBytes(v.sizeBytes) } };
    case "secret":
      return {
        name: v.name,
        secret:
          v.source.kind === "file" ? { file: v.source.path } : { cid: v.source.cid, keyRef: v.source.keyRef },
      };
  }
}

/** Prints a pod as manifest YAML; parseManifest(formatManifest(pod)) deep-equals pod. */
export function formatManifest(pod: Pod): string {
  return stringify(manifestObject(pod), { lineWidth: 0, flowCollectionPadding: false });
}
