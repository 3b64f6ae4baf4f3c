// "insecure-dev" evidence: what a provider without a TEE sends on a development machine. It proves nothing;
// it only carries the report data so the rest of the protocol can run. Every policy rejects it unless the
// policy says allowInsecureDev: true (the local devnet's does).
import { concat, equalBytes } from "./bytes.js";
import { fail } from "./errors.js";
import type { VerifiedEvidence } from "./types.js";

/** 32-byte header: the label is in the bytes so nobody mistakes a dump of it for a TEE report. */
export const INSECURE_DEV_MAGIC = new TextEncoder().encode("INSECURE-DEV-NO-TEE-tpod-v1\0\0\0\0\0");
export const INSECURE_DEV_SIZE = INSECURE_DEV_MAGIC.length + 64;

export function makeInsecureDevEvidence(reportData: Uint8Array): Uint8Array {
  if (reportData.length !== 64) fail("MALFORMED", "report data must be 64 bytes", "reportData");
  return concat(INSECURE_DEV_MAGIC, reportData);
}

export function verifyInsecureDev(raw: Uint8Array): VerifiedEvidence {
  if (
    raw.length !== INSECURE_DEV_SIZE ||
    !equalBytes(raw.subarray(0, INSECURE_DEV_MAGIC.length), INSECURE_DEV_MAGIC)
  ) {
    fail("MALFORMED", "not insecure-dev evidence", "evidence");
  }
  return {
    tee: "insecure-dev",
    version: 1,
    measurement: new Uint8Array(0),
    reportData: raw.slice(INSECURE_DEV_MAGIC.length),
    debug: true,
    tcb: {},
    tcbStatus: "Unknown",
    advisoryIds: [],
    warnings: ["INSECURE: insecure-dev evidence comes from no TEE and proves nothing about the provider"],
  };
}
