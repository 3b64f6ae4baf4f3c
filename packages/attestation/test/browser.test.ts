// The verifier core in a real browser: bundle src/index.ts for the browser with esbuild (which fails on any
// Node built-in import), serve it and the real samples from 127.0.0.1, and verify in headless Chromium.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_TESTDATA, path as samplePath } from "../../../test-support/attestation-samples.js";
import { type BundlePage, startBundlePage } from "../../../test-support/browser-bundle-page.js";
import { CHROMIUM, HAVE_CHROMIUM } from "../../../test-support/chromium.js";

if (!HAVE_CHROMIUM) console.warn(`SKIP: browser test needs ${CHROMIUM} (apt package chromium)`);

const SAMPLES: Record<string, string> = {
  "snp-report": "sev-snp/virtee/report_milan.bin",
  "snp-vcek": "sev-snp/virtee/vcek_milan.der",
  "snp-chain": "sev-snp/virtee/cert_chain_milan",
  "tdx-quote": "dcap-qvl/tdx_quote",
  "tdx-collateral": "dcap-qvl/tdx_quote_collateral.json",
};

interface InBrowserResult {
  isBrowser: boolean;
  userAgent: string;
  snp: Record<string, unknown>;
  tdx: Record<string, unknown>;
  rejected: string;
}

/** Runs in the page: loads the bundle, fetches the samples from the test server, verifies. */
const IN_BROWSER = `(async () => {
  const m = await import("/bundle.js");
  const get = async (n) => new Uint8Array(await (await fetch("/sample/" + n)).arrayBuffer());
  const isBrowser = typeof globalThis.process === "undefined" && typeof globalThis.Buffer === "undefined";
  const certs = [...m.certificatesFromBytes(await get("snp-vcek")), ...m.certificatesFromBytes(await get("snp-chain"))];
  const snp = await m.verifySnp(await get("snp-report"), certs, { now: new Date("2024-01-01") });
  const collateral = new TextDecoder().decode(await get("tdx-collateral"));
  const tdx = await m.verifyIntelQuote(await get("tdx-quote"), collateral, { now: new Date("2025-07-01") });
  const tampered = await get("snp-report");
  tampered[0x90] ^= 1;
  const rejected = await m.verifySnp(tampered, certs, { now: new Date("2024-01-01") }).then(() => "accepted", (e) => e.code);
  return { isBrowser, userAgent: navigator.userAgent, snp: m.summarize(snp), tdx: m.summarize(tdx), rejected };
})()`;

describe.skipIf(!HAVE_CHROMIUM || !HAVE_TESTDATA)("verifier core in headless Chromium", () => {
  let page: BundlePage;

  beforeAll(async () => {
    const files = Object.fromEntries(
      Object.entries(SAMPLES).map(([name, file]) => [`/sample/${name}`, readFileSync(samplePath(file))]),
    );
    page = await startBundlePage(resolve(import.meta.dirname, "../src/index.ts"), files);
  }, 120_000);

  afterAll(async () => {
    await page?.close();
  });

  it("the bundle has no Node built-ins and verifies a real SEV-SNP report and a real TDX quote", async () => {
    // A string, not a function: vitest rewrites dynamic import() in test code, and this must run untouched.
    const result = await page.evaluate<InBrowserResult>(IN_BROWSER);
    expect(result.isBrowser).toBe(true);
    expect(result.userAgent).toMatch(/Chrome/);
    expect(result.snp).toMatchObject({ valid: true, tee: "snp", product: "Milan", tcb: { microcode: 115 } });
    expect(result.snp.reportData).toMatch(/^d447b55d197491bf/);
    expect(result.tdx).toMatchObject({ valid: true, tee: "tdx", version: 4, tcbStatus: "UpToDate" });
    expect(result.rejected).toBe("SIGNATURE_INVALID");
  });
});
