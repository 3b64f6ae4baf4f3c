/**
 * Walks a parsed YAML document node by node so every value keeps its source position: errors point at the
 * exact key or value, unknown keys get a did-you-mean, and reading goes on after an error so that all of them
 * are reported at once. Aliases and merge keys (`<<`) are followed within a work budget (no alias bombs).
 */
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  type Scalar,
  type Tags,
} from "yaml";
import { type Diagnostic, type DiagnosticCode, didYouMean, type Severity } from "./diagnostics.js";
import { formatPath, type PathSegment } from "./pod.js";

/** Largest YAML text any reader accepts. */
export const MAX_YAML_BYTES = 1 << 20;
const WORK_BUDGET = 200_000;

type Positioned = Node | Scalar | null | undefined;

export interface Entry {
  key: string;
  keyNode: Node;
  /** null when the key has no value (`key:`). */
  value: Node | null;
}

export class MapView {
  constructor(
    readonly node: Node,
    readonly entries: Map<string, Entry>,
  ) {}
  get(key: string): Entry | undefined {
    return this.entries.get(key);
  }
  has(key: string): boolean {
    return this.entries.has(key);
  }
}

/** A key and value with no space after the colon ("name:web"), which YAML reads as one string. */
const NO_SPACE_AFTER_COLON = /^[A-Za-z_][\w.-]*:[^\s:/]/;

/**
 * What to do about the syntax errors people make most, by the yaml library's error code: the library says what
 * it found, not what the author probably meant.
 */
export function syntaxHint(code: string, message: string, line: string): string | undefined {
  switch (code) {
    case "TAB_AS_INDENT":
      return "YAML indents with spaces only: replace the tab at the start of this line with spaces";
    case "BAD_INDENT":
      if (/^Flow (sequence|mapping)/.test(message))
        return "close the [ ] list or { } mapping, and indent its continuation lines more than its key";
      return "this line's indentation does not line up with the keys above it: keys of one mapping must start in the same column (list items under their key, indented alike)";
    case "MISSING_CHAR":
      return /quote/.test(message)
        ? "a quoted string is not closed: add the closing quote where the value ends (it runs on to here)"
        : undefined;
    case "MULTILINE_IMPLICIT_KEY":
      return NO_SPACE_AFTER_COLON.test(line.trim())
        ? 'a key needs a space after its colon ("name: web", not "name:web")'
        : "a key must fit on one line: check for a missing space after a colon, or an unclosed quote or bracket above";
    case "BLOCK_AS_IMPLICIT_KEY":
      return "a value on the same line as its key cannot hold another key: put the nested keys on their own lines, indented, or quote the value";
    case "DUPLICATE_KEY":
      return "each key may appear only once in a mapping";
    default:
      return undefined;
  }
}

/** The hint for a string where a mapping belongs that looks like "key:value" missing the space. */
function missingSpaceHint(node: Node | null): string {
  return node && isScalar(node) && typeof node.value === "string" && NO_SPACE_AFTER_COLON.test(node.value)
    ? ` (it is the string "${node.value.length > 40 ? `${node.value.slice(0, 40)}…` : node.value}": a key needs a space after its colon, "name: web" not "name:web")`
    : "";
}

/** The expected type, noting when the value is missing altogether (`key:` with nothing after it). */
function emptyOr(node: Node | null, expected: string): string {
  return !node || (isScalar(node) && node.value === null) ? `${expected} (it is empty)` : expected;
}

export class YamlReader {
  readonly diagnostics: Diagnostic[] = [];
  private work = 0;
  private exhausted = false;
  private readonly nodes = new Map<string, Node>();
  private readonly poisoned = new Set<string>();
  // Alias.resolve searches the whole document each time: cache it so aliases cost O(1) after the first.
  private readonly aliasTargets = new Map<Node, Node | undefined>();

  private constructor(
    readonly file: string,
    readonly doc: Document.Parsed | undefined,
    private readonly lines: LineCounter,
  ) {}

