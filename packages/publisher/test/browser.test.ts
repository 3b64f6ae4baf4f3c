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
    if (specifier.startsWith(".")) {
      const next = join(dirname(file), specifier).replace(/\.js$/, ".ts");
      for (const inner of await importsOf(next, seen)) found.add(inner);
    } else {
      found.add(specifier);
    }
  }
  return found;
}

describe("the main entry is for browsers too", () => {
  it("imports no Node built-ins and only the browser entries of workspace packages", async () => {
    const imports = [...(await importsOf("index.ts"))];
    expect(imports.filter((s) => s.startsWith("node:"))).toEqual([]);
    expect(imports.filter((s) => /^@trustedpods\/[a-z]+\/node$/.test(s))).toEqual([]);
    // p2p's main entry holds the peer key files (node:fs); its browser entry does not.
    expect(imports).not.toContain("@trustedpods/p2p");
    expect(imports).toContain("@trustedpods/p2p/browser");
    expect(imports).toContain("@noble/hashes/scrypt");
  });

  it("while the node entry does use the file system", async () => {
    expect([...(await importsOf("node/index.ts"))]).toContain("node:fs/promises");
  });
});
