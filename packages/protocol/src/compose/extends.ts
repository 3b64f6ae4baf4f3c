/**
 * `extends:` within one file: the extending service is the base service with its own keys merged over it, by
 * Compose's merge rules. Mappings merge key by key (environment, labels, deploy, healthcheck, build, ...), lists
 * of mounts and ports append (a mount replaces the base's mount at the same target), and everything else
 * (image, command, entrypoint, healthcheck.test) is replaced. `!reset` drops a base value and `!override`
 * replaces it without merging. The merged service is built from the original nodes, so every diagnostic still
 * points at the line that wrote the value.
 */
import { isMap, isScalar, isSeq, type Node, Pair, Scalar, type Tags, YAMLMap, YAMLSeq } from "yaml";
import type { Entry, MapView } from "../yaml-reader.js";
import type { ComposeContext } from "./context.js";

/** Compose's `!reset` and `!override` tags; an empty or null scalar with `!reset` reads as null. */
export const COMPOSE_TAGS: Tags = ["!reset", "!override"].flatMap((tag) => [
  { tag, collection: "seq" as const, resolve: (v: unknown) => v, default: false },
  { tag, collection: "map" as const, resolve: (v: unknown) => v, default: false },
  { tag, resolve: (s: string) => (s === "" || s === "null" || s === "~" ? null : s), default: false },
]);

/** Lists whose items are appended; the value picks the target an item replaces a base item at. */
const APPENDED: Record<string, ((n: Node) => string | undefined) | null> = {
  ports: null,
  expose: null,
  dns: null,
  dns_search: null,
  tmpfs: null,
  cap_add: null,
  cap_drop: null,
  devices: null,
  env_file: null,
  external_links: null,
  links: null,
  security_opt: null,
  volumes: (n) => mountTarget(n, 1),
  secrets: (n) => mountTarget(n, 0),
  configs: (n) => mountTarget(n, 0),
};

/**
 * The services of a file with each `extends:` resolved (errors reported at the extends key); a service whose
 * extends cannot be resolved is left as written, without its extends key.
 */
export function resolveExtends(cx: ComposeContext, services: MapView): Entry[] {
  const resolved = new Map<string, Entry>();
  const resolving = new Set<string>();
  const resolve = (e: Entry): Entry => {
    const known = resolved.get(e.key);
    if (known) return known;
    resolving.add(e.key);
    const out = extendOne(cx, services, e, resolving, resolve);
    resolving.delete(e.key);
    resolved.set(e.key, out);
    return out;
  };
  return [...services.entries.values()].map((e) => (e.key.startsWith("x-") ? e : resolve(e)));
}

function extendOne(
  cx: ComposeContext,
  services: MapView,
  e: Entry,
  resolving: Set<string>,
  resolve: (e: Entry) => Entry,
): Entry {
  const r = cx.r;
  const local = r.resolve(e.value);
  if (!local || !isMap(local)) return e;
  const flat = flatten(cx, local);
  const ext = flat.items.find((p) => isScalar(p.key) && p.key.value === "extends");
  if (!ext) return e;
  const withoutExtends = copyMap(flat, (p) => p !== ext);
  const at = ext.key as Node;
  const base = baseName(cx, ext.value as Node | null, at);
  if (base === undefined) return { ...e, value: withoutExtends };
  const baseEntry = services.get(base);
  if (!baseEntry || base.startsWith("x-")) {
    r.report(at, "UNKNOWN_REFERENCE", `extends: no service "${base}" in this file`);
    return { ...e, value: withoutExtends };
  }
  if (resolving.has(base)) {
    r.report(at, "CONFLICT", `extends: service "${e.key}" extends itself through "${base}"`);
    return { ...e, value: withoutExtends };
  }
  const baseNode = r.resolve(resolve(baseEntry).value);
  if (!baseNode || !isMap(baseNode)) return { ...e, value: withoutExtends };
  return { ...e, value: mergeMaps(cx, baseNode, withoutExtends, withoutExtends) };
}

/** The service named by `extends: NAME` or `extends: {service: NAME}`; another file is refused. */
function baseName(cx: ComposeContext, raw: Node | null, at: Node): string | undefined {
  const r = cx.r;
  const node = r.resolve(raw);
  if (node && isMap(node)) {
    const m = r.map(node, [], "extends", ["service", "file", "x-*"])!;
    const file = cx.entryText(m.get("file"));
    if (file !== undefined) {
      r.report(
        at,
        "UNSUPPORTED",
        `extends: from another file (${file}) is not supported; copy the service into this file`,
      );
      return undefined;
    }
    const service = r.require(m, "service", "extends", []);
    return service && cx.text(service.value, [], "service", service.keyNode);
  }
  return cx.text(raw, [], "extends", at);
}