  /**
   * Parses YAML text; syntax errors become diagnostics and `root` is undefined when nothing can be read.
   * customTags are the tags the format allows beyond YAML's (Compose's `!reset` and `!override`).
   */
  static parse(
    text: string,
    file: string,
    customTags: Tags = [],
  ): { reader: YamlReader; root: Node | undefined } {
    const lines = new LineCounter();
    if (text.length > MAX_YAML_BYTES) {
      const reader = new YamlReader(file, undefined, lines);
      reader.diagnostics.push({
        file,
        line: 1,
        col: 1,
        code: "TOO_LARGE",
        severity: "error",
        message: `file is larger than ${MAX_YAML_BYTES} bytes`,
      });
      return { reader, root: undefined };
    }
    const doc = parseDocument(text, {
      lineCounter: lines,
      merge: true,
      customTags,
      prettyErrors: false,
      uniqueKeys: true,
    });
    const reader = new YamlReader(file, doc, lines);
    for (const e of [...doc.errors, ...doc.warnings]) {
      const { line, col } = lines.linePos(e.pos[0]);
      const raw = e.message.split("\n")[0]!.replace(/ at line \d+, column \d+.*$/, "");
      const hint = syntaxHint(e.code, raw, text.split("\n")[line - 1] ?? "");
      const message = hint ? `${raw}: ${hint}` : raw;
      reader.diagnostics.push({ file, line, col, code: "YAML_SYNTAX", severity: "error", message });
    }
    if (doc.errors.length > 0) return { reader, root: undefined };
    return { reader, root: (doc.contents as Node | null) ?? undefined };
  }

  hasErrors(): boolean {
    return this.diagnostics.some((d) => d.severity === "error");
  }

  position(node: Positioned): { line: number; col: number } {
    const offset = node?.range?.[0] ?? 0;
    return this.lines.linePos(offset);
  }

  report(node: Positioned, code: DiagnosticCode, message: string, severity: Severity = "error"): void {
    const { line, col } = this.position(node);
    this.diagnostics.push({ file: this.file, line, col, code, message, severity });
  }

  warn(node: Positioned, code: DiagnosticCode, message: string): void {
    this.report(node, code, message, "warning");
  }

  /** Remembers where a path's value is, so later checks on the typed value can point at it. */
  record(path: PathSegment[], node: Positioned): void {
    if (node) this.nodes.set(formatPath(path), node);
  }

  /** Marks a path as already reported, so checks on its placeholder value stay quiet. */
  poison(path: PathSegment[]): void {
    this.poisoned.add(formatPath(path));
  }

  isPoisoned(path: PathSegment[]): boolean {
    for (let i = path.length; i >= 0; i--) if (this.poisoned.has(formatPath(path.slice(0, i)))) return true;
    return false;
  }

  /** The recorded node of a path or of its nearest recorded ancestor. */
  nodeAt(path: PathSegment[]): Node | undefined {
    for (let i = path.length; i >= 0; i--) {
      const node = this.nodes.get(formatPath(path.slice(0, i)));
      if (node) return node;
    }
    return undefined;
  }

  /** Follows aliases; charges the work budget so repeated aliases cannot blow up. */
  resolve(node: Node | null | undefined): Node | null {
    if (this.exhausted || !node) return null;
    if (++this.work > WORK_BUDGET) {
      this.exhausted = true;
      this.report(node, "TOO_LARGE", "document is too complex (too many nodes or aliases)");
      return null;
    }
    let n: Node | undefined = node;
    for (let hops = 0; n && isAlias(n); hops++) {
      if (hops > 100 || !this.doc) return null;
      const alias: Node = n;
      if (!this.aliasTargets.has(alias))
        this.aliasTargets.set(alias, n.resolve(this.doc) as Node | undefined);
      n = this.aliasTargets.get(alias);
    }
    return n ?? null;
  }

  /** Reads a mapping with string keys, following merge keys; reports unknown keys against `allowed`. */
  map(
    raw: Node | null,
    path: PathSegment[],
    what: string,
    allowed?: readonly string[],
    anchor?: Positioned,
  ): MapView | undefined {
    const node = this.resolve(raw);
    if (node && isScalar(node) && node.value === null) return new MapView(node, new Map());
    if (!node || !isMap(node)) {
      if (!this.exhausted)
        this.report(node ?? anchor, "INVALID_TYPE", `${what} must be a mapping${missingSpaceHint(node)}`);
      this.poison(path);
      return undefined;
    }
    this.record(path, node);
    const entries = new Map<string, Entry>();
    this.collect(node, entries, what, 0);
    if (allowed) {
      for (const e of entries.values()) {
        if (allowed.includes(e.key) || (allowed.includes("x-*") && e.key.startsWith("x-"))) continue;
        const hint = didYouMean(
          e.key,
          allowed.filter((k) => !k.includes("*")),
        );
        this.report(
          e.keyNode,
          "UNKNOWN_KEY",
          `unknown key "${e.key}" in ${what}${hint ? ` (did you mean "${hint}"?)` : ""}`,
        );
      }
    }
    return new MapView(node, entries);
  }

