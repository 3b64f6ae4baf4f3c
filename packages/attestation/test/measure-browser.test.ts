// The launch-measurement code in a real browser: the package's main entry bundled for the browser with esbuild
// (which fails on any Node built-in), the shared OVMF fixture served from 127.0.0.1, the digest computed in
// headless Chromium on its WebCrypto.
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BundlePage, startBundlePage } from "../../../test-support/browser-bundle-page.js";
import { CHROMIUM, HAVE_CHROMIUM } from "../../../test-support/chromium.js";
import { fixture, HAVE_SNP_TESTDATA } from "./measure-fixtures.js";

if (!HAVE_CHROMIUM) console.warn(`SKIP: browser test needs ${CHROMIUM} (apt package chromium)`);

/** Runs in the page: SNP with a direct boot, then SEV-ES, then a refused kernel on a synthetic image. */
const IN_BROWSER = `(async () => {
  const m = await import("/bundle.js");
  const ovmf = new Uint8Array(await (await fetch("/ovmf")).arrayBuffer());
  const boot = { kernel: new Uint8Array(), initrd: new Uint8Array(), append: "console=ttyS0 loglevel=7" };
  const snp = await m.measureSev({ ovmf, vcpus: 1, vcpuType: "EPYC-v4", boot });
  const seves = await m.measureSev({ mode: "seves", ovmf, vcpus: 4, vcpuType: "EPYC-v4", boot: { ...boot, append: "" } });
  const refused = await m.measureSev({ ovmf: new Uint8Array(4096), vcpus: 1, vcpuType: "EPYC-v4" }).then(() => "measured", (e) => e.code);
  const isBrowser = typeof globalThis.process === "undefined" && typeof globalThis.Buffer === "undefined";
  return { isBrowser, snp: m.toHex(snp.digest), seves: m.toHex(seves.digest), refused };
})()`;

describe.skipIf(!HAVE_CHROMIUM || !HAVE_SNP_TESTDATA)("SEV launch digest in headless Chromium", () => {
  let page: BundlePage;

  beforeAll(async () => {
    page = await startBundlePage(resolve(import.meta.dirname, "../src/index.ts"), {
      "/ovmf": fixture("ovmf_AmdSev_suffix.bin"),
    });
  }, 120_000);

  afterAll(async () => {
    await page?.close();
  });

  it("computes the reference digests with the browser's WebCrypto", async () => {
    // A string, not a function: vitest rewrites dynamic import() in test code, and this must run untouched.
    const r = await page.evaluate<Record<string, unknown>>(IN_BROWSER);
    expect(r.isBrowser).toBe(true);
    expect(r.snp).toBe(
      "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa",
    );
    expect(r.seves).toBe("0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91");
    expect(r.refused).toBe("OVMF_NOT_SEV");
  });
});
