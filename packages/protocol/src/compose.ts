/**
 * Compose import: turns a docker-compose file into one pod. Services become containers (they share the pod's
 * network, and each container name resolves to 127.0.0.1), published ports become http or tcp ports, named
 * volumes persistent volumes, and whatever a pod cannot express is a located warning when it can be dropped
 * safely, or an error when the pod would not work without it. The mapping is documented in docs/manifest.md.
 */
import { isMap, isScalar, isSeq, type Node } from "yaml";
import { type Diagnostic, formatDiagnostic } from "./diagnostics.js";
import { DurationError, parseDuration } from "./duration.js";
import { formatManifest } from "./manifest.js";
import {
  type Container,
  DEFAULTS,
  type EnvVar,
  type HealthCheck,
  isDnsLabel,
  type PathSegment,
  type Pod,
  type Port,
  type Volume,
  type VolumeMount,
  validatePod,
} from "./pod.js";
import { parseDotEnv, ShellSplitError, shellSplit } from "./shell.js";
import { type Entry, type MapView, YamlReader } from "./yaml-reader.js";

export interface ComposeImportOptions {
  /** Variables for ${VAR} interpolation and for pass-through environment entries (e.g. from `.env`). */
  env?: Record<string, string>;
  /** Reads a file named in the Compose file (env_file), as written there; undefined when it does not exist. */
  readFile?: (path: string) => string | undefined;
  /** Whether a bind-mount source is a file or a directory; without it, names with an extension are files. */
  pathKind?: (path: string) => "file" | "directory" | "missing";
  /** The pod name when the Compose file has no top-level `name:`; Compose uses the project directory's name. */
  projectName?: string;
}

export interface ComposeImport {
  /** Present when there are no errors. */
  pod?: Pod;
  /** The manifest YAML for pod. */
  manifest?: string;
  diagnostics: Diagnostic[];
}

/** Resources a container gets when Compose sets no limits (Compose has no default; most apps need this much). */
export const COMPOSE_DEFAULT_RESOURCES = { cpuMillis: 500n, memoryBytes: 512n << 20n } as const;
/** Size of a persistent volume made from a named Compose volume, which has no size. */
export const COMPOSE_DEFAULT_VOLUME_SIZE = 1n << 30n;
/** Container ports taken for HTTP unless the port says otherwise (app_protocol); all others become tcp. */
export const HTTP_PORTS: readonly number[] = [
  80, 3000, 4000, 5000, 5173, 8000, 8008, 8069, 8080, 8081, 8088, 8888, 9080,
];

const SERVICE_KEYS = [
  "annotations",
  "attach",
  "blkio_config",
  "build",
  "cap_add",
  "cap_drop",
  "cgroup",
  "cgroup_parent",
  "command",
  "configs",
  "container_name",
  "cpu_count",
  "cpu_percent",
  "cpu_period",
  "cpu_quota",
  "cpu_rt_period",
  "cpu_rt_runtime",
  "cpu_shares",
  "cpus",
  "cpuset",
  "credential_spec",
  "depends_on",
  "deploy",
  "develop",
  "device_cgroup_rules",
  "devices",
  "dns",
  "dns_opt",
  "dns_search",
  "domainname",
  "entrypoint",
  "env_file",
  "environment",
  "expose",
  "extends",
  "external_links",
  "extra_hosts",
  "gpus",
  "group_add",
  "healthcheck",
  "hostname",
  "image",
  "init",
  "ipc",
  "isolation",
  "label_file",
  "labels",
  "links",
  "logging",
  "mac_address",
  "mem_limit",
  "mem_reservation",
  "mem_swappiness",
  "memswap_limit",
  "network_mode",
  "networks",
  "oom_kill_disable",
  "oom_score_adj",
  "pid",
  "pids_limit",
  "platform",
  "ports",
  "post_start",
  "pre_stop",
  "privileged",
  "profiles",
  "provider",
  "pull_policy",
  "read_only",
  "restart",
  "runtime",
  "scale",
  "secrets",
  "security_opt",
  "shm_size",
  "stdin_open",
  "stop_grace_period",
  "stop_signal",
  "storage_opt",
  "sysctls",
  "tmpfs",
  "tty",
  "ulimits",
  "use_api_socket",
  "user",
  "userns_mode",
  "uts",
  "volumes",
  "volumes_from",
  "working_dir",
  "x-*",
] as const;
const TOP_KEYS = [
  "version",
  "name",
  "services",
  "volumes",
  "networks",
  "secrets",
  "configs",
  "include",
  "models",
  "x-*",
];

/** Keys that give a container more of the host than a pod on a provider can: the pod would not work. */
const FATAL_KEYS: Record<string, string> = {
  cap_add: "extra kernel capabilities are not granted to pods",
  devices: "host devices are not available to pods",
  device_cgroup_rules: "host devices are not available to pods",
  volumes_from: "mount the volumes explicitly instead",
  extends: "inline the extended service",
  runtime: "the provider chooses the container runtime",
  isolation: "the provider chooses the isolation",
  cgroup_parent: "the provider manages cgroups",
  use_api_socket: "the container engine's socket is not available to pods",
  provider: "provider services are not containers",
};

