// node:sqlite's ExperimentalWarning must not reach users' stderr, and no other warning may be lost with it. Runs
// the built CLI in fresh Node processes (the warning is printed once per process, at the module's first load).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const dist = resolve(import.meta.dirname, "../dist");
const built = existsSync(resolve(dist, "main.js"));
if (!built) console.warn("SKIP: the warnings test runs the built CLI (npm run build)");

function node(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    execFile(process.execPath, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return fail(err);
      done({ code: typeof err?.code === "number" ? err.code : 0, stdout, stderr });
    });
  });
}

describe.skipIf(!built)("warnings", () => {
  it("a command that loads the provider's SQLite store prints no ExperimentalWarning", async () => {
    // `provider pods` loads the provider module (node:sqlite) before it reads the config, which is missing.
    const r = await node([
      resolve(dist, "main.js"),
      "provider",
      "pods",
      "--config",
      "/nonexistent/provider.yaml",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: /m);
    expect(r.stderr).not.toContain("ExperimentalWarning");
    expect(r.stderr).not.toContain("SQLite");
  });

  it("silences exactly that warning: every other one, experimental or not, is still printed", async () => {
    const quiet = pathToFileURL(resolve(dist, "quiet-warnings.js")).href;
    const r = await node([
      "--input-type=module",
      "-e",
      `await import(${JSON.stringify(quiet)});
       process.emitWarning("keep this one");
       process.emitWarning("another feature is experimental", "ExperimentalWarning");
       process.emitWarning("old api", { type: "DeprecationWarning", code: "DEP_TEST" });
       await import("node:sqlite");`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("Warning: keep this one");
    expect(r.stderr).toContain("ExperimentalWarning: another feature is experimental");
    expect(r.stderr).toContain("DeprecationWarning: old api");
    expect(r.stderr).not.toContain("SQLite");
  });
});
