/** One Compose service becomes one container of the pod. */
import { isMap, isScalar, isSeq, type Node } from "yaml";
import { type Container, DEFAULTS, isDnsLabel, type PathSegment } from "../pod.js";
import { ShellSplitError, shellSplit } from "../shell.js";
import type { Entry, MapView } from "../yaml-reader.js";
import { readBuild } from "./build.js";
import { type ComposeContext, toDnsLabel } from "./context.js";
import { readEnvironment } from "./environment.js";
import { readHealthcheck } from "./healthcheck.js";
import { checkServiceKey, SERVICE_KEYS } from "./keys.js";
import { type Listens, readPorts } from "./ports.js";
import { COMPOSE_DEFAULT_RESOURCES, readResources } from "./resources.js";
import type { ComposeBuild } from "./types.js";
import type { VolumeMapper } from "./volumes.js";

export interface ServiceState {
  name: string;
  container: Container;
  /** Ports this service listens on (published or exposed), for the same-port check. */
  listens: Listens;
  build?: ComposeBuild;
  /**
   * Other names Compose resolves to this service (its name before it became a DNS label, container_name,
   * hostname, network aliases) with what each is; only the container name resolves in the pod.
   */
  aliases: { name: string; what?: string }[];
}

/** The container of one service, or undefined when the service is not imported (a profile) or unreadable. */
export function readService(
  cx: ComposeContext,
  volumes: VolumeMapper,
  e: Entry,
  index: number,
  podName: string,
): ServiceState | undefined {
  const r = cx.r;
  const path: PathSegment[] = ["spec", "containers", index];
  const m = r.map(e.value, path, `service "${e.key}"`, SERVICE_KEYS, e.keyNode);
  if (!m) return undefined;
  if (!profilesActive(cx, m, e.key)) return undefined;
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
  const state: ServiceState = { name: e.key, container, listens: new Map(), aliases: readAliases(cx, m) };
  if (container.name !== e.key) state.aliases.unshift({ name: e.key });
  const build = readImage(cx, m, e, path, container, podName);
  if (build) state.build = build;
  for (const key of m.entries.keys()) checkServiceKey(cx, m, key);
  warnOneShotDependencies(cx, m, e.key);
  const command = m.get("command");
  if (command) container.args = argv(cx, command, [...path, "args"]);
  const entrypoint = m.get("entrypoint");
  if (entrypoint) {
    container.command = argv(cx, entrypoint, [...path, "command"]);
    if (container.command.length === 0) clearedEntrypoint(cx, entrypoint, container);
  }
  const wd = m.get("working_dir");
  if (wd) {
    const v = cx.text(wd.value, [...path, "workingDir"], "working_dir", wd.keyNode);
    if (v !== undefined) container.workingDir = v;
  }
  container.env = readEnvironment(cx, m, path);
  readPorts(cx, m, container.ports, state.listens, path);
  volumes.volumeMounts(m, container, path, e.key, state.build?.context);
  volumes.secretMounts(m, container, path, "secrets");
  volumes.secretMounts(m, container, path, "configs");
  readResources(cx, m, container);
  const hc = m.get("healthcheck");
  if (hc) {
    const h = readHealthcheck(cx, hc, [...path, "healthCheck"]);
    if (h) container.healthCheck = h;
  }
  return state;
}

/**
 * The container's image: image: names it; with build: it is built first and tagged with that name (or with
 * Compose's `<project>-<service>` when there is no image:).
 */
function readImage(
  cx: ComposeContext,
  m: MapView,
  e: Entry,
  path: PathSegment[],
  c: Container,
  podName: string,
): ComposeBuild | undefined {
  const image = m.get("image");
  const build = m.get("build");
  const named = image && cx.text(image.value, [...path, "image"], "image", image.keyNode);
  if (!image && !build) {
    cx.r.report(e.keyNode, "MISSING_KEY", `service "${e.key}" needs an image or a build`);
    cx.r.poison([...path, "image"]);
    return undefined;
  }
  if (!build) {
    c.image = { kind: "local", name: named ?? "" };
    return undefined;
  }
  const tag = named || `${podName}-${c.name}`;
  c.image = { kind: "local", name: tag };
  if (build && !named) cx.r.record([...path, "image"], build.keyNode);
  return readBuild(cx, build, e.key, c.name, tag);
}

