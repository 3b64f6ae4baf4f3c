// The import-cycle check on files written for the test: a circle through a type-only import is found, a chain
// is not.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cycles, importGraph } from "./check-cycles.js";

let dir: string;
const file = (name: string) => join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tpod-cycles-"));
  await writeFile(
    file("app.tsx"),
    'import { Page } from "./page.js";\nexport interface Props { a: number }\n',
  );
  await writeFile(
    file("page.tsx"),
    'import type { Props } from "./app.js";\nexport const Page = (p: Props) => p;\n',
  );
  await writeFile(file("a.ts"), 'export * from "./b.js";\n');
  await writeFile(file("b.ts"), 'const c = () => import("./c.js");\nexport { c };\n');
  await writeFile(file("c.ts"), 'import "node:fs";\nexport const x = 1;\n');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("check-cycles", () => {
  it("finds a circle made by a type-only import, and nothing in a chain of re-exports and dynamic imports", () => {
    const graph = importGraph(["app.tsx", "page.tsx", "a.ts", "b.ts", "c.ts"].map(file));
    expect(graph.get(file("b.ts"))).toEqual([file("c.ts")]);
    expect(cycles(graph)).toEqual([[file("app.tsx"), file("page.tsx")]]);
  });
});