/** Keys dropped with a warning; the value says what the pod does instead. */
const DROPPED_KEYS: Record<string, string> = {
  annotations: "",
  attach: "",
  blkio_config: "",
  cap_drop: "the pod runs with the provider's default capabilities",
  cgroup: "",
  container_name: "other containers reach it by its service name or localhost",
  cpu_count: "",
  cpu_percent: "",
  cpu_period: "",
  cpu_quota: "",
  cpu_rt_period: "",
  cpu_rt_runtime: "",
  cpu_shares: "",
  cpuset: "",
  credential_spec: "",
  depends_on: "containers of a pod start together, without ordering",
  develop: "",
  dns: "",
  dns_opt: "",
  dns_search: "",
  domainname: "",
  external_links: "",
  extra_hosts: "",
  group_add: "",
  hostname: "",
  init: "",
  label_file: "",
  links: "containers reach each other by service name or localhost",
  logging: "logs are read with tpod logs",
  mac_address: "",
  mem_reservation: "",
  mem_swappiness: "",
  memswap_limit: "",
  oom_kill_disable: "",
  oom_score_adj: "",
  pids_limit: "",
  platform: "",
  post_start: "",
  pre_stop: "",
  pull_policy: "",
  read_only: "",
  security_opt: "",
  shm_size: "",
  stdin_open: "",
  stop_grace_period: "",
  stop_signal: "",
  storage_opt: "",
  sysctls: "",
  tty: "",
  ulimits: "",
  user: "the container runs as its image's user",
  userns_mode: "",
};

const HOST_ONLY_PATHS = /^\/(var\/run|run|proc|sys|dev)(\/|$)|docker\.sock|podman\.sock/;

function toDnsLabel(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/, "");
  return s;
}

/** Compose byte sizes ("512m", "1gb", "2048k", 1073741824): binary multiples, as Docker reads them. */
function parseComposeBytes(text: string): bigint | undefined {
  const m = /^(\d+)(?:\.(\d+))?\s*([bkmgt]?)b?$/i.exec(text.trim());
  if (!m) return undefined;
  const [, whole = "0", frac = "", unit = ""] = m;
  const shift = { "": 0n, b: 0n, k: 10n, m: 20n, g: 30n, t: 40n }[unit.toLowerCase()] ?? 0n;
  const scale = 10n ** BigInt(frac.length);
  return ((BigInt(whole) * scale + BigInt(frac || "0")) << shift) / scale;
}

/** Compose cpus ("0.5", 2): millicores, rounded up to whole millicores. */
function parseComposeCpus(text: string): bigint | undefined {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!m) return undefined;
  const [, whole = "0", frac = ""] = m;
  const f = frac.slice(0, 3).padEnd(3, "0");
  const rest = frac.length > 3 && /[1-9]/.test(frac.slice(3)) ? 1n : 0n;
  return BigInt(whole) * 1000n + BigInt(f) + rest;
}

interface ServiceState {
  name: string;
  index: number;
  container: Container;
  /** Container ports this service listens on (published or exposed), for the same-port check. */
  listens: Map<number, Node | null>;
}

class ComposeReader {
  private readonly env: Record<string, string>;
  readonly volumes: Volume[] = [];
  private readonly volumeIndex = new Map<string, number>();
  private namedVolumes: MapView | undefined;
  private topSecrets: MapView | undefined;
  private topConfigs: MapView | undefined;
  private readonly warnedVolumes = new Set<string>();

  constructor(
    private readonly r: YamlReader,
    private readonly file: string,
    private readonly options: ComposeImportOptions,
  ) {
    this.env = options.env ?? {};
  }

  /** ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR:+alt}, $VAR and $$, as Compose reads them. */
  interpolate(text: string, node: Node | null): string {
    let out = "";
    let i = 0;
    while (i < text.length) {
      const ch = text[i]!;
      if (ch !== "$") {
        out += ch;
        i++;
        continue;
      }
      const next = text[i + 1];
      if (next === "$") {
        out += "$";
        i += 2;
      } else if (next === "{") {
        let depth = 1;
        let j = i + 2;
        while (j < text.length && depth > 0) {
          if (text[j] === "{") depth++;
          else if (text[j] === "}") depth--;
          j++;
        }
        if (depth > 0) {
          this.r.report(node, "INVALID_VALUE", `unterminated \${ in "${text.slice(0, 60)}"`);
          return out + text.slice(i);
        }
        out += this.expand(text.slice(i + 2, j - 1), node);
        i = j;
      } else {
        const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
        if (!m) {
          out += "$";
          i++;
          continue;
        }
        out += this.lookup(m[0], node);
        i += 1 + m[0].length;
      }
    }
    return out;
  }

  private lookup(name: string, node: Node | null): string {
    const v = this.env[name];
    if (v !== undefined) return v;
    this.r.warn(
      node,
      "UNKNOWN_REFERENCE",
      `variable ${name} is not set: using an empty string (set it in .env)`,
    );
    return "";
  }