function argv(cx: ComposeContext, e: Entry, path: PathSegment[]): string[] {
  const node = cx.r.resolve(e.value);
  if (node && isScalar(node) && node.value === null) return [];
  if (node && isSeq(node)) {
    return (node.items as (Node | null)[]).map(
      (n, i) => cx.text(n, [...path, i], `${e.key} items`, e.keyNode) ?? "",
    );
  }
  const text = cx.text(e.value, path, e.key, e.keyNode);
  if (text === undefined) return [];
  try {
    return shellSplit(text);
  } catch (err) {
    if (!(err instanceof ShellSplitError)) throw err;
    cx.r.report(node, "INVALID_VALUE", `${e.key}: ${err.message}`);
    return [];
  }
}

/** Whether a service is imported: it has no profiles, or one of them is active (a warning says how otherwise). */
function profilesActive(cx: ComposeContext, m: MapView, service: string): boolean {
  const e = m.get("profiles");
  if (!e) return true;
  const names = cx.stringOrList(e, "profiles").map((p) => p.value);
  if (names.length === 0 || cx.profileActive(names)) return true;
  cx.r.warn(
    e.keyNode,
    "UNSUPPORTED",
    `service "${service}" is only started with profile ${names.join(" or ")}: not imported (set COMPOSE_PROFILES=${names[0]} in .env to import it)`,
  );
  return false;
}

/**
 * depends_on with `condition: service_completed_successfully` marks a one-shot job (migrations, setup) that
 * Compose runs to completion first. A pod starts its containers together and restarts one that exits, so the
 * job runs again and again: warn once per job, at the first service waiting for it.
 */
function warnOneShotDependencies(cx: ComposeContext, m: MapView, service: string): void {
  const r = cx.r;
  const e = m.get("depends_on");
  const node = e && r.resolve(e.value);
  if (!node || !isMap(node)) return;
  const deps = r.map(node, [], "depends_on");
  for (const dep of deps?.entries.values() ?? []) {
    const dm = r.resolve(dep.value);
    const condition = dm && isMap(dm) ? cx.entryText(r.map(dm, [], dep.key)?.get("condition")) : undefined;
    if (condition !== "service_completed_successfully" || cx.warnedOneShot.has(dep.key)) continue;
    cx.warnedOneShot.add(dep.key);
    r.warn(
      dep.keyNode,
      "UNSUPPORTED",
      `service "${dep.key}" runs to completion before "${service}" starts in Compose; in a pod it starts with the others and is restarted each time it exits: run its work in the entrypoint of the service that needs it, or make it idempotent`,
    );
  }
}

/** container_name, hostname and network aliases: names other services may connect to this one by. */
function readAliases(cx: ComposeContext, m: MapView): { name: string; what: string }[] {
  const r = cx.r;
  const out: { name: string; what: string }[] = [];
  for (const key of ["container_name", "hostname"]) {
    const e = m.get(key);
    const n = e && r.resolve(e.value);
    const v = n && isScalar(n) && n.value !== null ? cx.text(n, [], key, e.keyNode) : undefined;
    if (v) out.push({ name: v, what: `its ${key}` });
  }
  const networks = m.get("networks");
  const nets = networks && r.resolve(networks.value);
  if (!nets || !isMap(nets)) return out;
  for (const net of r.map(nets, [], "networks")?.entries.values() ?? []) {
    const nm = r.resolve(net.value);
    const aliases = nm && isMap(nm) ? r.map(nm, [], net.key)?.get("aliases") : undefined;
    if (!aliases) continue;
    for (const a of cx.stringOrList(aliases, "aliases"))
      out.push({ name: a.value, what: "its network alias" });
  }
  return out;
}

/**
 * `entrypoint: ""` or `[]` runs the command without the image's entrypoint. A pod's empty command means the
 * image's entrypoint, so the command becomes the entrypoint; with no command there is nothing to run instead.
 */
function clearedEntrypoint(cx: ComposeContext, e: Entry, c: Container): void {
  const n = cx.r.resolve(e.value);
  if (!n || (isScalar(n) && n.value === null)) return;
  if (c.args.length > 0) {
    c.command = c.args;
    c.args = [];
    return;
  }
  cx.r.warn(
    e.keyNode,
    "UNSUPPORTED",
    `entrypoint: ${isSeq(n) ? "[]" : '""'} clears the image's entrypoint, but without a command there is nothing to run in its place: the pod runs the image's entrypoint (set command: in the manifest)`,
  );
}
