/**
 * build: a service's image is built locally before the pod is deployed (the CLI builds it with Podman), then
 * pushed like any local image. This reads Compose's two forms, a context path or
 * {context, dockerfile, dockerfile_inline, args, target, ...}, and checks what can be checked before building:
 * the context must be a directory here (remote contexts cannot be fetched), the Containerfile must exist.
 */
import { isMap, isScalar, isSeq, type Node } from "yaml";
import type { Entry, MapView } from "../yaml-reader.js";
import { type ComposeContext, joinPath } from "./context.js";
import type { ComposeBuild } from "./types.js";

const BUILD_KEYS = [
  "x-*",
  "context",
  "dockerfile",
  "dockerfile_inline",
  "args",
  "target",
  "labels",
  "no_cache",
  "pull",
  "network",
  "ssh",
  "secrets",
  "cache_from",
  "cache_to",
  "additional_contexts",
  "extra_hosts",
  "isolation",
  "privileged",
  "shm_size",
  "tags",
  "platforms",
  "ulimits",
  "entitlements",
  "provenance",
  "sbom",
  "x-*",
];

/** Build keys that only tune the build or tag extra names: the image is the same without them. */
const BUILD_DROPPED: Record<string, string> = {
  pull: "base images come from the local store (nothing is pulled)",
  network: "",
  cache_from: "",
  cache_to: "",
  extra_hosts: "",
  isolation: "",
  shm_size: "",
  tags: "the image is tagged with the service's image name only",
  platforms: "the image is built for this machine's platform",
  ulimits: "",
  provenance: "",
  sbom: "",
};

/** Build keys the image would be wrong or the build would fail without. */
const BUILD_REFUSED: Record<string, string> = {
  ssh: "the build cannot use this machine's SSH agent; copy what it fetches into the context",
  secrets: "build secrets are not supported; pass the value as a build argument or copy it into the context",
  additional_contexts: "merge the extra contexts into the build context",
  entitlements: "builds get no extra entitlements",
};

const REMOTE_CONTEXT = /^(https?:\/\/|git@|git:\/\/|ssh:\/\/|github\.com\/)/;

/**
 * The build of one service, or undefined after reporting why it cannot be built. image is the tag to build
 * (the service's image: when it has one, Compose's `<project>-<service>` otherwise).
 */
export function readBuild(
  cx: ComposeContext,
  e: Entry,
  service: string,
  container: string,
  image: string,
): ComposeBuild | undefined {
  const r = cx.r;
  const node = r.resolve(e.value);
  const pos = r.position(e.keyNode);
  const build: ComposeBuild = {
    service,
    container,
    image,
    context: ".",
    args: {},
    labels: {},
    noCache: false,
    line: pos.line,
    col: pos.col,
  };
  let contextNode: Node | null = node;
  if (node && isMap(node)) {
    const bm = r.map(node, [], "build", BUILD_KEYS, e.keyNode)!;
    const ctx = bm.get("context");
    if (ctx) {
      build.context = cx.text(ctx.value, [], "context", ctx.keyNode) ?? ".";
      contextNode = r.resolve(ctx.value);
    } else contextNode = e.keyNode;
    readBuildOptions(cx, bm, build);
  } else {
    const t = cx.text(e.value, [], "build", e.keyNode);
    if (t === undefined) return undefined;
    build.context = t || ".";
  }
  return checkContext(cx, build, contextNode ?? e.keyNode) ? build : undefined;
}

