/**
 * Volumes: named volumes become persistent volumes, anonymous volumes and tmpfs emptyDirs, bind-mounted host
 * files and file-based secrets and configs secret volumes (encrypted, shipped with the pod), bind-mounted
 * directories empty persistent volumes. Host paths a pod cannot have (the engine's socket, /proc, ...) are refused.
 */
import { isMap, isSeq, type Node } from "yaml";
import type { Container, PathSegment, Volume, VolumeMount } from "../pod.js";
import type { Entry, MapView } from "../yaml-reader.js";
import { basename, type ComposeContext, joinPath, toDnsLabel } from "./context.js";
import { parseComposeBytes } from "./quantities.js";

/** Size of a persistent volume made from a named Compose volume, which has no size. */
export const COMPOSE_DEFAULT_VOLUME_SIZE = 1n << 30n;

/** The most files of one read-only host directory shipped as secret volumes (a pod has at most 64 volumes). */
const MAX_SHIPPED_FILES = 16;

/** Files taken for configuration (read by the program, not written): a writable directory of only these is shipped. */
const CONFIG_FILE =
  /\.(ya?ml|json|toml|ini|conf|cfg|config|xml|properties|py|js|lua|env|txt|md|sh|sql|rules|tmpl|j2|pem|crt|key)$/i;

const HOST_ONLY_PATHS =
  /^\/+$|^\/(var\/run|run|proc|sys|dev|boot|lib\/modules|var\/lib\/(docker|containers))(\/|$)|docker\.sock|podman\.sock/;

/** The pod's volumes, made as services mount them (one pod volume per Compose volume, file or secret). */
export class VolumeMapper {
  readonly volumes: Volume[] = [];
  private readonly volumeIndex = new Map<string, number>();
  /** Pod volume names already given to a source (a host file, a named volume, a secret). */
  private readonly namesBySource = new Map<string, string>();
  private readonly warnedVolumes = new Set<string>();
  /** Host directories bind-mounted by each service (normalized paths), to see which directories services share. */
  private readonly bindSources = new Map<string, string[]>();

  constructor(
    private readonly cx: ComposeContext,
    private readonly namedVolumes: MapView | undefined,
    private readonly topSecrets: MapView | undefined,
    private readonly topConfigs: MapView | undefined,
  ) {}

  /** Notes the host paths every service bind-mounts, before any service is read (see isBuiltSource). */
  noteBindSources(services: Entry[]): void {
    const { r } = this.cx;
    for (const e of services) {
      const m = isMap(r.resolve(e.value)) ? r.map(e.value, [], "service") : undefined;
      const list = m?.get("volumes");
      const items = list && r.resolve(list.value);
      if (!items || !isSeq(items)) continue;
      const sources = (items.items as (Node | null)[]).flatMap((item) => {
        const n = r.resolve(item);
        const source =
          n && isMap(n) ? this.cx.peek(n.get("source", true) as Node | null) : this.cx.peek(n)?.split(":")[0];
        return source && /^[./~]/.test(source) ? [joinPath(".", source)] : [];
      });
      this.bindSources.set(e.key, sources);
    }
  }

  /**
   * A service's tmpfs: and volumes:. buildContext is the service's build context when it has build: (a
   * read-only bind mount from inside it overlays files the image was built from).
   */
  volumeMounts(m: MapView, c: Container, path: PathSegment[], service: string, buildContext?: string): void {
    const { r } = this.cx;
    const tmpfs = m.get("tmpfs");
    if (tmpfs) {
      for (const t of this.cx.stringOrList(tmpfs, "tmpfs")) {
        const target = t.value.split(":")[0]!;
        const name = this.podVolume(
          this.uniqueVolumeName(`${c.name}-tmpfs`),
          () => ({ kind: "emptyDir" }),
          t.node,
        );
        this.mount(c, path, name, target, false, t.node);
      }
    }
    const volumes = m.get("volumes");
    if (!volumes) return;
    const specs = r.seq(volumes.value, [], "volumes", volumes.keyNode).map((item) => {
      const node = r.resolve(item);
      return { node, spec: node && isMap(node) ? this.longVolume(node) : this.shortVolume(item, volumes) };
    });
    // Source directories mounted over the image built from them are dropped (see oneMount), and so are the
    // anonymous volumes under them: those only kept the image's files there (node_modules) visible.
    const droppedSources = specs.flatMap(({ spec }) =>
      spec && this.isBuiltSource(spec, service, buildContext) ? [spec.target] : [],
    );
    for (const { node, spec } of specs) {
      if (!spec?.target) continue;
      const over =
        spec.type === "volume" && spec.source === ""
          ? droppedSources.find((t) => isInside(spec.target, t, "/"))
          : undefined;
      if (over !== undefined) {
        r.warn(
          node,
          "UNSUPPORTED",
          `anonymous volume at ${spec.target} dropped: it kept the image's files visible under the bind mount at ${over}, which is dropped`,
        );
        continue;
      }
      this.oneMount(c, path, node, spec, service, buildContext);
    }
  }

