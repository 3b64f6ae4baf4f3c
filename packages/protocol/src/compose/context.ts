/**
 * What every part of a Compose import shares: the YAML reader (positions, diagnostics), the options, and
 * Compose's variable interpolation, which applies to every scalar the import reads.
 */
import { isScalar, isSeq, type Node } from "yaml";
import type { PathSegment } from "../pod.js";
import type { Entry, YamlReader } from "../yaml-reader.js";
import type { ComposeImportOptions } from "./types.js";

export class ComposeContext {
  readonly env: Record<string, string>;
  private readonly warnedUnset = new Set<string>();
  /** Set while peeking: interpolation reports nothing. */
  private quiet = false;
  /** One-shot services already warned about (see warnOneShotDependencies). */
  readonly warnedOneShot = new Set<string>();
  /** The active profiles. */
  readonly profiles: Set<string>;

  constructor(
    readonly r: YamlReader,
    readonly file: string,
    readonly options: ComposeImportOptions,
  ) {
    this.env = options.env ?? {};
    this.profiles = new Set(
      options.profiles ??
        (this.env.COMPOSE_PROFILES ?? "")
          .split(",")
          .map((p) => p.trim())
          .filter(Boolean),
    );
  }

  /** Whether a service with these profiles is imported: one of them is active, as Compose starts them. */
  profileActive(profiles: string[]): boolean {
    return this.profiles.has("*") || profiles.some((p) => this.profiles.has(p));
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
          if (!this.quiet) this.r.report(node, "INVALID_VALUE", `unterminated \${ in "${text.slice(0, 60)}"`);
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
    if (this.quiet) return "";
    // Once per variable, where it is first used: a file that uses an unset variable everywhere stays readable.
    if (this.warnedUnset.has(name)) return "";
    this.warnedUnset.add(name);
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
      if (!this.quiet) this.r.report(node, "INVALID_VALUE", `"\${${expr}}" is not a valid substitution`);
      return "";
    }
    const [, name = "", colon, op, arg = ""] = m;
    if (!op) return this.lookup(name, node);
    const value = this.env[name];
    const set = colon ? value !== undefined && value !== "" : value !== undefined;
    if (op === "-") return set ? value! : this.interpolate(arg, node);
    if (op === "+") return set ? this.interpolate(arg, node) : "";
    if (!set && !this.quiet)
      this.r.report(node, "MISSING_KEY", `variable ${name} is required${arg ? `: ${arg}` : ""}`);
    return value ?? "";
  }

  /**
   * A scalar's interpolated text without reporting anything, for looking ahead at what the import reads (and
   * reports about) later; undefined when it is not a scalar.
   */
  peek(raw: Node | null): string | undefined {
    const n = this.r.resolve(raw);
    if (!n || !isScalar(n) || n.value === null || typeof n.value === "object") return undefined;
    this.quiet = true;
    try {
      return this.interpolate(String(n.value), n);
    } finally {
      this.quiet = false;
    }
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

  /**
   * A non-negative integer, interpolated first: Compose casts after interpolation, so `retries: $RETRIES` and
   * `retries: "3"` are numbers.
   */
  integer(raw: Node | null, path: PathSegment[], what: string, anchor?: Node | null): number | undefined {
    const t = this.castable(raw, path, what, anchor);
    if (t === undefined) return undefined;
    if (/^\d+$/.test(t.trim()) && Number.isSafeInteger(Number(t))) return Number(t);
    this.r.report(this.r.resolve(raw), "INVALID_VALUE", `${what}: "${t}" is not a non-negative integer`);
    this.r.poison(path);
    return undefined;
  }

  /** A boolean, interpolated first; Compose also reads yes/no, on/off and y/n. */
  boolean(raw: Node | null, path: PathSegment[], what: string, anchor?: Node | null): boolean | undefined {
    const t = this.castable(raw, path, what, anchor);
    if (t === undefined) return undefined;
    const v = t.trim().toLowerCase();
    if (["true", "yes", "y", "on"].includes(v)) return true;
    if (["false", "no", "n", "off"].includes(v)) return false;
    this.r.report(this.r.resolve(raw), "INVALID_VALUE", `${what}: "${t}" is not a boolean (true or false)`);
    this.r.poison(path);
    return undefined;
  }

  /** A scalar's interpolated text to cast, or undefined when reading or interpolating it failed (reported). */
  private castable(raw: Node | null, path: PathSegment[], what: string, anchor?: Node | null) {
    const errorsBefore = this.r.diagnostics.filter((d) => d.severity === "error").length;
    const t = this.text(raw, path, what, anchor);
    const errorsAfter = this.r.diagnostics.filter((d) => d.severity === "error").length;
    return errorsAfter > errorsBefore ? undefined : t;
  }

  /** An entry's interpolated text, or undefined when the entry is absent. */
  entryText(e: Entry | undefined, path: PathSegment[] = []): string | undefined {
    return e && this.text(e.value, path, e.key, e.keyNode);
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
}

/** A name as a DNS label (lower case, letters, digits and dashes, at most 63 characters); may be empty. */
export function toDnsLabel(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/, "");
}

// POSIX path pieces without node:path, so compose import also runs in browsers.
function pathSegments(path: string): string[] {
  return path.split("/").filter((p) => p !== "" && p !== ".");
}

/** The last segment of a path ("./conf/app.conf/" gives "app.conf"). */
export function basename(path: string): string {
  return pathSegments(path).at(-1) ?? "";
}

/** The name of the directory holding a file path as written ("app/docker-compose.yml" gives "app"). */
export function directoryName(file: string): string {
  return pathSegments(file).at(-2) ?? "";
}

/** Joins a relative path onto a directory as written (absolute paths stay as they are). */
export function joinPath(dir: string, path: string): string {
  if (path.startsWith("/")) return path;
  const parts = [...pathSegments(dir), ...pathSegments(path)];
  const out: string[] = [];
  for (const p of parts) {
    if (p === ".." && out.length > 0 && out.at(-1) !== "..") out.pop();
    else out.push(p);
  }
  const joined = out.join("/") || ".";
  return dir.startsWith("/") ? `/${joined}` : joined;
}
