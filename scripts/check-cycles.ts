// Fails when files import each other in a circle. Packages already depend downward only (tsc's project
// references refuse a cycle between packages); this checks the files inside each package, type-only imports
// included: a circle of types is still two modules that cannot be understood, moved or tested one without the
// other. Uses the TypeScript compiler's import scanner (no new dependency). Run by `npm run lint`.
//
//   node scripts/check-cycles.ts [DIR...]     (default: every packages/*/src and packages/*/test, test-support)
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

const ROOT = resolve(import.meta.dirname, "..");
const SOURCE = /\.(ts|tsx|mts)$/;

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name === "gen") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else if (SOURCE.test(name) && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

/** The file a relative specifier names ("./x.js" is x.ts or x.tsx, "./dir" is dir/index.ts), if it exists. */
function resolveRelative(from: string, spec: string): string | undefined {
  const base = resolve(dirname(from), spec);
  const stem = base.replace(/\.(js|jsx|mjs|ts|tsx)$/, "");
  for (const candidate of [
    `${stem}.ts`,
    `${stem}.tsx`,
    `${stem}.mts`,
    join(base, "index.ts"),
    join(base, "index.tsx"),
  ])
    if (existsSync(candidate)) return candidate;
  return undefined;
}

/** Relative imports and re-exports of each file (`import type` included), resolved to files. */
export function importGraph(files: readonly string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    const edges = info.importedFiles
      .map((f) => f.fileName)
      .filter((spec) => spec.startsWith("."))
      .map((spec) => resolveRelative(file, spec))
      .filter((f): f is string => f !== undefined);
    graph.set(file, [...new Set(edges)]);
  }
  return graph;
}

/** Strongly connected components of more than one file, or a file importing itself (Tarjan). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

function defaultDirs(): string[] {
  const dirs = [join(ROOT, "test-support")];
  for (const pkg of readdirSync(join(ROOT, "packages")))
    for (const sub of ["src", "test", "scripts"]) dirs.push(join(ROOT, "packages", pkg, sub));
  return dirs.filter((d) => existsSync(d));
}

function main(): void {
  const dirs = process.argv.length > 2 ? process.argv.slice(2).map((d) => resolve(d)) : defaultDirs();
  const files = dirs.flatMap(filesUnder);
  const found = cycles(importGraph(files));
  if (found.length === 0) {
    console.log(`no import cycles among ${files.length} files`);
    return;
  }
  console.error(`${found.length} import cycle(s): move what both sides need into a module of its own`);
  for (const scc of found) console.error(`  ${scc.map((f) => relative(ROOT, f)).join(" <-> ")}`);
  process.exitCode = 1;
}

if (import.meta.main ?? process.argv[1] === import.meta.filename) main();