  private collect(node: Node, into: Map<string, Entry>, what: string, depth: number): void {
    if (!isMap(node) || depth > 20) return;
    const merges: Node[] = [];
    for (const pair of node.items) {
      const keyNode = pair.key as Node;
      if (isScalar(keyNode) && typeof keyNode.value === "symbol") {
        const v = this.resolve(pair.value as Node);
        if (v && isSeq(v)) merges.push(...(v.items as Node[]));
        else if (v) merges.push(v);
        continue;
      }
      if (!isScalar(keyNode) || (typeof keyNode.value !== "string" && typeof keyNode.value !== "number")) {
        this.report(keyNode, "INVALID_TYPE", `keys of ${what} must be strings`);
        continue;
      }
      const key = String(keyNode.value);
      // Explicit keys win over merged ones; an earlier merge source wins over a later one.
      if (!into.has(key)) into.set(key, { key, keyNode, value: (pair.value as Node | null) ?? null });
    }
    for (const m of merges) {
      const src = this.resolve(m);
      if (src && isMap(src)) this.collect(src, into, what, depth + 1);
      else if (src) this.report(src, "INVALID_TYPE", "a merge key (<<) must refer to mappings");
    }
  }

  /** Reads a sequence; an absent or null value is an empty list. */
  seq(raw: Node | null, path: PathSegment[], what: string, anchor?: Positioned): (Node | null)[] {
    const node = this.resolve(raw);
    if (!node || (isScalar(node) && node.value === null)) return [];
    if (!isSeq(node)) {
      this.report(node ?? anchor, "INVALID_TYPE", `${what} must be a list`);
      this.poison(path);
      return [];
    }
    this.record(path, node);
    return node.items as (Node | null)[];
  }

  /** A scalar's text as written (numbers and booleans keep their source text, e.g. `0.5`, `010`). */
  scalarText(raw: Node | null, path: PathSegment[], what: string, anchor?: Positioned): string | undefined {
    const node = this.resolve(raw);
    if (node && isScalar(node) && node.value !== null && typeof node.value !== "object") {
      this.record(path, node);
      if (typeof node.value === "string") return node.value;
      return typeof node.source === "string" ? node.source : String(node.value);
    }
    if (!this.exhausted)
      this.report(node ?? anchor, "INVALID_TYPE", `${what} must be ${emptyOr(node, "a scalar")}`);
    this.poison(path);
    return undefined;
  }

  /** A string scalar (quoted or plain text that YAML reads as a string). */
  string(raw: Node | null, path: PathSegment[], what: string, anchor?: Positioned): string | undefined {
    const node = this.resolve(raw);
    if (node && isScalar(node) && typeof node.value === "string") {
      this.record(path, node);
      return node.value;
    }
    if (!this.exhausted)
      this.report(node ?? anchor, "INVALID_TYPE", `${what} must be ${emptyOr(node, "a string")}`);
    this.poison(path);
    return undefined;
  }

  /** A non-negative integer scalar. */
  integer(raw: Node | null, path: PathSegment[], what: string, anchor?: Positioned): number | undefined {
    const node = this.resolve(raw);
    if (
      node &&
      isScalar(node) &&
      typeof node.value === "number" &&
      Number.isSafeInteger(node.value) &&
      node.value >= 0
    ) {
      this.record(path, node);
      return node.value;
    }
    if (!this.exhausted)
      this.report(node ?? anchor, "INVALID_TYPE", `${what} must be a non-negative integer`);
    this.poison(path);
    return undefined;
  }

  boolean(raw: Node | null, path: PathSegment[], what: string, anchor?: Positioned): boolean | undefined {
    const node = this.resolve(raw);
    if (node && isScalar(node) && typeof node.value === "boolean") {
      this.record(path, node);
      return node.value;
    }
    if (!this.exhausted) this.report(node ?? anchor, "INVALID_TYPE", `${what} must be true or false`);
    this.poison(path);
    return undefined;
  }

  /** Reports a missing key at the mapping that should hold it. */
  require(m: MapView, key: string, what: string, path: PathSegment[]): Entry | undefined {
    const e = m.get(key);
    if (!e) {
      this.report(m.node, "MISSING_KEY", `${what} needs "${key}"`);
      this.poison([...path, key]);
    }
    return e;
  }
}