  /**
   * A bind mount of a directory inside the service's own build context: the image already has its files. A
   * writable one that another service mounts too is shared data (one service writes what another reads), not
   * source code.
   */
  private isBuiltSource(v: MountSource, service: string, buildContext: string | undefined): boolean {
    if (v.type !== "bind" || buildContext === undefined || HOST_ONLY_PATHS.test(v.source)) return false;
    const known = this.cx.options.pathKind?.(v.source);
    const kind = known === "file" || known === "directory" ? known : guessKind(v.source);
    if (kind !== "directory" || !isInside(v.source, buildContext)) return false;
    if (v.readOnly) return true;
    const source = joinPath(".", v.source);
    return ![...this.bindSources].some(
      ([other, paths]) => other !== service && paths.some((p) => isInside(p, source) || isInside(source, p)),
    );
  }

  private longVolume(node: Node): MountSource {
    const { r } = this.cx;
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
      "x-*",
    ])!;
    this.refuseSubpath(vm);
    const t = r.require(vm, "target", "a volume", []);
    const ro = vm.get("read_only");
    return {
      type: this.cx.entryText(vm.get("type")) ?? "volume",
      source: this.cx.entryText(vm.get("source")) ?? "",
      target: (t && this.cx.text(t.value, [], "target", t.keyNode)) ?? "",
      readOnly: (ro && this.cx.boolean(ro.value, [], "read_only", ro.keyNode)) ?? false,
    };
  }

  /** volume.subpath mounts part of a volume; a pod mounts whole volumes, and the data would land elsewhere. */
  private refuseSubpath(vm: MapView): void {
    const { r } = this.cx;
    const opts = vm.get("volume");
    const om = opts && r.resolve(opts.value);
    const subpath = om && isMap(om) ? r.map(om, [], "volume", undefined)?.get("subpath") : undefined;
    if (subpath)
      r.report(
        subpath.keyNode,
        "UNSUPPORTED",
        "volume.subpath: not supported (a pod mounts whole volumes); mount the volume at a parent path, or use a volume of its own",
      );
  }

  private shortVolume(item: Node | null, volumes: Entry): MountSource | undefined {
    const t = this.cx.text(item, [], "volumes items", volumes.keyNode);
    if (t === undefined) return undefined;
    const parts = t.split(":");
    let source = "";
    let target = "";
    if (parts.length === 1) target = parts[0]!;
    else [source = "", target = ""] = parts;
    const mode = parts.length > 2 ? parts[2]!.split(",") : [];
    const type = source === "" ? "volume" : /^[./~]/.test(source) ? "bind" : "volume";
    return { type, source, target, readOnly: mode.includes("ro") };
  }

  private oneMount(
    c: Container,
    path: PathSegment[],
    node: Node | null,
    v: MountSource,
    service: string,
    buildContext: string | undefined,
  ): void {
    const { r } = this.cx;
    const { type, source, target, readOnly } = v;
    if (type === "tmpfs" || (type === "volume" && source === "")) {
      const name = this.podVolume(
        this.uniqueVolumeName(`${c.name}-${type === "tmpfs" ? "tmpfs" : "scratch"}`),
        () => ({ kind: "emptyDir" }),
        node,
      );
      if (type !== "tmpfs")
        r.warn(
          node,
          "UNSUPPORTED",
          `anonymous volume at ${target} becomes an emptyDir (its data does not outlive the replica)`,
        );
      this.mount(c, path, name, target, readOnly, node);
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
      this.mount(c, path, this.namedVolume(source, declared), target, readOnly, node);
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
        `bind mount of ${source}: host paths like this are not available to pods (remove the mount; a pod cannot control the host's container engine or devices)`,
      );
      return;
    }
    const known = this.cx.options.pathKind?.(source);
    const kind = known === "file" || known === "directory" ? known : guessKind(source);
    if (kind === "file") {
      const name = this.nameFor(`file:${joinPath(".", source)}`, basename(source).replace(/\./g, "-"));
      this.podVolume(name, () => ({ kind: "secret", source: { kind: "file", path: source } }), node);
      r.warn(
        node,
        "UNSUPPORTED",
        `bind mount of host file ${source} becomes secret volume "${name}" (encrypted, read-only in the pod)`,
      );
      this.mount(c, path, name, target, true, node);
      return;
    }
    if (this.isBuiltSource(v, service, buildContext)) {
      // The development pattern: the source the image was built from, mounted over it for live reload.
      r.warn(
        node,
        "UNSUPPORTED",
        readOnly
          ? `read-only bind mount of ${source} dropped: it is inside the build context ${buildContext}, so the image built from it has these files (rebuild to change them)`
          : `bind mount of ${source} dropped: it is inside the build context ${buildContext}, so the image built from it has these files (rebuild to change them; what the program writes there does not outlive the replica)`,
      );
      return;
    }
    if (readOnly) {
      this.shipDirectory(c, path, node, source, target);
      return;
    }
    this.writableDirectory(c, path, node, source, target);
  }

  /**
   * A writable host directory: configuration files (prometheus.yml, a provisioning tree) are shipped read-only as
   * for a read-only mount, since the program needs them and rarely writes there; anything else (data, an empty
   * directory) becomes an empty persistent volume.
   */
  private writableDirectory(
    c: Container,
    path: PathSegment[],
    node: Node | null,
    source: string,
    target: string,
  ) {
    const { r } = this.cx;
    const files = this.cx.options.listFiles?.(source) ?? [];
    if (files.length > 0 && files.length <= MAX_SHIPPED_FILES && files.every((f) => CONFIG_FILE.test(f))) {
      this.shipFiles(
        c,
        path,
        node,
        source,
        target,
        files,
        "configuration files",
        "a program that writes there fails",
      );
      return;
    }
    // One volume per host directory: services that mount it share it, as they share the directory in Compose.
    const name = this.podVolume(
      this.nameFor(`dir:${joinPath(".", source)}`, basename(source) || "data"),
      () => ({ kind: "persistent", sizeBytes: COMPOSE_DEFAULT_VOLUME_SIZE }),
      node,
    );
    const lost =
      files.length > 0
        ? `: its ${files.length} ${files.length === 1 ? "file is" : "files are"} not copied (copy them into the image, or mount it read-only to ship them)`
        : "";
    r.warn(
      node,
      "UNSUPPORTED",
      `bind mount of host directory ${source} becomes persistent volume "${name}" of 1Gi, initially empty${lost}`,
    );
    this.mount(c, path, name, target, false, node);
  }

  /**
   * A read-only host directory (configuration: nginx conf.d, prometheus rules, a settings package) is shipped as
   * one secret volume per file, each mounted at its path under the target, when it holds few enough files.
   */
  private shipDirectory(
    c: Container,
    path: PathSegment[],
    node: Node | null,
    source: string,
    target: string,
  ) {
    const { r } = this.cx;
    const files = this.cx.options.listFiles?.(source);
    if (files === undefined) {
      r.report(
        node,
        "UNSUPPORTED",
        `read-only bind mount of host directory ${source}: its files cannot be read here to ship them; copy them into the image`,
      );
      return;
    }
    if (files.length === 0) {
      r.warn(
        node,
        "UNSUPPORTED",
        `read-only bind mount of host directory ${source} dropped: it has no files`,
      );
      return;
    }
    if (files.length > MAX_SHIPPED_FILES) {
      r.report(
        node,
        "UNSUPPORTED",
        `read-only bind mount of host directory ${source}: it has ${files.length} files, more than the ${MAX_SHIPPED_FILES} a pod can take as secret volumes; copy them into the image`,
      );
      return;
    }
    this.shipFiles(c, path, node, source, target, files, "files", "");
  }

  /** Each file under a host directory becomes a secret volume mounted read-only at its path under the target. */
  private shipFiles(
    c: Container,
    path: PathSegment[],
    node: Node | null,
    source: string,
    target: string,
    files: string[],
    what: string,
    caveat: string,
  ) {
    const kind =
      files.length === 1
        ? `${what.replace(/s$/, "")} becomes a secret volume`
        : `${what} become secret volumes`;
    this.cx.r.warn(
      node,
      "UNSUPPORTED",
      `${caveat ? "" : "read-only "}bind mount of host directory ${source}: its ${files.length} ${kind} (encrypted, read-only in the pod${caveat ? `: ${caveat}` : ""}); files added to it later are not seen`,
    );
    const dir = source.replace(/\/+$/, "");
    for (const rel of [...files].sort()) {
      const file = `${dir}/${rel}`;
      const name = this.nameFor(`file:${joinPath(".", file)}`, basename(rel).replace(/\./g, "-"));
      this.podVolume(name, () => ({ kind: "secret", source: { kind: "file", path: file } }), node);
      this.mount(c, path, name, `${target.replace(/\/+$/, "")}/${rel}`, true, node);
    }
  }

  private namedVolume(source: string, declared: Entry): string {
    const key = `named:${source}`;
    const known = this.namesBySource.get(key);
    if (known) return known;
    const { r } = this.cx;
    const name = this.nameFor(key, source);
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
      const t = this.cx.text(sizeText.value, [], "size", sizeText.keyNode);
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
    this.podVolume(name, () => ({ kind: "persistent", sizeBytes: size }), declared.keyNode);
    return name;
  }

  /** A service's secrets: or configs:; only file-based ones can be shipped with the pod. */
  secretMounts(m: MapView, c: Container, path: PathSegment[], key: "secrets" | "configs"): void {
    const { r } = this.cx;
    const e = m.get(key);
    if (!e) return;
    const what = key.slice(0, -1);
    const top = key === "secrets" ? this.topSecrets : this.topConfigs;
    for (const item of r.seq(e.value, [], key, e.keyNode)) {
      const node = r.resolve(item);
      let source: string | undefined;
      let target: string | undefined;
      if (node && isMap(node)) {
        const sm = r.map(node, [], what, ["source", "target", "uid", "gid", "mode", "x-*"])!;
        const src = r.require(sm, "source", `a ${what}`, []);
        source = src && this.cx.text(src.value, [], "source", src.keyNode);
        target = this.cx.entryText(sm.get("target"));
      } else source = this.cx.text(item, [], `${key} items`, e.keyNode);
      if (!source) continue;
      const decl = top?.get(source);
      if (!decl) {
        r.report(
          node,
          "UNKNOWN_REFERENCE",
          `${what} "${source}" is not declared under the top-level ${key}:`,
        );
        continue;
      }
      const dm = r.map(decl.value, [], `${what} "${source}"`, undefined, decl.keyNode);
      const filePath = this.cx.entryText(dm?.get("file"));
      if (!filePath) {
        const how = ["environment", "content", "external"].find((k) => dm?.has(k)) ?? "no file";
        r.report(
          decl.keyNode,
          "UNSUPPORTED",
          `${what} "${source}" (${how}): only file-based ${key} can be imported`,
        );
        continue;
      }
      const name = this.nameFor(`${key}:${source}`, source);
      this.podVolume(
        name,
        () => ({ kind: "secret", source: { kind: "file", path: filePath } }),
        decl.keyNode,
      );
      const base = key === "secrets" ? "/run/secrets/" : "/";
      const mountPath = target ? (target.startsWith("/") ? target : `${base}${target}`) : `${base}${source}`;
      this.mount(c, path, name, mountPath, true, node);
    }
  }

  /** The pod volume named name, created on first use. */
  private podVolume(name: string, make: () => DistributiveOmit<Volume, "name">, node: Node | null): string {
    if (this.volumeIndex.has(name)) return name;
    const i = this.volumes.length;
    this.volumes.push({ ...make(), name } as Volume);
    this.volumeIndex.set(name, i);
    this.cx.r.record(["spec", "volumes", i, "name"], node);
    return name;
  }

  /** The one name a source's volume gets, however many services mount it. */
  private nameFor(sourceKey: string, base: string): string {
    const known = this.namesBySource.get(sourceKey);
    if (known) return known;
    const name = this.uniqueVolumeName(base);
    this.namesBySource.set(sourceKey, name);
    return name;
  }

  private uniqueVolumeName(base: string): string {
    const root = toDnsLabel(base).slice(0, 55) || "volume";
    let name = root;
    for (let n = 2; this.volumeIndex.has(name); n++) name = `${root}-${n}`;
    return name;
  }

  private mount(
    c: Container,
    path: PathSegment[],
    volume: string,
    target: string,
    readOnly: boolean,
    node: Node | null,
  ): void {
    const j = c.volumeMounts.length;
    this.cx.r.record([...path, "volumeMounts", j, "mountPath"], node);
    this.cx.r.record([...path, "volumeMounts", j, "name"], node);
    c.volumeMounts.push({ name: volume, mountPath: target, readOnly } satisfies VolumeMount);
  }
}

interface MountSource {
  type: string;
  source: string;
  target: string;
  readOnly: boolean;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Whether a path lies inside a directory: relative host paths from the Compose file's directory (root "."), or absolute container paths (root "/"). */
function isInside(path: string, dir: string, root = "."): boolean {
  if (root === "." && (path.startsWith("/") || path.startsWith("~") || dir.startsWith("/"))) return false;
  const p = joinPath(root, path);
  const d = joinPath(root, dir);
  return d === root || p === d || p.startsWith(`${d}/`);
}

function guessKind(path: string): "file" | "directory" {
  const base = basename(path);
  return base.includes(".") && base !== "." && base !== ".." && !base.endsWith(".d") ? "file" : "directory";
}
