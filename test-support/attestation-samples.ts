// Test-only, shared by the attestation, publisher and cli tests. Locates the shared real-hardware samples (../shared/testdata/attestation relative to the repository root).
// Tests skip with a visible message where the directory is absent; the data is never copied into the repo.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { certificatesFromBytes, collateralFromPcs } from "@trustedpods/attestation";
import { describe, it } from "vitest";

/**
 * `../shared/testdata/attestation` next to the repository; from a git worktree nested one level deeper (e.g.
 * /work/wt/NAME) the same directory is found one level further up. TPOD_ATTESTATION_SAMPLES overrides both.
 */
function findTestdata(): string {
  if (process.env.TPOD_ATTESTATION_SAMPLES) return resolve(process.env.TPOD_ATTESTATION_SAMPLES);
  const repo = resolve(import.meta.dirname, "..");
  for (const up of ["..", "../.."]) {
    const candidate = resolve(repo, up, "shared/testdata/attestation");
    if (existsSync(resolve(candidate, "README.md"))) return candidate;
  }
  return resolve(repo, "../shared/testdata/attestation");
}

export const TESTDATA = findTestdata();
export const HAVE_TESTDATA = existsSync(resolve(TESTDATA, "README.md"));
if (!HAVE_TESTDATA) console.warn(`SKIP: attestation samples not found at ${TESTDATA}`);

/**
 * A describe block over the real samples. Without them it is reported as one skipped test and its body never
 * runs (describe.skipIf would still run the body to collect tests, and the body reads the samples).
 */
export function describeWithSamples(name: string, body: () => void): void {
  if (HAVE_TESTDATA) describe(name, body);
  else describe(name, () => it.skip(`needs ${TESTDATA}`, () => {}));
}

export const path = (p: string) => resolve(TESTDATA, p);
// describe.skipIf still runs the describe body to collect tests, so without the samples these return empty
// values instead of throwing; every suite that uses them is skipped.
export const bytes = (p: string) =>
  HAVE_TESTDATA ? new Uint8Array(readFileSync(path(p))) : new Uint8Array();
export const text = (p: string) => (HAVE_TESTDATA ? readFileSync(path(p), "utf8") : "");
export const certs = (...files: string[]) =>
  HAVE_TESTDATA ? files.flatMap((f) => certificatesFromBytes(bytes(f))) : [];

export interface SnpSample {
  name: string;
  report: string;
  certs: string[];
  now: string;
  reportDataPrefix: string;
  debug: boolean;
}

export const SNP_SAMPLES: SnpSample[] = [
  {
    name: "go-sev-guest attestation.bin",
    report: "sev-snp/go-sev-guest/attestation.bin",
    certs: ["sev-snp/go-sev-guest/vcek.testcer", "sev-snp/go-sev-guest/ask_ark_milan.pem"],
    now: "2024-01-01T00:00:00Z",
    reportDataPrefix: "0102030405000000",
    debug: true,
  },
  {
    name: "virtee report_milan.bin",
    report: "sev-snp/virtee/report_milan.bin",
    certs: ["sev-snp/virtee/vcek_milan.der", "sev-snp/virtee/cert_chain_milan"],
    now: "2024-01-01T00:00:00Z",
    reportDataPrefix: "d447b55d197491bf",
    debug: false,
  },
];

export interface IntelSample {
  name: string;
  quote: string;
  tee: "tdx" | "sgx";
  version: number;
  collateral?: string;
  now: string;
  tcbStatus: string;
  advisoryIds: string[];
}

export const INTEL_SAMPLES: IntelSample[] = [
  {
    name: "dcap-qvl sgx_quote",
    quote: "dcap-qvl/sgx_quote",
    tee: "sgx",
    version: 3,
    collateral: "dcap-qvl/sgx_quote_collateral.json",
    now: "2025-07-01T00:00:00Z",
    tcbStatus: "ConfigurationAndSWHardeningNeeded",
    advisoryIds: ["INTEL-SA-00289", "INTEL-SA-00615"],
  },
  {
    name: "dcap-qvl tdx_quote",
    quote: "dcap-qvl/tdx_quote",
    tee: "tdx",
    version: 4,
    collateral: "dcap-qvl/tdx_quote_collateral.json",
    now: "2025-07-01T00:00:00Z",
    tcbStatus: "UpToDate",
    advisoryIds: [],
  },
  {
    name: "go-tdx-guest tdx_prod_quote_SPR_E4",
    quote: "tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat",
    tee: "tdx",
    version: 4,
    now: "2023-07-01T00:00:00Z",
    tcbStatus: "Unknown",
    advisoryIds: [],
  },
  {
    name: "go-tdx-guest quote_v5_sample",
    quote: "tdx/go-tdx-guest/quote_v5_sample.dat",
    tee: "tdx",
    version: 5,
    now: "2026-06-01T00:00:00Z",
    tcbStatus: "Unknown",
    advisoryIds: [],
  },
  {
    name: "go-tdx-guest ccel_cos-113 (zero-padded)",
    quote: "tdx/go-tdx-guest/ccel_cos-113-tdx-quote.dat",
    tee: "tdx",
    version: 4,
    now: "2025-01-01T00:00:00Z",
    tcbStatus: "Unknown",
    advisoryIds: [],
  },
];

/** go-tdx-guest's Intel PCS responses, converted to the dcap-qvl form. */
export function goTdxGuestCollateral() {
  const g = "tdx/go-tdx-guest";
  return collateralFromPcs({
    tcbInfoResponse: text(`${g}/sample_tcbInfo_response`),
    tcbInfoIssuerChain: text(`${g}/header_tcbInfoIssuerChain.pem`),
    qeIdentityResponse: text(`${g}/sample_qeIdentity_response`),
    qeIdentityIssuerChain: text(`${g}/header_qeIdentityIssuerChain.pem`),
    pckCrl: bytes(`${g}/pckcrl`),
    pckCrlIssuerChain: text(`${g}/header_pckCrlIssuerChain.pem`),
    rootCaCrl: bytes(`${g}/rootcrl.der`),
  });
}

export function flip(data: Uint8Array, offset: number, mask = 0x01): Uint8Array {
  const copy = Uint8Array.from(data);
  copy[offset] = copy[offset]! ^ mask;
  return copy;
}