  private expand(expr: string, node: Node | null): string {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])([\s\S]*))?$/.exec(expr);
    if (!m) {
      this.r.report(node, "INVALID_VALUE", `"\${${expr}}" is not a valid substitution`);
      return "";
    }
    const [, name = "", colon, op, arg = ""] = m;
    if (!op) return this.lookup(name, node);
    const value = this.env[name];
    const set = colon ? value !== undefined && value !== "" : value !== undefined;
    if (op === "-") return set ? value! : this.interpolate(arg, node);
    if (op === "+") return set ? this.interpolate(arg, node) : "";
    if (!set) this.r.report(node, "MISSING_KEY", `variable ${name} is required${arg ? `: ${arg}` : ""}`);
    return value ?? "";
  }

  /** A scalar's text (numbers and booleans as written), interpolated. */
  text(raw: Node | null, path: PathSegment[], what: string, anchor?: Node | null): string | undefined {
    const t = this.r.scalarText(raw, path, what, anchor ?? undefined);
    if (t === undefined) return undefined;
    const errorsBefore = this.r.diagnostics.length;
    const value = this.interpolate(t, this.r.resolve(raw));
    // A failed substitution is reported once; checks of the resulting value would only repeat it.
    if (this.r.diagnostics.slice(errorsBefore).some((d) => d.severity === "error")) this.r.poison(path);
    return value;
  }

  /** A string or a list of strings. */
  stringOrList(e: Entry, what: string): { node: Node | null; value: string }[] {
    const node = this.r.resolve(e.value);
    if (node && isSeq(node)) {
      return (node.items as (Node | null)[]).map((n) => ({
        node: n,
        value: this.text(n, [], `${what} items`, e.keyNode) ?? "",
      }));
    }
    const v = this.text(e.value, [], what, e.keyNode);
    return v === undefined ? [] : [{ node, value: v }];
  }

  pod(root: Node): Pod | undefined {
    const r = this.r;
    const top = r.map(root, [], "the Compose file", TOP_KEYS);
    if (!top) return undefined;
    for (const key of ["include", "models"]) {
      const e = top.get(key);
      if (e) r.report(e.keyNode, "UNSUPPORTED", `${key}: not supported; merge the files into one`);
    }
    const networks = top.get("networks");
    if (networks)
      r.warn(
        networks.keyNode,
        "UNSUPPORTED",
        "networks: dropped; a pod has one network shared by all its containers",
      );
    const vols = top.get("volumes");
    this.namedVolumes = vols ? r.map(vols.value, ["volumes"], "volumes", undefined, vols.keyNode) : undefined;
    const secrets = top.get("secrets");
    this.topSecrets = secrets
      ? r.map(secrets.value, ["secrets"], "secrets", undefined, secrets.keyNode)
      : undefined;
    const configs = top.get("configs");
    this.topConfigs = configs
      ? r.map(configs.value, ["configs"], "configs", undefined, configs.keyNode)
      : undefined;

    const nameEntry = top.get("name");
    const rawName = nameEntry
      ? (this.text(nameEntry.value, [], "name", nameEntry.keyNode) ?? "")
      : (this.options.projectName ?? directoryName(this.file));
    const podName = toDnsLabel(rawName) || "compose";
    if (nameEntry) r.record(["metadata", "name"], nameEntry.value);

    const servicesEntry = r.require(top, "services", "the Compose file", []);
    const services =
      servicesEntry && r.map(servicesEntry.value, ["services"], "services", undefined, servicesEntry.keyNode);
    if (!services) return undefined;
    const states: ServiceState[] = [];
    for (const e of services.entries.values()) {
      if (e.key.startsWith("x-")) continue;
      const state = this.service(e, states.length);
      if (state) states.push(state);
    }
    if (states.length === 0) {
      r.report(servicesEntry.value ?? servicesEntry.keyNode, "MISSING_KEY", "no services to import");
      return undefined;
    }
    this.checkSharedPorts(states);
    return {
      name: podName,
      containers: states.map((s) => s.container),
      volumes: this.volumes,
      replicas: { min: 1, max: 1, idleSeconds: 0n },
    };
  }

  private checkSharedPorts(states: ServiceState[]): void {
    const owner = new Map<number, string>();
    for (const s of states) {
      for (const [port, node] of s.listens) {
        const other = owner.get(port);
        if (other !== undefined)
          this.r.report(
            node,
            "CONFLICT",
            `services "${other}" and "${s.name}" both use port ${port}; the containers of a pod share one network`,
          );
        else owner.set(port, s.name);
      }
    }
  }

  private service(e: Entry, index: number): ServiceState | undefined {
    const r = this.r;
    const path: PathSegment[] = ["spec", "containers", index];
    const m = r.map(e.value, path, `service "${e.key}"`, SERVICE_KEYS, e.keyNode);
    if (!m) return undefined;
    const profiles = m.get("profiles");
    if (profiles) {
      r.warn(
        profiles.keyNode,
        "UNSUPPORTED",
        `service "${e.key}" is only started with a profile: not imported`,
      );
      return undefined;
    }
    const name = toDnsLabel(e.key);
    r.record([...path, "name"], e.keyNode);
    if (name !== e.key && isDnsLabel(name))
      r.warn(
        e.keyNode,
        "INVALID_NAME",
        `service "${e.key}" becomes container "${name}" (container names are DNS labels)`,
      );
    const container: Container = {
      name: name || e.key,
      image: { kind: "local", name: "" },
      command: [],
      args: [],
      env: [],
      ports: [],
      volumeMounts: [],
      resources: { ...COMPOSE_DEFAULT_RESOURCES, storageBytes: DEFAULTS.storageBytes, gpu: 0n },
    };
    const state: ServiceState = { name: e.key, index, container, listens: new Map() };
    this.image(m, e, path, container);
    for (const key of m.entries.keys()) this.checkKey(m, key);
    const command = m.get("command");
    if (command) container.args = this.argv(command, [...path, "args"]);
    const entrypoint = m.get("entrypoint");
    if (entrypoint) container.command = this.argv(entrypoint, [...path, "command"]);
    const wd = m.get("working_dir");
    if (wd) {
      const v = this.text(wd.value, [...path, "workingDir"], "working_dir", wd.keyNode);
      if (v !== undefined) container.workingDir = v;
    }
    container.env = this.environment(m, path);
    this.ports(m, state, path);
    this.volumeMounts(m, state, path);
    this.secretMounts(m, state, path, "secrets");
    this.secretMounts(m, state, path, "configs");
    this.resources(m, container);
    const hc = m.get("healthcheck");
    if (hc) {
      const h = this.healthcheck(hc, [...path, "healthCheck"]);
      if (h) container.healthCheck = h;
    }
    return state;
  }

  private image(m: MapView, e: Entry, path: PathSegment[], c: Container): void {
    const image = m.get("image");
    const build = m.get("build");
    if (image) {
      c.image = {
        kind: "local",
        name: this.text(image.value, [...path, "image"], "image", image.keyNode) ?? "",
      };
      if (build)
        this.r.warn(
          build.keyNode,
          "UNSUPPORTED",
          `build: dropped; the image "${c.image.kind === "local" ? c.image.name : ""}" is used (build it before deploying)`,
        );
    } else if (build) {
      this.r.report(
        build.keyNode,
        "UNSUPPORTED",
        `service "${e.key}" has build: but no image: build it and name it with image:`,
      );
      this.r.poison([...path, "image"]);
    } else {
      this.r.report(e.keyNode, "MISSING_KEY", `service "${e.key}" needs an image`);
      this.r.poison([...path, "image"]);
    }
  }

  private checkKey(m: MapView, key: string): void {
    const e = m.get(key)!;
    const r = this.r;
    const node = r.resolve(e.value);
    const value = node && isScalar(node) ? node.value : undefined;
    if (key in FATAL_KEYS) {
      const empty =
        node &&
        ((isSeq(node) && node.items.length === 0) ||
          (isScalar(node) && (node.value === null || node.value === false)));
      if (!empty) r.report(e.keyNode, "UNSUPPORTED", `${key}: not supported (${FATAL_KEYS[key]})`);
      return;
    }
    if (key === "privileged") {
      if (value === true)
        r.report(e.keyNode, "UNSUPPORTED", "privileged: not supported (pods never run privileged)");
      return;
    }
    for (const hostKey of ["pid", "ipc", "uts"]) {
      if (key === hostKey && value === "host") {
        r.report(e.keyNode, "UNSUPPORTED", `${key}: host is not supported (pods are isolated from the host)`);
        return;
      }
    }
    if (key === "network_mode") {
      const mode = typeof value === "string" ? value : "";
      if (mode.startsWith("service:") || mode.startsWith("container:") || mode === "bridge" || mode === "")
        return;
      r.warn(
        e.keyNode,
        "UNSUPPORTED",
        `network_mode: ${mode} dropped; the pod has its own network (publish listening ports under ports:)`,
      );
      return;
    }
    if (key === "restart") {
      if (
        value === "no" ||
        value === "on-failure" ||
        (typeof value === "string" && value.startsWith("on-failure"))
      )
        r.warn(
          e.keyNode,
          "UNSUPPORTED",
          `restart: ${String(value)} dropped; pod containers are always restarted`,
        );
      return;
    }
    if (key === "scale") {
      if (typeof value === "number" && value > 1)
        r.warn(e.keyNode, "UNSUPPORTED", "scale: dropped; replicas apply to the whole pod (spec.replicas)");
      return;
    }
    if (key === "expose") {
      r.warn(
        e.keyNode,
        "UNSUPPORTED",
        "expose: not published; the containers of a pod reach each other on localhost (use ports: to publish)",
      );
      return;
    }
    if (key in DROPPED_KEYS) {
      const why = DROPPED_KEYS[key];
      r.warn(e.keyNode, "UNSUPPORTED", `${key}: dropped${why ? `; ${why}` : ""}`);
    }
  }

  private argv(e: Entry, path: PathSegment[]): string[] {
    const node = this.r.resolve(e.value);
    if (node && isScalar(node) && node.value === null) return [];
    if (node && isSeq(node)) {
      return (node.items as (Node | null)[]).map(
        (n, i) => this.text(n, [...path, i], `${e.key} items`, e.keyNode) ?? "",
      );
    }
    const text = this.text(e.value, path, e.key, e.keyNode);
    if (text === undefined) return [];
    try {
      return shellSplit(text);
    } catch (err) {
      if (!(err instanceof ShellSplitError)) throw err;
      this.r.report(node, "INVALID_VALUE", `${e.key}: ${err.message}`);
      return [];
    }
  }

  private environment(m: MapView, path: PathSegment[]): EnvVar[] {
    const r = this.r;
    const vars = new Map<string, { value: string; node: Node | null }>();
    const envFile = m.get("env_file");
    if (envFile) {
      const node = r.resolve(envFile.value);
      const items = node && isSeq(node) ? (node.items as (Node | null)[]) : [envFile.value];
      for (const item of items) {
        const n = r.resolve(item);
        let file: string | undefined;
        let required = true;
        if (n && isMap(n)) {
          const fm = r.map(n, [], "env_file entry", ["path", "required", "format"])!;
          const p = r.require(fm, "path", "an env_file entry", []);
          file = p && this.text(p.value, [], "path", p.keyNode);
          const req = fm.get("required");
          if (req) required = r.boolean(req.value, [], "required", req.keyNode) ?? true;
        } else file = this.text(item, [], "env_file", envFile.keyNode);
        if (file === undefined) continue;
        const content = this.options.readFile?.(file);
        if (content === undefined) {
          if (required) r.report(n ?? envFile.keyNode, "FILE_NOT_FOUND", `env_file "${file}" cannot be read`);
          continue;
        }
        const parsed = parseDotEnv(content);
        for (const err of parsed.errors)
          r.report(n, "INVALID_VALUE", `env_file "${file}" line ${err.line}: ${err.message}`);
        for (const [k, v] of Object.entries(parsed.vars)) vars.set(k, { value: v, node: n });
      }
    }
    const env = m.get("environment");
    if (env) {
      const node = r.resolve(env.value);
      if (node && isMap(node)) {
        const em = r.map(node, [], "environment")!;
        for (const item of em.entries.values()) {
          const v = r.resolve(item.value);
          if (!v || (isScalar(v) && v.value === null)) {
            this.passThrough(item.key, item.keyNode, vars);
            continue;
          }
          const value = this.text(item.value, [], item.key, item.keyNode);
          if (value !== undefined) vars.set(item.key, { value, node: item.keyNode });
        }
      } else {
        for (const item of r.seq(env.value, [], "environment", env.keyNode)) {
          const t = this.text(item, [], "environment items", env.keyNode);
          if (t === undefined) continue;
          const eq = t.indexOf("=");
          const n = r.resolve(item);
          if (eq < 0) this.passThrough(t, n, vars);
          else vars.set(t.slice(0, eq), { value: t.slice(eq + 1), node: n });
        }
      }
    }
    let i = 0;
    const out: EnvVar[] = [];
    for (const [name, { value, node }] of vars) {
      r.record([...path, "env", i, "name"], node);
      r.record([...path, "env", i, "value"], node);
      out.push({ name, kind: "value", value });
      i++;
    }
    return out;
  }

  private passThrough(
    name: string,
    node: Node | null,
    vars: Map<string, { value: string; node: Node | null }>,
  ): void {
    const v = this.env[name];
    if (v !== undefined) vars.set(name, { value: v, node });
    else
      this.r.warn(
        node,
        "MISSING_KEY",
        `environment ${name} has no value (Compose takes it from the shell): dropped; set it in .env`,
      );
  }

  private ports(m: MapView, s: ServiceState, path: PathSegment[]): void {
    const r = this.r;
    const ports = m.get("ports");
    const expose = m.get("expose");
    if (expose) {
      for (const item of r.seq(expose.value, [], "expose", expose.keyNode)) {
        const t = this.text(item, [], "expose items", expose.keyNode);
        const port = t && /^(\d+)(?:\/tcp)?$/.exec(t);
        if (port) s.listens.set(Number(port[1]), r.resolve(item));
      }
    }
    if (!ports) return;
    for (const item of r.seq(ports.value, [], "ports", ports.keyNode)) {
      const node = r.resolve(item);
      const specs = node && isMap(node) ? this.longPort(node) : this.shortPort(item);
      for (const spec of specs) {
        if (spec.protocol !== "tcp") {
          r.report(
            node,
            "UNSUPPORTED",
            `port ${spec.target}/${spec.protocol}: pods publish only tcp and http ports`,
          );
          continue;
        }
        if (s.container.ports.some((p) => p.containerPort === spec.target)) {
          r.warn(
            node,
            "CONFLICT",
            `port ${spec.target} is already published: dropped (a pod publishes each container port once)`,
          );
          continue;
        }
        const protocol =
          spec.appProtocol === "http" || (!spec.appProtocol && HTTP_PORTS.includes(spec.target))
            ? "http"
            : "tcp";
        const port: Port = { containerPort: spec.target, protocol };
        const j = s.container.ports.length;
        r.record([...path, "ports", j, "containerPort"], node);
        s.container.ports.push(port);
        s.listens.set(spec.target, node);
      }
    }
  }

  private shortPort(item: Node | null): { target: number; protocol: string; appProtocol?: string }[] {
    const t = this.text(item, [], "ports items");
    if (t === undefined) return [];
    const m = /^(?:(?:\[[^\]]*\]|[\d.]+):)?(?:(\d*(?:-\d+)?):)?(\d+)(?:-(\d+))?(?:\/(\w+))?$/.exec(t.trim());
    if (!m) {
      this.r.report(
        this.r.resolve(item),
        "INVALID_PORT",
        `"${t}" is not a Compose port ([HOST:]CONTAINER[/PROTOCOL])`,
      );
      return [];
    }
    const [, , from = "", to, protocol = "tcp"] = m;
    const start = Number(from);
    const end = to ? Number(to) : start;
    if (end < start || end - start >= 64) {
      this.r.report(
        this.r.resolve(item),
        "INVALID_PORT",
        `port range "${t}" is empty or longer than 64 ports`,
      );
      return [];
    }
    return Array.from({ length: end - start + 1 }, (_, k) => ({
      target: start + k,
      protocol: protocol.toLowerCase(),
    }));
  }

  private longPort(node: Node): { target: number; protocol: string; appProtocol?: string }[] {
    const r = this.r;
    const pm = r.map(node, [], "port", [
      "target",
      "published",
      "host_ip",
      "protocol",
      "mode",
      "app_protocol",
      "name",
    ])!;
    const target = r.require(pm, "target", "a port", []);
    const t = target && this.text(target.value, [], "target", target.keyNode);
    if (t === undefined) return [];
    if (!/^\d+$/.test(t)) {
      r.report(target?.value, "INVALID_PORT", `target "${t}" is not a port number`);
      return [];
    }
    const protocol = pm.get("protocol");
    const app = pm.get("app_protocol");
    const appProtocol = app && this.text(app.value, [], "app_protocol", app.keyNode)?.toLowerCase();
    return [
      {
        target: Number(t),
        protocol:
          (protocol && this.text(protocol.value, [], "protocol", protocol.keyNode)?.toLowerCase()) ?? "tcp",
        ...(appProtocol ? { appProtocol } : {}),
      },
    ];
  }

  /** The pod volume for a name, created on first use. */
  private podVolume(name: string, make: () => Volume, node: Node | null): string {
    const existing = this.volumeIndex.get(name);
    if (existing !== undefined) return name;
    const i = this.volumes.length;
    this.volumes.push(make());
    this.volumeIndex.set(name, i);
    this.r.record(["spec", "volumes", i, "name"], node);
    return name;
  }

  private uniqueVolumeName(base: string): string {
    const root = toDnsLabel(base).slice(0, 55) || "volume";
    let name = root;
    for (let n = 2; this.volumeIndex.has(name); n++) name = `${root}-${n}`;
    return name;
  }

  private mount(
    s: ServiceState,
    path: PathSegment[],
    volume: string,
    target: string,
    readOnly: boolean,
    node: Node | null,
  ): void {
    const j = s.container.volumeMounts.length;
    this.r.record([...path, "volumeMounts", j, "mountPath"], node);
    this.r.record([...path, "volumeMounts", j, "name"], node);
    s.container.volumeMounts.push({ name: volume, mountPath: target, readOnly } satisfies VolumeMount);
  }

  private volumeMounts(m: MapView, s: ServiceState, path: PathSegment[]): void {
    const r = this.r;
    const tmpfs = m.get("tmpfs");
    if (tmpfs) {
      for (const t of this.stringOrList(tmpfs, "tmpfs")) {
        const target = t.value.split(":")[0]!;
        const name = this.podVolume(
          this.uniqueVolumeName(`${s.container.name}-tmpfs`),
          () => ({ name: "", kind: "emptyDir" }),
          t.node,
        );
        this.fixName(name);
        this.mount(s, path, name, target, false, t.node);
      }
    }
    const volumes = m.get("volumes");
    if (!volumes) return;
    for (const item of r.seq(volumes.value, [], "volumes", volumes.keyNode)) {
      const node = r.resolve(item);
      let type: string;
      let source = "";
      let target = "";
      let readOnly = false;
      if (node && isMap(node)) {
        const vm = r.map(node, [], "volume", [
          "type",
          "source",
          "target",
          "read_only",
          "consistency",
          "bind",
          "volume",
          "tmpfs",
          "image",
        ])!;
        type = (vm.get("type") && this.text(vm.get("type")!.value, [], "type")) ?? "volume";
        source = (vm.get("source") && this.text(vm.get("source")!.value, [], "source")) ?? "";
        const t = r.require(vm, "target", "a volume", []);
        target = (t && this.text(t.value, [], "target", t.keyNode)) ?? "";
        const ro = vm.get("read_only");
        readOnly = (ro && r.boolean(ro.value, [], "read_only", ro.keyNode)) ?? false;
      } else {
        const t = this.text(item, [], "volumes items", volumes.keyNode);
        if (t === undefined) continue;
        const parts = t.split(":");
        if (parts.length === 1) target = parts[0]!;
        else [source = "", target = ""] = parts;
        const mode = parts.length > 2 ? parts[2]!.split(",") : [];
        readOnly = mode.includes("ro");
        type = source === "" ? "volume" : /^[./~]/.test(source) ? "bind" : "volume";
      }
      if (!target) continue;
      this.oneMount(s, path, node, type, source, target, readOnly);
    }
  }

  private fixName(name: string): void {
    const v = this.volumes[this.volumeIndex.get(name)!]!;
    v.name = name;
  }

  private oneMount(
    s: ServiceState,
    path: PathSegment[],
    node: Node | null,
    type: string,
    source: string,
    target: string,
    readOnly: boolean,
  ): void {
    const r = this.r;
    if (type === "tmpfs" || (type === "volume" && source === "")) {
      const name = this.podVolume(
        this.uniqueVolumeName(`${s.container.name}-${type === "tmpfs" ? "tmpfs" : "scratch"}`),
        () => ({ name: "", kind: "emptyDir" }),
        node,
      );
      this.fixName(name);
      if (type !== "tmpfs")
        r.warn(
          node,
          "UNSUPPORTED",
          `anonymous volume at ${target} becomes an emptyDir (its data does not outlive the replica)`,
        );
      this.mount(s, path, name, target, readOnly, node);
      return;
    }
    if (type === "volume") {
      const declared = this.namedVolumes?.get(source);
      if (!declared) {
        r.report(
          node,
          "UNKNOWN_REFERENCE",
          `volume "${source}" is not declared under the top-level volumes:`,
        );
        return;
      }
      const name = this.namedVolume(source, declared);
      this.mount(s, path, name, target, readOnly, node);
      return;
    }
    if (type !== "bind") {
      r.report(node, "UNSUPPORTED", `volume type ${type} is not supported`);
      return;
    }
    if (HOST_ONLY_PATHS.test(source)) {
      r.report(
        node,
        "UNSUPPORTED",
        `bind mount of ${source}: host paths like this are not available to pods`,
      );
      return;
    }
    const known = this.options.pathKind?.(source);
    const kind = known === "file" || known === "directory" ? known : this.guessKind(source);
    if (kind === "file") {
      const name = this.podVolume(
        this.secretNameFor(source),
        () => ({ name: "", kind: "secret", source: { kind: "file", path: source } }),
        node,
      );
      this.fixName(name);
      r.warn(
        node,
        "UNSUPPORTED",
        `bind mount of host file ${source} becomes secret volume "${name}" (encrypted, read-only in the pod)`,
      );
      this.mount(s, path, name, target, true, node);
      return;
    }
    if (readOnly) {
      r.report(
        node,
        "UNSUPPORTED",
        `read-only bind mount of host directory ${source}: its files cannot be shipped; copy them into the image`,
      );
      return;
    }
    const name = this.podVolume(
      this.uniqueVolumeName(basename(source) || "data"),
      () => ({ name: "", kind: "persistent", sizeBytes: COMPOSE_DEFAULT_VOLUME_SIZE }),
      node,
    );
    this.fixName(name);
    r.warn(
      node,
      "UNSUPPORTED",
      `bind mount of host directory ${source} becomes persistent volume "${name}" of 1Gi, initially empty (its files are not copied)`,
    );
    this.mount(s, path, name, target, false, node);
  }

  private readonly secretFiles = new Map<string, string>();

  private secretNameFor(file: string): string {
    const known = this.secretFiles.get(file);
    if (known) return known;
    const name = this.uniqueVolumeName(basename(file).replace(/\./g, "-"));
    this.secretFiles.set(file, name);
    return name;
  }

  private guessKind(path: string): "file" | "directory" {
    const base = basename(path);
    return base.includes(".") && base !== "." && base !== ".." && !base.endsWith(".d") ? "file" : "directory";
  }

  private namedVolume(source: string, declared: Entry): string {
    const key = `named:${source}`;
    const known = this.secretFiles.get(key);
    if (known) return known;
    const r = this.r;
    const name = this.uniqueVolumeName(source);
    this.secretFiles.set(key, name);
    let size = COMPOSE_DEFAULT_VOLUME_SIZE;
    const dm = r.map(declared.value, [], `volume "${source}"`, undefined, declared.keyNode);
    const external = dm?.get("external");
    if (external)
      r.warn(
        external.keyNode,
        "UNSUPPORTED",
        `external volume "${source}" becomes a new, empty persistent volume`,
      );
    const sizeText =
      dm?.get("driver_opts") && r.map(dm.get("driver_opts")!.value, [], "driver_opts")?.get("size");
    if (sizeText) {
      const t = this.text(sizeText.value, [], "size", sizeText.keyNode);
      const parsed = t === undefined ? undefined : parseComposeBytes(t);
      if (parsed !== undefined && parsed > 0n) size = parsed;
    } else if (!this.warnedVolumes.has(source)) {
      this.warnedVolumes.add(source);
      r.warn(
        declared.keyNode,
        "MISSING_KEY",
        `volume "${source}" becomes persistent volume "${name}" of 1Gi (Compose gives no size; change it in the manifest)`,
      );
    }
    this.podVolume(name, () => ({ name, kind: "persistent", sizeBytes: size }), declared.keyNode);
    return name;
  }

  private secretMounts(m: MapView, s: ServiceState, path: PathSegment[], key: "secrets" | "configs"): void {
    const r = this.r;
    const e = m.get(key);
    if (!e) return;
    const top = key === "secrets" ? this.topSecrets : this.topConfigs;
    for (const item of r.seq(e.value, [], key, e.keyNode)) {
      const node = r.resolve(item);
      let source: string | undefined;
      let target: string | undefined;
      if (node && isMap(node)) {
        const sm = r.map(node, [], key.slice(0, -1), ["source", "target", "uid", "gid", "mode"])!;
        const src = r.require(sm, "source", `a ${key.slice(0, -1)}`, []);
        source = src && this.text(src.value, [], "source", src.keyNode);
        const t = sm.get("target");
        target = t && this.text(t.value, [], "target", t.keyNode);
      } else source = this.text(item, [], `${key} items`, e.keyNode);
      if (!source) continue;
      const decl = top?.get(source);
      if (!decl) {
        r.report(
          node,
          "UNKNOWN_REFERENCE",
          `${key.slice(0, -1)} "${source}" is not declared under the top-level ${key}:`,
        );
        continue;
      }
      const dm = r.map(decl.value, [], `${key.slice(0, -1)} "${source}"`, undefined, decl.keyNode);
      const file = dm?.get("file");
      const filePath = file && this.text(file.value, [], "file", file.keyNode);
      if (!filePath) {
        const how = ["environment", "content", "external"].find((k) => dm?.has(k)) ?? "no file";
        r.report(
          decl.keyNode,
          "UNSUPPORTED",
          `${key.slice(0, -1)} "${source}" (${how}): only file-based ${key} can be imported`,
        );
        continue;
      }
      const name = this.podVolume(
        this.uniqueVolumeNameFor(`${key}:${source}`, source),
        () => ({ name: "", kind: "secret", source: { kind: "file", path: filePath } }),
        decl.keyNode,
      );
      this.fixName(name);
      const base = key === "secrets" ? "/run/secrets/" : "/";
      const mountPath = target ? (target.startsWith("/") ? target : `${base}${target}`) : `${base}${source}`;
      this.mount(s, path, name, mountPath, true, node);
    }
  }

  private uniqueVolumeNameFor(key: string, base: string): string {
    const known = this.secretFiles.get(key);
    if (known) return known;
    const name = this.uniqueVolumeName(base);
    this.secretFiles.set(key, name);
    return name;
  }

  private resources(m: MapView, c: Container): void {
    const r = this.r;
    const setCpu = (e: Entry | undefined) => {
      const t = e && this.text(e.value, [], e.key, e.keyNode);
      if (t === undefined) return;
      const v = parseComposeCpus(t);
      if (v === undefined || v === 0n)
        r.report(e!.value, "INVALID_QUANTITY", `${e!.key}: "${t}" is not a CPU count`);
      else c.resources.cpuMillis = v;
    };
    const setMemory = (e: Entry | undefined) => {
      const t = e && this.text(e.value, [], e.key, e.keyNode);
      if (t === undefined) return;
      const v = parseComposeBytes(t);
      if (v === undefined) r.report(e!.value, "INVALID_QUANTITY", `${e!.key}: "${t}" is not a size`);
      else c.resources.memoryBytes = v;
    };
    setCpu(m.get("cpus"));
    setMemory(m.get("mem_limit"));
    const gpus = m.get("gpus");
    if (gpus) {
      r.warn(
        gpus.keyNode,
        "UNSUPPORTED",
        "gpus: the pod reserves 1 GPU; change resources.gpu in the manifest if it needs more",
      );
      c.resources.gpu = 1n;
    }
    const deploy = m.get("deploy");
    if (!deploy) return;
    const dm = r.map(deploy.value, [], "deploy", undefined, deploy.keyNode);
    if (!dm) return;
    for (const [key, e] of dm.entries) {
      if (key === "resources") continue;
      if (key === "replicas") {
        const n = r.resolve(e.value);
        if (n && isScalar(n) && typeof n.value === "number" && n.value > 1)
          r.warn(
            e.keyNode,
            "UNSUPPORTED",
            "deploy.replicas: dropped; replicas apply to the whole pod (spec.replicas)",
          );
        continue;
      }
      r.warn(e.keyNode, "UNSUPPORTED", `deploy.${key}: dropped`);
    }
    const res = dm.get("resources");
    const rm = res && r.map(res.value, [], "deploy.resources", ["limits", "reservations"], res.keyNode);
    if (!rm) return;
    for (const which of ["reservations", "limits"] as const) {
      // Limits win over reservations: they are what the container may use, so what must be reserved.
      const e = rm.get(which);
      const lm =
        e &&
        r.map(
          e.value,
          [],
          `deploy.resources.${which}`,
          ["cpus", "memory", "pids", "devices", "generic_resources"],
          e.keyNode,
        );
      if (!lm) continue;
      setCpu(lm.get("cpus"));
      setMemory(lm.get("memory"));
      const devices = lm.get("devices");
      if (devices) {
        for (const d of r.seq(devices.value, [], "devices", devices.keyNode)) {
          const dv = r.map(d, [], "device", undefined);
          const caps = dv?.get("capabilities");
          const isGpu =
            caps &&
            r
              .seq(caps.value, [], "capabilities")
              .some(
                (n) =>
                  r.resolve(n) &&
                  isScalar(r.resolve(n)) &&
                  (r.resolve(n) as { value: unknown }).value === "gpu",
              );
          if (!isGpu) {
            r.report(r.resolve(d), "UNSUPPORTED", "devices other than GPUs are not available to pods");
            continue;
          }
          const count = dv?.get("count");
          const cn = count && r.resolve(count.value);
          c.resources.gpu = cn && isScalar(cn) && typeof cn.value === "number" ? BigInt(cn.value) : 1n;
        }
      }
      for (const k of ["pids", "generic_resources"]) {
        const x = lm.get(k);
        if (x) r.warn(x.keyNode, "UNSUPPORTED", `deploy.resources.${which}.${k}: dropped`);
      }
    }
  }

  private duration(e: Entry | undefined, fallback: bigint): bigint {
    if (!e) return fallback;
    const t = this.text(e.value, [], e.key, e.keyNode);
    if (t === undefined) return fallback;
    try {
      return parseDuration(t);
    } catch (err) {
      if (!(err instanceof DurationError)) throw err;
      this.r.report(e.value, "INVALID_VALUE", `${e.key}: ${err.message}`);
      return fallback;
    }
  }

  private healthcheck(e: Entry, path: PathSegment[]): HealthCheck | undefined {
    const r = this.r;
    const hm = r.map(
      e.value,
      path,
      "healthcheck",
      ["test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"],
      e.keyNode,
    );
    if (!hm) return undefined;
    const disable = hm.get("disable");
    if (disable && r.boolean(disable.value, [], "disable", disable.keyNode)) return undefined;
    const test = hm.get("test");
    if (!test) return undefined;
    const node = r.resolve(test.value);
    let command: string[];
    if (node && isSeq(node)) {
      const items = (node.items as (Node | null)[]).map(
        (n) => this.text(n, [], "test items", test.keyNode) ?? "",
      );
      const [kind, ...rest] = items;
      if (kind === "NONE") return undefined;
      if (kind === "CMD") command = rest;
      else if (kind === "CMD-SHELL") command = ["/bin/sh", "-c", rest.join(" ")];
      else {
        r.report(
          node,
          "INVALID_VALUE",
          `healthcheck test must start with "CMD", "CMD-SHELL" or "NONE", not "${kind}"`,
        );
        return undefined;
      }
    } else {
      const t = this.text(test.value, [], "test", test.keyNode);
      if (t === undefined) return undefined;
      command = ["/bin/sh", "-c", t];
    }
    r.record([...path, "exec", "command"], node);
    const startInterval = hm.get("start_interval");
    if (startInterval)
      r.warn(startInterval.keyNode, "UNSUPPORTED", "start_interval: dropped; checks run every interval");
    const retries = hm.get("retries");
    const hc: HealthCheck = {
      probe: { kind: "exec", command },
      intervalMs: this.duration(hm.get("interval"), 30_000n),
      timeoutMs: this.duration(hm.get("timeout"), 30_000n),
      retries: (retries && r.integer(retries.value, [...path, "retries"], "retries", retries.keyNode)) ?? 3,
      startPeriodMs: this.duration(hm.get("start_period"), 0n),
    };
    for (const [k, p] of [
      ["interval", "interval"],
      ["timeout", "timeout"],
      ["start_period", "startPeriod"],
    ] as const) {
      const x = hm.get(k);
      if (x) r.record([...path, p], x.value);
    }
    return hc;
  }
}

