// Compiles contracts/**/*.sol offline with the pinned solc from npm (bundled soljson, no download) and writes one
// TypeScript module per contract (ABI `as const` + creation bytecode) for viem, by where its source lives:
//   contracts/*.sol         -> src/gen/          the production contracts, exported by @trustedpods/chain
//   contracts/devnet/*.sol  -> src/gen/devnet/   the dev chain's mintable token, imported by devnet.ts only
//   contracts/test/*.sol    -> test/gen/         test-only contracts (harnesses, hostile tokens), never exported
// Skips the work when the sources, compiler version and settings did not change since the last run.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc") as {
  version(): string;
  compile(
    input: string,
    callbacks: { import(path: string): { contents: string } | { error: string } },
  ): string;
};

const PINNED = "0.8.37";
const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = resolve(here, "..");
const repoRoot = resolve(pkgDir, "../..");
const contractsDir = join(repoRoot, "contracts");
const outDir = join(pkgDir, "src/gen");
const devnetOutDir = join(outDir, "devnet");
const testOutDir = join(pkgDir, "test/gen");

/** Where a contract's module goes (see the header); only the production directory gets an index. */
function outDirOf(source: string): string {
  if (source.startsWith("devnet/")) return devnetOutDir;
  if (source.startsWith("test/")) return testOutDir;
  return outDir;
}

const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function listSol(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return listSol(p);
    return e.name.endsWith(".sol") ? [p] : [];
  });
}

function findImport(path: string): { contents: string } | { error: string } {
  try {
    const file = path.startsWith("@") ? require.resolve(path) : join(contractsDir, path);
    return { contents: readFileSync(file, "utf8") };
  } catch {
    return { error: `import not found: ${path}` };
  }
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function lowerFirst(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

function main(): void {
  const version = solc.version();
  if (!version.startsWith(`${PINNED}+`)) throw new Error(`expected solc ${PINNED}, found ${version}`);
  const files = listSol(contractsDir).sort();
  const sources: Record<string, { content: string }> = {};
  for (const f of files) sources[relative(contractsDir, f)] = { content: readFileSync(f, "utf8") };

  const hash = createHash("sha256")
    .update(version)
    .update(JSON.stringify(settings))
    .update(JSON.stringify(sources))
    .update(readFileSync(here + "/compile.ts"))
    .digest("hex");
  const stamp = join(outDir, ".stamp");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === hash && existsSync(join(testOutDir, "index.ts"))) {
    process.stderr.write("contracts unchanged: skipping solc\n");
    return;
  }

  process.stderr.write(`compiling ${files.length} contracts with solc ${version}\n`);
  const output = JSON.parse(
    solc.compile(JSON.stringify({ language: "Solidity", sources, settings }), { import: findImport }),
  ) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts: Record<
      string,
      Record<
        string,
        { abi: unknown[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }
      >
    >;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  // OpenZeppelin's transient reentrancy guard triggers solc's generic EIP-1153 warning; it is the safe use.
  const shown = (output.errors ?? []).filter((e) => !e.formattedMessage.includes("EIP-1153"));
  for (const e of shown) process.stderr.write(e.formattedMessage);
  if (errors.length > 0) throw new Error(`solc failed with ${errors.length} error(s)`);

  for (const dir of [outDir, testOutDir]) rmSync(dir, { recursive: true, force: true });
  for (const dir of [outDir, devnetOutDir, testOutDir]) mkdirSync(dir, { recursive: true });
  const names = new Map<string, string[]>([
    [outDir, []],
    [testOutDir, []],
  ]);
  for (const [source, contracts] of Object.entries(output.contracts)) {
    if (source.startsWith("@")) continue; // libraries from node_modules: nothing to deploy
    for (const [name, c] of Object.entries(contracts)) {
      if (c.evm.bytecode.object.length === 0) continue; // interfaces and abstract contracts
      const dir = outDirOf(source);
      names.get(dir)?.push(name);
      const base = lowerFirst(name);
      const text =
        `// Generated by packages/chain/scripts/compile.ts from contracts/${source} (solc ${version}). Do not edit.\n` +
        `export const ${base}Abi = ${JSON.stringify(c.abi, null, 2)} as const;\n\n` +
        `export const ${base}Bytecode = "0x${c.evm.bytecode.object}" as const;\n\n` +
        `/** Runtime code size in bytes (EIP-170 limits deployable contracts to 24,576). */\n` +
        `export const ${base}CodeSize = ${c.evm.deployedBytecode.object.length / 2};\n`;
      writeAtomic(join(dir, `${name}.ts`), text);
    }
  }
  for (const [dir, list] of names) {
    list.sort();
    writeAtomic(
      join(dir, "index.ts"),
      `// Generated by packages/chain/scripts/compile.ts. Do not edit.\n` +
        list.map((n) => `export * from "./${n}.js";`).join("\n") +
        "\n",
    );
    process.stderr.write(`wrote ${list.length} contract modules to ${relative(repoRoot, dir)}\n`);
  }
  writeAtomic(stamp, hash);
}

main();