function readBuildOptions(cx: ComposeContext, bm: MapView, build: ComposeBuild): void {
  const r = cx.r;
  const dockerfile = cx.entryText(bm.get("dockerfile"));
  if (dockerfile) build.dockerfile = dockerfile;
  const inline = bm.get("dockerfile_inline");
  if (inline) {
    build.dockerfileInline = cx.text(inline.value, [], "dockerfile_inline", inline.keyNode) ?? "";
    if (dockerfile)
      r.report(inline.keyNode, "CONFLICT", "build: dockerfile and dockerfile_inline cannot both be set");
  }
  const target = cx.entryText(bm.get("target"));
  if (target) build.target = target;
  const args = bm.get("args");
  if (args) build.args = keyValues(cx, args, true);
  const labels = bm.get("labels");
  if (labels) build.labels = keyValues(cx, labels, false);
  const noCache = bm.get("no_cache");
  if (noCache) build.noCache = cx.boolean(noCache.value, [], "no_cache", noCache.keyNode) ?? false;
  const privileged = bm.get("privileged");
  if (privileged && cx.boolean(privileged.value, [], "privileged", privileged.keyNode))
    r.report(
      privileged.keyNode,
      "UNSUPPORTED",
      "build.privileged: not supported (builds never run privileged; remove it)",
    );
  for (const [key, why] of Object.entries(BUILD_REFUSED)) {
    const x = bm.get(key);
    if (x) r.report(x.keyNode, "UNSUPPORTED", `build.${key}: not supported (${why})`);
  }
  for (const [key, why] of Object.entries(BUILD_DROPPED)) {
    const x = bm.get(key);
    if (x) r.warn(x.keyNode, "UNSUPPORTED", `build.${key}: dropped${why ? `; ${why}` : ""}`);
  }
}

/**
 * args and labels: a map, or a list of "KEY=VALUE". An arg without a value takes the variable's value when it
 * is set (Compose does the same) and is left to the Containerfile's default otherwise.
 */
function keyValues(cx: ComposeContext, e: Entry, fromEnv: boolean): Record<string, string> {
  const r = cx.r;
  const out: Record<string, string> = {};
  const node = r.resolve(e.value);
  const bare = (name: string) => {
    const v = cx.env[name];
    if (fromEnv && v !== undefined) out[name] = v;
  };
  if (node && isSeq(node)) {
    for (const item of r.seq(node, [], e.key, e.keyNode)) {
      const t = cx.text(item, [], `${e.key} items`, e.keyNode);
      if (t === undefined) continue;
      const eq = t.indexOf("=");
      if (eq < 0) bare(t);
      else out[t.slice(0, eq)] = t.slice(eq + 1);
    }
    return out;
  }
  const m = r.map(e.value, [], e.key, undefined, e.keyNode);
  for (const item of m?.entries.values() ?? []) {
    const v = r.resolve(item.value);
    if (!v || (isScalar(v) && v.value === null)) bare(item.key);
    else {
      const t = cx.text(item.value, [], item.key, item.keyNode);
      if (t !== undefined) out[item.key] = t;
    }
  }
  return out;
}

/** The context must be a local directory holding the Containerfile (checked when the caller can look). */
function checkContext(cx: ComposeContext, build: ComposeBuild, node: Node): boolean {
  const r = cx.r;
  if (REMOTE_CONTEXT.test(build.context)) {
    r.report(
      node,
      "UNSUPPORTED",
      `build context ${build.context} is remote: clone it and set context: to the local directory`,
    );
    return false;
  }
  const kind = cx.options.pathKind;
  if (!kind) return true;
  if (kind(build.context) !== "directory") {
    r.report(node, "FILE_NOT_FOUND", `build context ${build.context} is not a directory here`);
    return false;
  }
  if (build.dockerfileInline !== undefined) return true;
  if (build.dockerfile) {
    const file = joinPath(build.context, build.dockerfile);
    if (kind(file) === "file") return true;
    r.report(
      node,
      "FILE_NOT_FOUND",
      `build: dockerfile ${build.dockerfile} is not in the context ${build.context}`,
    );
    return false;
  }
  const found = ["Containerfile", "Dockerfile"].find((f) => kind(joinPath(build.context, f)) === "file");
  if (found) return true;
  r.report(node, "FILE_NOT_FOUND", `build context ${build.context} has no Containerfile or Dockerfile`);
  return false;
}
