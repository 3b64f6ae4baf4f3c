// The TDX measurement code in a real browser: the package's main entry bundled for the browser with esbuild
// (which fails on any Node built-in), the synthetic TDVF and kernel served from 127.0.0.1, MRTD and RTMRs
// computed in headless Chromium on its WebCrypto.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHROMIUM,
  HAVE_CHROMIUM,
  type HeadlessChromium,
  launchChromium,
} from "../../../test-support/chromium.js";
import { ALEPH_LAYOUT, buildPe, buildTdvf } from "../../../test-support/tdx-images.js";
import { SYNTHETIC } from "../../../test-support/tdx-measure-vectors.js";

if (!HAVE_CHROMIUM) console.warn(`SKIP: browser test needs ${CHROMIUM} (apt package chromium)`);

/** Runs in the page: a direct boot, then a refused firmware. */
const IN_BROWSER = `(async () => {
  const m = await import("/attestation.js");
  const get = async (p) => new Uint8Array(await (await fetch(p)).arrayBuffer());
  const firmware = await get("/tdvf");
  const boot = { kernel: await get("/kernel"), initrd: new TextEncoder().encode("initrd"), append: "console=ttyS0" };
  const r = await m.measureTdx({ firmware, boot });
  const refused = await m.measureTdx({ firmware: new Uint8Array(8192) }).then(() => "measured", (e) => e.code);
  const isBrowser = typeof globalThis.process === "undefined" && typeof globalThis.Buffer === "undefined";
  return { isBrowser, mrtd: m.toHex(r.mrtd), rtmr1: m.toHex(r.rtmr1.value), rtmr2: m.toHex(r.rtmr2.value), refused };
})()`;

describe.skipIf(!HAVE_CHROMIUM)("TDX measurement in headless Chromium", () => {
  let server: Server;
  let browser: HeadlessChromium;
  let base: string;

  beforeAll(async () => {
    const result = await build({
      entryPoints: [resolve(import.meta.dirname, "../src/index.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "chrome120",
      conditions: ["source"],
      write: false,
      logLevel: "silent",
    });
    const files: Record<string, [string, Uint8Array | string]> = {
      "/": ["text/html", "<!doctype html><title>m</title>"],
      "/attestation.js": ["text/javascript", result.outputFiles[0]!.contents],
      "/tdvf": ["application/octet-stream", buildTdvf(ALEPH_LAYOUT)],
      "/kernel": ["application/octet-stream", buildPe()],
    };
    server = createServer((req, res) => {
      const file = files[req.url ?? ""];
      if (file) res.writeHead(200, { "content-type": file[0] }).end(file[1]);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
  });

  it("computes the reference MRTD, RTMR1 and RTMR2 with the browser's WebCrypto", async () => {
    const page = await browser.context.newPage();
    await page.goto(`${base}/`);
    // A string, not a function: vitest rewrites dynamic import() in test code, and this must run untouched.
    const r = (await page.evaluate(IN_BROWSER)) as Record<string, unknown>;
    expect(r).toEqual({
      isBrowser: true,
      mrtd: SYNTHETIC.alephTdvfMrtd,
      rtmr1: SYNTHETIC.alephPeRtmr1,
      rtmr2: SYNTHETIC.rtmr2ConsoleInitrd,
      refused: "TDVF_NO_METADATA",
    });
  });
});
