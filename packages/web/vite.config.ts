// Builds the web app into dist/www. Workspace packages are bundled from their TypeScript sources (the "source"
// export condition), so the app builds without a prior `tsc -b`. JSX is Preact's automatic runtime (Vite's
// built-in transform: no plugin, no Babel).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root,
  base: "./",
  logLevel: "warn",
  resolve: { conditions: ["source", "module", "browser", "development|production"] },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist/www",
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 4096,
    reportCompressedSize: false,
  },
});
