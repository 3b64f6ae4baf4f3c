// `npm run build -w @trustedpods/web`: the static app into dist/www (serveWebApp serves it from there).
import { buildWebApp } from "../src/node/build.ts";

const out = await buildWebApp();
console.log(`web app built into ${out}`);
