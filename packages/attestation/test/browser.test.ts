// The verifier core in a real browser: bundle src/index.ts for the browser with esbuild (which fails on any
// Node built-in import), serve it and the real samples from 127.0.0.1, and verify in headless Chromium.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_TESTDATA, path as samplePath } from "../../../test-support/attestation-samples.js";
import {
  CHROMIUM,
  HAVE_CHROMIUM,
  type HeadlessChromium,
  launchChromium,
} from "../../../test-support/chromium.js";

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
  const m = await import("/attestation.js");
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
    const bundle = result.outputFiles[0]!.contents;
    server = createServer((req, res) => {
      const url = req.url ?? "/";
      if (url === "/") {
        res
          .writeHead(200, { "content-type": "text/html" })
          .end("<!doctype html><title>tpod attestation</title>");
      } else if (url === "/attestation.js") {
        res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
      } else if (url.startsWith("/sample/") && SAMPLES[url.slice(8)]) {
        res
          .writeHead(200, { "content-type": "application/octet-stream" })
          .end(readFileSync(samplePath(SAMPLES[url.slice(8)]!)));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
  });

  it("the bundle has no Node built-ins and verifies a real SEV-SNP report and a real TDX quote", async () => {
    const page = await browser.context.newPage();
    await page.goto(`${base}/`);
    // A string, not a function: vitest rewrites dynamic import() in test code, and this must run untouched.
    const result = (await page.evaluate(IN_BROWSER)) as InBrowserResult;
    expect(result.isBrowser).toBe(true);
    expect(result.userAgent).toMatch(/Chrome/);
    expect(result.snp).toMatchObject({ valid: true, tee: "snp", product: "Milan", tcb: { microcode: 115 } });
    expect(result.snp.reportData).toMatch(/^d447b55d197491bf/);
    expect(result.tdx).toMatchObject({ valid: true, tee: "tdx", version: 4, tcbStatus: "UpToDate" });
    expect(result.rejected).toBe("SIGNATURE_INVALID");
  });
});
