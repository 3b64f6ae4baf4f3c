/**
 * Compose import: turns a docker-compose file into one pod. Services become containers (they share the pod's
 * network, and each container name resolves to 127.0.0.1), published ports become http, tcp or udp ports,
 * named volumes persistent volumes, build: contexts images built locally before deploying, and whatever a pod
 * cannot express is a located warning when it can be dropped safely, or an error when the pod would not work
 * without it. The mapping is documented in docs/manifest.md.
 *
 * Split by concern: context (interpolation, shared reader), keys (refused and dropped keys), service, build,
 * ports, volumes, environment, resources, healthcheck. Browser-safe (no node: imports).
 */
import { isMap, type Node } from "yaml";
import { formatDiagnostic } from "../diagnostics.js";
import { formatManifest } from "../manifest.js";
import { LIMITS, type PathSegment, type Pod, validatePod } from "../pod.js";
import { type Entry, YamlReader } from "../yaml-reader.js";
import { ComposeContext, directoryName, toDnsLabel } from "./context.js";
import { COMPOSE_TAGS, resolveExtends } from "./extends.js";
import { TOP_KEYS } from "./keys.js";
import { checkSharedPorts } from "./ports.js";
import { readService, type ServiceState } from "./service.js";
import type { ComposeBuild, ComposeImport, ComposeImportOptions } from "./types.js";
import { VolumeMapper } from "./volumes.js";

export { HTTP_PORTS } from "./ports.js";
export { COMPOSE_DEFAULT_RESOURCES } from "./resources.js";
export type { ComposeBuild, ComposeImport, ComposeImportOptions } from "./types.js";
export { COMPOSE_DEFAULT_VOLUME_SIZE } from "./volumes.js";

/** The names a Compose file may have, as `docker compose` looks for them. */
export const COMPOSE_FILE_NAMES = [
  "compose.yaml",
  "compose.yml",
  "docker-compose.yaml",
  "docker-compose.yml",
];

/** Whether a YAML text is a Compose file rather than a pod manifest (a manifest has apiVersion and kind). */
export function looksLikeCompose(text: string): boolean {
  return /^services\s*:/m.test(text) && !/^kind\s*:\s*Pod\b/m.test(text);
}

function readProject(cx: ComposeContext, root: Node): { pod: Pod; builds: ComposeBuild[] } | undefined {
  const r = cx.r;
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
  const section = (key: string) => {
    const e = top.get(key);
    return e ? r.map(e.value, [key], key, undefined, e.keyNode) : undefined;
  };
  const volumes = new VolumeMapper(cx, section("volumes"), section("secrets"), section("configs"));

  const nameEntry = top.get("name");
  const rawName = nameEntry
    ? (cx.text(nameEntry.value, [], "name", nameEntry.keyNode) ?? "")
    : (cx.options.projectName ?? directoryName(cx.file));
  const podName = toDnsLabel(rawName) || "compose";
  if (nameEntry) r.record(["metadata", "name"], nameEntry.value);

  const servicesEntry = r.require(top, "services", "the Compose file", []);
  const services =
    servicesEntry && r.map(servicesEntry.value, ["services"], "services", undefined, servicesEntry.keyNode);
  if (!services) return undefined;
  const states: ServiceState[] = [];
  const entries = resolveExtends(cx, services).filter((e) => !e.key.startsWith("x-"));
  volumes.noteBindSources(entries);
  for (const e of entries) {
    if (e.key.startsWith("x-")) continue;
    const state = readService(cx, volumes, e, states.length, podName);
    if (state) states.push(state);
  }
  if (states.length === 0) {
    const allProfiled =
      services.entries.size > 0 && [...services.entries.values()].every((e) => profiledService(r, e));
    r.report(
      servicesEntry.value ?? servicesEntry.keyNode,
      "MISSING_KEY",
      allProfiled
        ? "no services to import: every service has profiles; set COMPOSE_PROFILES in .env to the profiles to import"
        : "no services to import",
    );
    return undefined;
  }
  if (states.length > LIMITS.containers) {
    r.report(
      servicesEntry.keyNode,
      "TOO_LARGE",
      `${states.length} services to import, but a pod has at most ${LIMITS.containers} containers: put the services it does not need under profiles:, or split the file`,
    );
  }
  checkSameNames(cx, states);
  checkSharedPorts(cx, states);
  warnRenamedHosts(cx, states);
  return {
    pod: {
      name: podName,
      containers: states.map((s) => s.container),
      volumes: volumes.volumes,
      replicas: { min: 1, max: 1, idleSeconds: 0n },
    },
    builds: states.flatMap((s) => (s.build ? [s.build] : [])),
  };
}

/**
 * Compose resolves a service by its name, container_name, hostname and network aliases; a pod resolves only its
 * container names (a service name made a DNS label: `my_db` becomes `my-db`). Point at each env value or argument
 * that uses one of the other names as a host (`my_db`, `@my_db:5432`, `//my_db/`), so connection strings get
 * fixed before deploying rather than failing at run time.
 */
