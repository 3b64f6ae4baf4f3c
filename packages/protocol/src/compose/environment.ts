/** Environment: env_file entries, then environment: (map or list); pass-through names take .env's value. */
import { isMap, isScalar, isSeq, type Node } from "yaml";
import type { EnvVar, PathSegment } from "../pod.js";
import { parseDotEnv } from "../shell.js";
import type { MapView } from "../yaml-reader.js";
import type { ComposeContext } from "./context.js";

type Vars = Map<string, { value: string; node: Node | null }>;

export function readEnvironment(cx: ComposeContext, m: MapView, path: PathSegment[]): EnvVar[] {
  const r = cx.r;
  const vars: Vars = new Map();
  readEnvFiles(cx, m, vars);
  const env = m.get("environment");
  const unset: string[] = [];
  const passThrough = (name: string, node: Node | null) => {
    const v = cx.env[name];
    if (v !== undefined) vars.set(name, { value: v, node });
    else unset.push(name);
  };
  if (env) {
    const node = r.resolve(env.value);
    if (node && isMap(node)) {
      const em = r.map(node, [], "environment")!;
      for (const item of em.entries.values()) {
        const v = r.resolve(item.value);
        if (!v || (isScalar(v) && v.value === null)) {
          passThrough(item.key, item.keyNode);
          continue;
        }
        const value = cx.text(item.value, [], item.key, item.keyNode);
        if (value !== undefined) vars.set(item.key, { value, node: item.keyNode });
      }
    } else {
      for (const item of r.seq(env.value, [], "environment", env.keyNode)) {
        const t = cx.text(item, [], "environment items", env.keyNode);
        if (t === undefined) continue;
        const eq = t.indexOf("=");
        const n = r.resolve(item);
        if (eq < 0) passThrough(t, n);
        else vars.set(t.slice(0, eq), { value: t.slice(eq + 1), node: n });
      }
    }
  }
  if (env && unset.length > 0) {
    // One warning per service: some files pass dozens of optional variables through from the shell.
    const many = unset.length > 1;
    r.warn(
      env.keyNode,
      "MISSING_KEY",
      `environment ${unset.join(", ")} ${many ? "have" : "has"} no value (Compose takes ${many ? "them" : "it"} from the shell): dropped; set ${many ? "them" : "it"} in .env`,
    );
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

function readEnvFiles(cx: ComposeContext, m: MapView, vars: Vars): void {
  const r = cx.r;
  const envFile = m.get("env_file");
  if (!envFile) return;
  const node = r.resolve(envFile.value);
  const items = node && isSeq(node) ? (node.items as (Node | null)[]) : [envFile.value];
  for (const item of items) {
    const n = r.resolve(item);
    let file: string | undefined;
    let required = true;
    if (n && isMap(n)) {
      const fm = r.map(n, [], "env_file entry", ["path", "required", "format", "x-*"])!;
      const p = r.require(fm, "path", "an env_file entry", []);
      file = p && cx.text(p.value, [], "path", p.keyNode);
      const req = fm.get("required");
      if (req) required = cx.boolean(req.value, [], "required", req.keyNode) ?? true;
    } else file = cx.text(item, [], "env_file", envFile.keyNode);
    if (file === undefined) continue;
    const content = cx.options.readFile?.(file);
    if (content === undefined) {
      if (required) r.report(n ?? envFile.keyNode, "FILE_NOT_FOUND", `env_file "${file}" cannot be read`);
      continue;
    }
    // Compose expands variables in env_file values too: the file's own, then the project's (.env).
    const parsed = parseDotEnv(content, (name) => cx.env[name]);
    for (const err of parsed.errors)
      r.report(n, "INVALID_VALUE", `env_file "${file}" line ${err.line}: ${err.message}`);
    for (const [k, v] of Object.entries(parsed.vars)) vars.set(k, { value: v, node: n });
  }
}
