import { EngineError } from "./errors.js";
import { NAME_PATTERN, POD_ID_PATTERN, type PodSpec } from "./types.js";

const MAX_CONTAINERS = 16;
const MAX_VOLUMES = 32;
const MAX_SECRET_BYTES = 1024 * 1024;
const SECRET_FILE_NAME = /^[A-Za-z0-9._-]{1,128}$/;

function fail(message: string): never {
  throw new EngineError("INVALID_SPEC", message);
}

export function assertPodId(podId: string): void {
  if (!POD_ID_PATTERN.test(podId)) fail(`invalid pod id ${JSON.stringify(podId)}`);
}

function assertName(kind: string, name: string): void {
  if (!NAME_PATTERN.test(name)) fail(`invalid ${kind} name ${JSON.stringify(name)}`);
}

function assertPort(port: number, what: string, allowZero: boolean): void {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) fail(`invalid ${what} ${port}`);
}

// Engines turn names into object names, paths and command lines: the daemon may pass data from the network,
// so every field is checked here once, for every backend.
export function validatePodSpec(spec: PodSpec): void {
  assertPodId(spec.podId);
  if (spec.containers.length === 0 || spec.containers.length > MAX_CONTAINERS) {
    fail(`a pod needs 1..${MAX_CONTAINERS} containers`);
  }
  const volumes = new Map<string, string>();
  if ((spec.volumes?.length ?? 0) > MAX_VOLUMES) fail(`at most ${MAX_VOLUMES} volumes`);
  for (const v of spec.volumes ?? []) {
    assertName("volume", v.name);
    if (volumes.has(v.name)) fail(`duplicate volume ${v.name}`);
    volumes.set(v.name, v.kind);
    if (v.kind === "persistent" && !(Number.isSafeInteger(v.sizeBytes) && v.sizeBytes > 0)) {
      fail(`volume ${v.name}: size must be a positive integer`);
    }
    if (v.kind === "secret") {
      let total = 0;
      for (const [file, bytes] of Object.entries(v.files)) {
        if (!SECRET_FILE_NAME.test(file) || file === "." || file === "..") fail(`secret file name ${file}`);
        total += bytes.byteLength;
      }
      if (total > MAX_SECRET_BYTES) fail(`secret volume ${v.name} exceeds ${MAX_SECRET_BYTES} bytes`);
    }
  }
  const names = new Set<string>();
  // The containers of a pod share one network namespace: two cannot listen on one port.
  const podPorts = new Map<string, string>();
  for (const c of spec.containers) {
    assertName("container", c.name);
    if (names.has(c.name)) fail(`duplicate container ${c.name}`);
    names.add(c.name);
    if (!c.image || /\s/.test(c.image)) fail(`container ${c.name}: invalid image`);
    const r = c.resources;
    if (!(Number.isInteger(r.cpuMillis) && r.cpuMillis > 0)) fail(`container ${c.name}: cpu`);
    if (!(Number.isSafeInteger(r.memoryBytes) && r.memoryBytes >= 6 * 1024 * 1024)) {
      fail(`container ${c.name}: memory must be at least 6 MiB`);
    }
    if (!(Number.isInteger(r.pids) && r.pids > 0)) fail(`container ${c.name}: pids`);
    const seen = new Set<string>();
    for (const p of c.ports ?? []) {
      assertPort(p.containerPort, "container port", false);
      if (p.hostPort !== undefined) assertPort(p.hostPort, "host port", true);
      if (p.protocol !== "http" && p.protocol !== "tcp" && p.protocol !== "udp")
        fail(`port protocol ${String(p.protocol)}`);
      // One namespace: a number is taken once per transport (53/tcp and 53/udp may both be published).
      const key = p.protocol === "udp" ? `${p.containerPort}/udp` : String(p.containerPort);
      if (seen.has(key)) fail(`container ${c.name}: duplicate port ${key}`);
      seen.add(key);
      const owner = podPorts.get(key);
      if (owner !== undefined) {
        fail(
          `container ${c.name}: port ${key} is already used by container ${owner} (one network namespace)`,
        );
      }
      podPorts.set(key, c.name);
    }
    for (const m of c.mounts ?? []) {
      if (!volumes.has(m.volume)) fail(`container ${c.name}: unknown volume ${m.volume}`);
      if (!m.path.startsWith("/") || m.path.includes("..") || m.path.includes(",") || m.path.includes(":")) {
        fail(`container ${c.name}: invalid mount path ${m.path}`);
      }
    }
    for (const k of Object.keys(c.env ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k)) fail(`container ${c.name}: invalid env name ${k}`);
    }
    const h = c.healthCheck;
    if (h) {
      if (h.probe.kind === "http") {
        assertPort(h.probe.port, "health port", false);
        if (!h.probe.path.startsWith("/")) fail(`container ${c.name}: health path must start with /`);
      } else if (h.probe.argv.length === 0) {
        fail(`container ${c.name}: empty health command`);
      }
      for (const ms of [h.intervalMs, h.timeoutMs]) {
        if (!(Number.isInteger(ms) && ms > 0)) fail(`container ${c.name}: health timing`);
      }
      if (!(Number.isInteger(h.retries) && h.retries > 0)) fail(`container ${c.name}: health retries`);
      if (!(Number.isInteger(h.startPeriodMs) && h.startPeriodMs >= 0))
        fail(`container ${c.name}: start period`);
    }
  }
}