function warnRenamedHosts(cx: ComposeContext, states: ServiceState[]): void {
  const containerNames = new Set(states.map((s) => s.container.name));
  const lost = states.flatMap((s) =>
    s.aliases
      .filter((a) => !containerNames.has(a.name))
      .map((a) => ({
        ...hostPatterns(a.name),
        message: `"${a.name}" names service "${s.name}"${a.what ? ` (${a.what})` : ""}, which the pod resolves as "${s.container.name}" (or localhost): write ${s.container.name} here`,
      })),
  );
  if (lost.length === 0) return;
  const r = cx.r;
  states.forEach((s, i) => {
    const c = s.container;
    const at = (...rest: (string | number)[]): PathSegment[] => ["spec", "containers", i, ...rest];
    // A whole value is taken for a host only in a variable named like one (DB_HOST=my_db, not USER=loki).
    const values: [string, PathSegment[], boolean][] = [
      ...c.env.flatMap((e, j): [string, PathSegment[], boolean][] =>
        e.kind === "value" ? [[e.value, at("env", j, "value"), HOST_VARIABLE.test(e.name)]] : [],
      ),
      ...c.command.map((a, j): [string, PathSegment[], boolean] => [a, at("command", j), false]),
      ...c.args.map((a, j): [string, PathSegment[], boolean] => [a, at("args", j), false]),
    ];
    for (const [value, path, hostVariable] of values) {
      const hit = lost.find((l) => l.inText.test(value) || (hostVariable && l.whole.test(value)));
      if (hit) r.warn(r.nodeAt(path) ?? null, "UNKNOWN_REFERENCE", hit.message);
    }
  });
}

const HOST_VARIABLE = /HOST|SERVER|ADDR|URL|URI|ENDPOINT|BROKER|DSN|PEER|NODES/i;

/** A host name inside a value (`@db:5432`, `//db/`, `db:5432`), and a value that is only the name. */
function hostPatterns(name: string): { inText: RegExp; whole: RegExp } {
  const n = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return {
    inText: new RegExp(`(?:(?:@|//)${n}(?=$|[:/?,])|(?:^|[\\s,=])${n}:\\d)`),
    whole: new RegExp(`^${n}$`),
  };
}

/** Two services whose names become the same DNS label (my_app, my-app) would be one container name. */
function checkSameNames(cx: ComposeContext, states: ServiceState[]): void {
  const first = new Map<string, string>();
  states.forEach((s, i) => {
    const other = first.get(s.container.name);
    if (other === undefined) {
      first.set(s.container.name, s.name);
      return;
    }
    const path = ["spec", "containers", i, "name"];
    cx.r.report(
      cx.r.nodeAt(path) ?? null,
      "CONFLICT",
      `services "${other}" and "${s.name}" both become container "${s.container.name}" (container names are DNS labels): rename one`,
    );
    cx.r.poison(path);
  });
}

/** The manifest check's "more than 16 containers": the import reports it at services: with the count. */
function tooManyContainers(issue: { path: PathSegment[]; code: string }): boolean {
  return issue.code === "TOO_LARGE" && issue.path.length === 2 && issue.path[1] === "containers";
}

function profiledService(r: YamlReader, e: Entry): boolean {
  const n = r.resolve(e.value);
  return e.key.startsWith("x-") || (n !== null && isMap(n) && n.has("profiles"));
}

/**
 * Converts a Compose file into one pod. Returns the pod and its manifest YAML when there are no errors, the
 * images to build first, and the diagnostics (errors and warnings, in source order) either way. Never throws
 * for bad input.
 */
export function importCompose(text: string, file: string, options: ComposeImportOptions = {}): ComposeImport {
  const { reader, root } = YamlReader.parse(text, file, COMPOSE_TAGS);
  // Content merged from one anchor into several services would repeat the same located message: keep one.
  const sorted = () =>
    reader.diagnostics
      .sort((a, b) => a.line - b.line || a.col - b.col)
      .filter((d, i, all) => i === 0 || formatDiagnostic(d) !== formatDiagnostic(all[i - 1]!));
  if (!root) {
    if (!reader.hasErrors()) reader.report(null, "MISSING_KEY", "the Compose file is empty");
    return { builds: [], diagnostics: sorted() };
  }
  const project = readProject(new ComposeContext(reader, file, options), root);
  if (project) {
    for (const issue of validatePod(project.pod)) {
      if (reader.isPoisoned(issue.path) || tooManyContainers(issue)) continue;
      reader.report(reader.nodeAt(issue.path) ?? null, issue.code, issue.message);
    }
  }
  const diagnostics = sorted();
  if (!project || reader.hasErrors()) return { builds: [], diagnostics };
  return { ...project, manifest: formatManifest(project.pod), diagnostics };
}
