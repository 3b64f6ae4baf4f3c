import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const src = join(dirname(fileURLToPath(import.meta.url)), "..", "src");

/** Every module specifier imported by `file` and, recursively, by the package's own modules it imports. */
async function importsOf(file: string, seen = new Set<string>()): Promise<Set<string>> {
  if (seen.has(file)) return new Set();
  seen.add(file);
  const text = await readFile(join(src, file), "utf8");
  const found = new Set<string>();
  for (const match of text.matchAll(/(?:import|export)[^"']*?from\s+["']([^"']+)["']/g)) {
    const specifier = match[1] as string;
    if (specifier.startsWith("./")) {
      for (const inner of await importsOf(specifier.slice(2).replace(/\.js$/, ".ts"), seen)) found.add(inner);
    } else {
      found.add(specifier);
    }
  }
  return found;
}

describe("browser entry", () => {
  it("pulls in no Node built-ins, so the web app can bundle it", async () => {
    const imports = [...(await importsOf("browser.ts"))];
    expect(imports.filter((s) => s.startsWith("node:"))).toEqual([]);
    expect(imports).toContain("viem");
  });

  it("while the main entry does (peer key files)", async () => {
    expect([...(await importsOf("index.ts"))]).toContain("node:fs/promises");
  });
});
