import { defineConfig } from "vitest/config";

// Tests import workspace packages from their TypeScript sources (the "source" export condition),
// so `vitest run` needs no prior build of the package under test.
export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"], externalConditions: ["source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "scripts/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default"],
  },
});