/**
 * Converts a Compose file into one pod. Returns the pod and its manifest YAML when there are no errors; the
 * diagnostics (errors and warnings, in source order) either way. Never throws for bad input.
 */
export function importCompose(text: string, file: string, options: ComposeImportOptions = {}): ComposeImport {
  const { reader, root } = YamlReader.parse(text, file);
  // Content merged from one anchor into several services would repeat the same located message: keep one.
  const sorted = () =>
    reader.diagnostics
      .sort((a, b) => a.line - b.line || a.col - b.col)
      .filter((d, i, all) => i === 0 || formatDiagnostic(d) !== formatDiagnostic(all[i - 1]!));
  if (!root) {
    if (!reader.hasErrors()) reader.report(null, "MISSING_KEY", "the Compose file is empty");
    return { diagnostics: sorted() };
  }
  const compose = new ComposeReader(reader, file, options);
  const pod = compose.pod(root);
  if (pod) {
    for (const issue of validatePod(pod)) {
      if (reader.isPoisoned(issue.path)) continue;
      reader.report(reader.nodeAt(issue.path) ?? null, issue.code, issue.message);
    }
  }
  const diagnostics = sorted();
  if (!pod || reader.hasErrors()) return { diagnostics };
  return { pod, manifest: formatManifest(pod), diagnostics };
}

// POSIX path pieces without node:path, so compose import also runs in browsers.
function pathSegments(path: string): string[] {
  return path.split("/").filter((p) => p !== "" && p !== ".");
}

/** The last segment of a path ("./conf/app.conf/" gives "app.conf"). */
function basename(path: string): string {
  return pathSegments(path).at(-1) ?? "";
}

/** The name of the directory holding a file path as written ("app/docker-compose.yml" gives "app"). */
function directoryName(file: string): string {
  return pathSegments(file).at(-2) ?? "";
}