/** Merges a local mapping over a base one; `range` is where the merged mapping is reported. */
function mergeMaps(cx: ComposeContext, base: YAMLMap, local: YAMLMap, at: YAMLMap, path = ""): YAMLMap {
  const out = copyMap(flatten(cx, base), () => true, at);
  for (const pair of flatten(cx, local).items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
    const i = out.items.findIndex((p) => isScalar(p.key) && String(p.key.value) === key);
    const value = pair.value as Node | null;
    if (key === undefined || i < 0) {
      if (!(value && value.tag === "!reset")) out.items.push(pair);
      continue;
    }
    if (value?.tag === "!reset") {
      out.items.splice(i, 1);
      continue;
    }
    const merged = mergeValues(cx, `${path}${key}`, out.items[i]!.value as Node | null, value);
    out.items[i] = new Pair(pair.key, merged);
  }
  return out;
}

function mergeValues(
  cx: ComposeContext,
  key: string,
  baseRaw: Node | null,
  localRaw: Node | null,
): Node | null {
  const r = cx.r;
  const base = r.resolve(baseRaw);
  const local = r.resolve(localRaw);
  if (!base || !local || localRaw?.tag === "!override") return localRaw;
  if (key === "environment" || key === "labels") {
    if (isMap(base) && isMap(local)) return mergeMaps(cx, base, local, local);
    // Mixed forms: both as KEY=VALUE lists, later entries winning.
    return appendSeq(asKeyValues(base), asKeyValues(local), local);
  }
  if (key in APPENDED && isSeq(base) && isSeq(local)) {
    const targetOf = APPENDED[key];
    const replaced = new Set(targetOf ? local.items.map((n) => targetOf(n as Node)) : []);
    const kept = base.items.filter((n) => !targetOf || !replaced.has(targetOf(n as Node)));
    return appendSeq(kept as Node[], local.items as Node[], local);
  }
  if (isMap(base) && isMap(local) && key !== "command" && key !== "entrypoint")
    return mergeMaps(cx, base, local, local, `${key}.`);
  return localRaw;
}

/** A mapping with its merge keys (`<<`) applied, so that extends merges what YAML would read. */
function flatten(cx: ComposeContext, m: YAMLMap): YAMLMap {
  if (!m.items.some((p) => isScalar(p.key) && typeof p.key.value === "symbol")) return m;
  const out = new YAMLMap();
  out.items = [...(cx.r.map(m, [], "mapping")?.entries.values() ?? [])].map(
    (e) => new Pair(e.keyNode, e.value),
  );
  out.range = m.range;
  return out;
}

function copyMap(m: YAMLMap, keep: (p: Pair) => boolean, at: Node = m): YAMLMap {
  const out = new YAMLMap();
  out.items = (m.items as Pair[]).filter(keep);
  out.range = at.range;
  return out;
}

function appendSeq(a: Node[], b: Node[], at: Node): YAMLSeq {
  const out = new YAMLSeq();
  out.items = [...a, ...b];
  out.range = at.range;
  return out;
}

/** A list of KEY=VALUE scalars from an environment mapping or list (a mapping's scalars keep their key's range). */
function asKeyValues(n: Node): Node[] {
  if (isSeq(n)) return n.items as Node[];
  if (!isMap(n)) return [];
  return n.items.map((p) => {
    const v = p.value as Node | null;
    const text =
      v && isScalar(v) && v.value !== null
        ? `${String((p.key as Scalar).value)}=${String(v.value)}`
        : String((p.key as Scalar).value);
    const s = new Scalar(text);
    s.range = (p.key as Node).range;
    return s;
  });
}

/** The container path a mount item is at: short `SRC:TARGET[:MODE]` (or `TARGET`), or long `{target}`. */
function mountTarget(n: Node, index: number): string | undefined {
  if (isScalar(n)) {
    const parts = String(n.value).split(":");
    return parts.length > index ? parts[index] : parts[0];
  }
  if (isMap(n)) {
    const t = n.get("target") ?? n.get("source");
    return t === undefined ? undefined : String(t);
  }
  return undefined;
}
