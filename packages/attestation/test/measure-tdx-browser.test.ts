// The TDX measurement code in a real browser: the package's main entry bundled for the browser with esbuild
// (which fails on any Node built-in), the synthetic TDVF and kernel served from 127.0.0.1, MRTD and RTMRs
// computed in headless Chromium on its WebCrypto.
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BundlePage, startBundlePage } from "../../../test-support/browser-bundle-page.js";
import { CHROMIUM, HAVE_CHROMIUM } from "../../../test-support/chromium.js";
import { ALEPH_LAYOUT, buildPe, buildTdvf } from "../../../test-support/tdx-images.js";
import { SYNTHETIC } from "../../../test-support/tdx-measure-vectors.js";

if (!HAVE_CHROMIUM) console.warn(`SKIP: browser test needs ${CHROMIUM} (apt package chromium)`);

/** Runs in the page: a direct boot, then a refused firmware. */
const IN_BROWSER = `(async () => {
  const m = await import("/bundle.js");
  const get = async (p) => new Uint8Array(await (await fetch(p)).arrayBuffer());
  const firmware = await get("/tdvf");
  const boot = { kernel: await get("/kernel"), initrd: new TextEncoder().encode("initrd"), append: "console=ttyS0" };
  const r = await m.measureTdx({ firmware, boot });
  const refused = await m.measureTdx({ firmware: new Uint8Array(8192) }).then(() => "measured", (e) => e.code);
  const isBrowser = typeof globalThis.process === "undefined" && typeof globalThis.Buffer === "undefined";
  return { isBrowser, mrtd: m.toHex(r.mrtd), rtmr1: m.toHex(r.rtmr1.value), rtmr2: m.toHex(r.rtmr2.value), refused };
})()`;

describe.skipIf(!HAVE_CHROMIUM)("TDX measurement in headless Chromium", () => {
  let page: BundlePage;

  beforeAll(async () => {
    page = await startBundlePage(resolve(import.meta.dirname, "../src/index.ts"), {
      "/tdvf": buildTdvf(ALEPH_LAYOUT),
      "/kernel": buildPe(),
    });
  }, 120_000);

  afterAll(async () => {
    await page?.close();
  });

  it("computes the reference MRTD, RTMR1 and RTMR2 with the browser's WebCrypto", async () => {
    // A string, not a function: vitest rewrites dynamic import() in test code, and this must run untouched.
    const r = await page.evaluate<Record<string, unknown>>(IN_BROWSER);
    expect(r).toEqual({
      isBrowser: true,
      mrtd: SYNTHETIC.alephTdvfMrtd,
      rtmr1: SYNTHETIC.alephPeRtmr1,
      rtmr2: SYNTHETIC.rtmr2ConsoleInitrd,
      refused: "TDVF_NO_METADATA",
    });
  });
});
