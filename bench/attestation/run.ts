// Verifications per second of real SEV-SNP and TDX evidence, with the certificate chain cached (signatures of
// an already verified chain skipped; validity still checked) and uncached (the whole chain every time).
// Baseline, measured in the same run: one bare WebCrypto ECDSA verification of the same SNP report signature,
// the least work any verifier must do. Run after setup: `node bench/attestation/run.ts [seconds-per-case]`.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  ChainCache,
  certificatesFromBytes,
  parseSnpReport,
  verifyIntelQuote,
  verifySnp,
  X509,
} from "@trustedpods/attestation";

const root = resolve(import.meta.dirname, "../..");
const T = resolve(root, "../shared/testdata/attestation");
if (!existsSync(resolve(T, "README.md"))) {
  console.error(`SKIP: samples not found at ${T}`);
  process.exit(0);
}
const seconds = Number(process.argv[2] ?? 2);
const read = (p: string) => new Uint8Array(readFileSync(resolve(T, p)));

const snpReport = read("sev-snp/virtee/report_milan.bin");
const snpCerts = [
  ...certificatesFromBytes(read("sev-snp/virtee/vcek_milan.der")),
  ...certificatesFromBytes(read("sev-snp/virtee/cert_chain_milan")),
];
const snpNow = new Date("2024-01-01");
const tdxQuote = read("dcap-qvl/tdx_quote");
const tdxCollateral = readFileSync(resolve(T, "dcap-qvl/tdx_quote_collateral.json"), "utf8");
const tdxNow = new Date("2025-07-01");

async function measure(
  name: string,
  f: () => Promise<unknown>,
): Promise<{ name: string; perSecond: number }> {
  for (let i = 0; i < 20; i++) await f(); // warm up JIT and key import paths
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    await f();
    n++;
  }
  return { name, perSecond: n / ((performance.now() - start) / 1000) };
}

const parsed = parseSnpReport(snpReport);
const vcekKey = await new X509(snpCerts[0]!).ecKey();
const baseline = await measure("baseline: bare ECDSA P-384 verify of the SNP report", () =>
  crypto.subtle.verify({ name: "ECDSA", hash: "SHA-384" }, vcekKey, parsed.signatureRs, parsed.signedBytes),
);

const snpCache = new ChainCache();
const tdxCache = new ChainCache();
const tdxColCache = new ChainCache();
const results = [
  baseline,
  await measure("SNP report, chain uncached (VCEK→ASK→ARK RSA-PSS each time)", () =>
    verifySnp(snpReport, snpCerts, { now: snpNow }),
  ),
  await measure("SNP report, chain cached", () =>
    verifySnp(snpReport, snpCerts, { now: snpNow, cache: snpCache }),
  ),
  await measure("TDX quote v4, no collateral, chain uncached", () =>
    verifyIntelQuote(tdxQuote, undefined, { now: tdxNow }),
  ),
  await measure("TDX quote v4, no collateral, chain cached", () =>
    verifyIntelQuote(tdxQuote, undefined, { now: tdxNow, cache: tdxCache }),
  ),
  await measure("TDX quote v4 + collateral (TCB status), PCK chain uncached", () =>
    verifyIntelQuote(tdxQuote, tdxCollateral, { now: tdxNow }),
  ),
  await measure("TDX quote v4 + collateral (TCB status), PCK chain cached", () =>
    verifyIntelQuote(tdxQuote, tdxCollateral, { now: tdxNow, cache: tdxColCache }),
  ),
];

console.log(`node ${process.versions.node}, ${seconds} s per case`);
for (const r of results) {
  console.log(
    `${r.perSecond.toFixed(0).padStart(8)} /s  ${(baseline.perSecond / r.perSecond).toFixed(1).padStart(6)}x baseline cost  ${r.name}`,
  );
}
