// The evidence envelope (wire type trustedpods.v1.Evidence), the single entry point that verifies any
// envelope, and the session-level check a publisher runs on an AttestResponse.
import { create } from "@bufbuild/protobuf";
import { type AttestResponse, type Evidence, EvidenceSchema, TeeType } from "@trustedpods/protocol";
import { checkReportData, type SessionBinding } from "./binding.js";
import { toHex } from "./bytes.js";
import { fail } from "./errors.js";
import { makeInsecureDevEvidence, verifyInsecureDev } from "./insecure.js";
import { verifyIntelQuote } from "./intel/verify.js";
import { applyPolicy, type Policy } from "./policy.js";
import { verifySnp } from "./snp/verify.js";
import type { TeeKind, VerifiedEvidence, VerifyOptions } from "./types.js";

export const MAX_EVIDENCE_BYTES = 64 * 1024;
export const MAX_CERTIFICATES = 8;

export interface EvidenceEnvelope {
  tee: TeeKind;
  raw: Uint8Array;
  /** DER certificates (SEV-SNP: VCEK/VLEK first, then ASK/ASVK, ARK). */
  certificates: Uint8Array[];
  /** dcap-qvl collateral JSON for TDX/SGX. */
  collateralJson?: string;
  provider?: string;
}

const TEE_TO_PROTO: Record<TeeKind, TeeType> = {
  snp: TeeType.SEV_SNP,
  tdx: TeeType.TDX,
  sgx: TeeType.SGX,
  "insecure-dev": TeeType.INSECURE_DEV,
};

export function envelopeToProto(e: EvidenceEnvelope): Evidence {
  return create(EvidenceSchema, {
    tee: TEE_TO_PROTO[e.tee],
    raw: e.raw,
    certificates: e.certificates,
    collateralJson: e.collateralJson ?? "",
    provider: e.provider ?? "",
  });
}

/** Converts and bounds a wire Evidence message. */
export function envelopeFromProto(m: Evidence): EvidenceEnvelope {
  const tee = (Object.keys(TEE_TO_PROTO) as TeeKind[]).find((k) => TEE_TO_PROTO[k] === m.tee);
  if (!tee) fail("MALFORMED", `evidence TEE type ${m.tee} is unknown`, "evidence.tee");
  if (m.raw.length === 0 || m.raw.length > MAX_EVIDENCE_BYTES)
    fail("MALFORMED", `evidence is ${m.raw.length} bytes`, "evidence.raw");
  if (m.certificates.length > MAX_CERTIFICATES)
    fail("MALFORMED", "too many certificates", "evidence.certificates");
  return {
    tee,
    raw: m.raw,
    certificates: m.certificates,
    ...(m.collateralJson ? { collateralJson: m.collateralJson } : {}),
    ...(m.provider ? { provider: m.provider } : {}),
  };
}

/** Verifies an envelope's evidence against the pinned roots (no policy, no session binding). */
export function verifyEvidence(e: EvidenceEnvelope, opts: VerifyOptions = {}): Promise<VerifiedEvidence> {
  if (e.raw.length > MAX_EVIDENCE_BYTES)
    fail("MALFORMED", `evidence is larger than ${MAX_EVIDENCE_BYTES} bytes`, "evidence.raw");
  switch (e.tee) {
    case "snp":
      return verifySnp(e.raw, e.certificates, opts);
    case "tdx":
    case "sgx":
      return verifyIntelQuote(e.raw, e.collateralJson, { ...opts, expectTee: e.tee });
    case "insecure-dev":
      return Promise.resolve(verifyInsecureDev(e.raw));
  }
}

/**
 * What a publisher runs on an AttestResponse before sending anything secret: the evidence is genuine, its
 * report data binds this session's nonce and the provider's keys, and the policy accepts it.
 */
export async function verifyAttestation(
  e: EvidenceEnvelope,
  binding: SessionBinding,
  policy: Policy,
  opts: VerifyOptions = {},
): Promise<VerifiedEvidence> {
  const ev = await verifyEvidence(e, opts);
  // Policy first for insecure-dev, so its rejection names the real reason rather than the binding.
  if (ev.tee === "insecure-dev") applyPolicy(ev, policy);
  await checkReportData(ev.reportData, binding);
  applyPolicy(ev, policy);
  return ev;
}

/** verifyAttestation for a wire AttestResponse whose keys come from the response itself. */
export function verifyAttestResponse(
  res: AttestResponse,
  nonce: Uint8Array,
  policy: Policy,
  opts: VerifyOptions = {},
): Promise<VerifiedEvidence> {
  if (!res.evidence) fail("MALFORMED", "AttestResponse has no evidence", "evidence");
  return verifyAttestation(
    envelopeFromProto(res.evidence),
    { nonce, libp2pPublicKey: res.libp2pPublicKey, encryptionPublicKey: res.encryptionPublicKey },
    policy,
    opts,
  );
}

/** Produces evidence whose report data binds a session; implemented by the TEE-specific attesters. */
export interface Attester {
  readonly kind: string;
  attest(reportData: Uint8Array): Promise<EvidenceEnvelope>;
}

/** The attester for machines without a TEE. Its evidence is labeled insecure and refused by default. */
export function insecureDevAttester(): Attester {
  return {
    kind: "insecure-dev",
    attest: async (reportData) => ({
      tee: "insecure-dev",
      raw: makeInsecureDevEvidence(reportData),
      certificates: [],
      provider: "insecure-dev",
    }),
  };
}

/** The JSON summary the CLI prints (stable field names other tools read). */
export function summarize(ev: VerifiedEvidence): Record<string, unknown> {
  return {
    valid: true,
    tee: ev.tee,
    version: ev.version,
    measurement: toHex(ev.measurement),
    reportData: toHex(ev.reportData),
    debug: ev.debug,
    tcb: ev.tcb,
    tcbStatus: ev.tcbStatus,
    advisoryIds: ev.advisoryIds,
    ...(ev.snp
      ? {
          product: ev.snp.product,
          signer: ev.snp.signer,
          hostData: toHex(ev.snp.report.hostData),
          chipId: toHex(ev.snp.report.chipId),
        }
      : {}),
    ...(ev.quote?.td
      ? {
          mrtd: toHex(ev.quote.td.mrTd),
          rtmrs: ev.quote.td.rtmrs.map(toHex),
          mrSeam: toHex(ev.quote.td.mrSeam),
          mrConfigId: toHex(ev.quote.td.mrConfigId),
        }
      : {}),
    ...(ev.quote?.enclave
      ? { mrenclave: toHex(ev.quote.enclave.mrEnclave), mrsigner: toHex(ev.quote.enclave.mrSigner) }
      : {}),
    warnings: ev.warnings,
  };
}
