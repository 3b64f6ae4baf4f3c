// Preloaded with `node --import` by startup.test.ts: records the URL of every module the process resolves
// (static and dynamic ESM imports and require) and writes them, one per line, to $TPOD_RECORD_MODULES at exit.
import { writeFileSync } from "node:fs";
import { registerHooks } from "node:module";

const out = process.env.TPOD_RECORD_MODULES;
if (!out) throw new Error("record-modules.mjs needs TPOD_RECORD_MODULES");
const urls = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context);
    urls.add(result.url);
    return result;
  },
});
process.on("exit", () => writeFileSync(out, [...urls].join("\n")));
