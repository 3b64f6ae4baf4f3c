// Builds the static app with Vite. Vite is a development dependency: it is imported only when a build is asked
// for, so serving an already-built app needs nothing but Node.
import { fileURLToPath } from "node:url";

export const PACKAGE_DIR = fileURLToPath(new URL("../..", import.meta.url));

/** Builds the app into `outDir` (default: the package's dist/www) and returns that directory. */
export async function buildWebApp(options: { outDir?: string } = {}): Promise<string> {
  const { build } = await import("vite");
  const configFile = fileURLToPath(new URL("../../vite.config.ts", import.meta.url));
  const outDir = options.outDir ?? fileURLToPath(new URL("../../dist/www", import.meta.url));
  await build({ configFile, build: { outDir, emptyOutDir: true }, logLevel: "warn" });
  return outDir;
}
