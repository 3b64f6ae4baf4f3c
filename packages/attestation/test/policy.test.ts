import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  bytes,
  certs,
  describeWithSamples,
  INTEL_SAMPLES,
  SNP_SAMPLES,
  text,
} from "../../../test-support/attestation-samples.js";
import {
  AttestationError,
  applyPolicy,
  computeReportData,
  envelopeFromProto,
  envelopeToProto,
  insecureDevAttester,
  newNonce,
  type Policy,
  parsePolicy,
  parsePolicyText,
  REPORT_DATA_DOMAIN,
  toHex,
  type VerifiedEvidence,
  verifyAttestation,
  verifyAttestResponse,
  verifyEvidence,
  verifyIntelQuote,
  verifySnp,
} from "../src/index.js";
import { AttestResponseSchema, create, EvidenceSchema, type TeeType } from "./proto.js";

function policyError(f: () => void): AttestationError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(AttestationError);
    return err as AttestationError;
  }
  throw new Error("policy accepted");
}

const keys = {
  libp2pPublicKey: new Uint8Array([8, 1, 18, 32, ...new Uint8Array(32).fill(7)]),
  encryptionPublicKey: new Uint8Array(65).fill(4),
};

describe("report data binding", () => {
  it("is SHA-512 over the length-prefixed domain tag, nonce and keys", async () => {
    const nonce = new Uint8Array(32).fill(1);
    const got = await computeReportData({ nonce, ...keys });
    const lp = (b: Uint8Array) => {
      const l = new Uint8Array(4);
      new DataView(l.buffer).setUint32(0, b.length);
      return [...l, ...b];
    };
    const msg = new Uint8Array([
      ...lp(new TextEncoder().encode(REPORT_DATA_DOMAIN)),
      ...lp(nonce),
      ...lp(keys.libp2pPublicKey),
      ...lp(keys.encryptionPublicKey),
    ]);
    expect(toHex(got)).toBe(toHex(new Uint8Array(await crypto.subtle.digest("SHA-512", msg))));
    expect(got).toHaveLength(64);
  });

  it("is unambiguous: moving a byte between fields changes it", async () => {
    const nonce = new Uint8Array(32).fill(1);
    const a = await computeReportData({
      nonce,
      libp2pPublicKey: new Uint8Array([1, 2]),
      encryptionPublicKey: new Uint8Array([3]),
    });
    const b = await computeReportData({
      nonce,
      libp2pPublicKey: new Uint8Array([1]),
      encryptionPublicKey: new Uint8Array([2, 3]),
    });
    expect(toHex(a)).not.toBe(toHex(b));
  });

  it("refuses short nonces and empty keys", async () => {
    await expect(computeReportData({ nonce: new Uint8Array(8), ...keys })).rejects.toMatchObject({
      field: "nonce",
    });
    await expect(
      computeReportData({
        nonce: newNonce(),
        libp2pPublicKey: new Uint8Array(0),
        encryptionPublicKey: keys.encryptionPublicKey,
      }),
    ).rejects.toMatchObject({ field: "libp2pPublicKey" });
  });
});

describe("insecure-dev evidence", () => {
  it("round-trips through the wire envelope and is refused unless the policy allows it", async () => {
    const nonce = newNonce();
    const reportData = await computeReportData({ nonce, ...keys });
    const env = await insecureDevAttester().attest(reportData);
    expect(new TextDecoder().decode(env.raw.subarray(0, 12))).toBe("INSECURE-DEV");
    const wire = toBinary(
      AttestResponseSchema,
      create(AttestResponseSchema, { evidence: envelopeToProto(env), ...keys }),
    );
    const res = fromBinary(AttestResponseSchema, wire);
    const refused = await verifyAttestResponse(res, nonce, {}).catch((e) => e);
    expect(refused).toMatchObject({ code: "POLICY_VIOLATION", field: "policy.allowInsecureDev" });
    const strict = await verifyAttestResponse(res, nonce, { tee: ["snp"], allowDebug: true }).catch((e) => e);
    expect(strict).toMatchObject({ field: "policy.allowInsecureDev" });
    const ev = await verifyAttestResponse(res, nonce, { allowInsecureDev: true });
    expect(ev.tee).toBe("insecure-dev");
    expect(ev.warnings[0]).toMatch(/INSECURE/);
  });

  it("binds the session: another nonce or other keys are rejected", async () => {
    const nonce = newNonce();
    const env = await insecureDevAttester().attest(await computeReportData({ nonce, ...keys }));
    const policy = { allowInsecureDev: true };
    await expect(verifyAttestation(env, { nonce: newNonce(), ...keys }, policy)).rejects.toMatchObject({
      code: "REPORT_DATA_MISMATCH",
    });
    await expect(
      verifyAttestation(env, { nonce, ...keys, encryptionPublicKey: new Uint8Array(65).fill(5) }, policy),
    ).rejects.toMatchObject({ code: "REPORT_DATA_MISMATCH", field: "reportData" });
    await expect(verifyAttestation(env, { nonce, ...keys }, policy)).resolves.toMatchObject({
      tee: "insecure-dev",
    });
  });

  it("bounds the wire envelope", () => {
    expect(() => envelopeFromProto(create(EvidenceSchema, { tee: 1, raw: new Uint8Array(0) }))).toThrow(
      /0 bytes/,
    );
    expect(() =>
      envelopeFromProto(create(EvidenceSchema, { tee: 99 as TeeType, raw: new Uint8Array(1) })),
    ).toThrow(/unknown/);
  });
});

describe("policy parsing", () => {
  it("reads YAML and JSON and refuses unknown keys and bad values", () => {
    const p = parsePolicyText(
      "snp:\n  measurements: ['" +
        "ab".repeat(48) +
        "']\n  minTcb: { snp: 8, microcode: 115 }\ntdx:\n  acceptedTcbStatus: [UpToDate]\n",
    );
    expect(p.snp?.minTcb).toEqual({ snp: 8, microcode: 115 });
    expect(parsePolicyText('{"allowDebug": true}')).toEqual({ allowDebug: true });
    expect(() => parsePolicyText("allowDebugg: true")).toThrow(/unknown key/);
    expect(() => parsePolicy({ snp: { measurements: ["abcd"] } })).toThrow(/48 bytes/);
    expect(() => parsePolicy({ tdx: { acceptedTcbStatus: ["Fine"] } })).toThrow(/TCB statuses/);
    expect(() => parsePolicy({ tee: ["tpm"] })).toThrow(/tee/);
    expect(() => parsePolicyText(": : :")).toThrow(AttestationError);
  });
});

describeWithSamples("policy on real evidence", () => {
  let snp: VerifiedEvidence;
  let snpDebug: VerifiedEvidence;
  let tdx: VerifiedEvidence;
  let tdxNoCollateral: VerifiedEvidence;
  let sgx: VerifiedEvidence;
  const loaded = (async () => {
    const [dbg, prod] = SNP_SAMPLES;
    snpDebug = await verifySnp(bytes(dbg!.report), certs(...dbg!.certs), { now: new Date(dbg!.now) });
    snp = await verifySnp(bytes(prod!.report), certs(...prod!.certs), { now: new Date(prod!.now) });
    const [s, t] = INTEL_SAMPLES;
    sgx = await verifyIntelQuote(bytes(s!.quote), text(s!.collateral!), { now: new Date(s!.now) });
    tdx = await verifyIntelQuote(bytes(t!.quote), text(t!.collateral!), { now: new Date(t!.now) });
    tdxNoCollateral = await verifyIntelQuote(bytes(t!.quote), undefined, { now: new Date(t!.now) });
  })();

  it("accepts matching measurements and names the failing rule otherwise", async () => {
    await loaded;
    const m = toHex(snp.measurement);
    applyPolicy(snp, { snp: { measurements: [m], minTcb: { bootloader: 3, snp: 8, microcode: 115 } } });
    expect(policyError(() => applyPolicy(snp, { snp: { measurements: ["00".repeat(48)] } })).field).toBe(
      "policy.snp.measurements",
    );
    const tcb = policyError(() => applyPolicy(snp, { snp: { minTcb: { microcode: 116 } } }));
    expect(tcb).toMatchObject({ code: "POLICY_VIOLATION", field: "policy.snp.minTcb.microcode" });
    expect(tcb.message).toMatch(/115 is below the minimum 116/);
    expect(policyError(() => applyPolicy(snp, { snp: { minTcb: { fmc: 1 } } })).field).toBe(
      "policy.snp.minTcb.fmc",
    );
    expect(policyError(() => applyPolicy(snp, { snp: { signers: ["vlek"] } })).field).toBe(
      "policy.snp.signers",
    );
    expect(policyError(() => applyPolicy(snp, { tee: ["tdx"] })).field).toBe("policy.tee");
  });

  it("forbids debug guests unless allowed", async () => {
    await loaded;
    expect(snpDebug.debug).toBe(true);
    expect(policyError(() => applyPolicy(snpDebug, {})).field).toBe("policy.allowDebug");
    applyPolicy(snpDebug, { allowDebug: true });
  });

  it("checks expected report data", async () => {
    await loaded;
    applyPolicy(snpDebug, { allowDebug: true, reportData: `0102030405${"00".repeat(59)}` });
    expect(
      policyError(() => applyPolicy(snpDebug, { allowDebug: true, reportData: "00".repeat(64) })).field,
    ).toBe("policy.reportData");
  });

  it("judges TDX MRTD, RTMRs and TCB status", async () => {
    await loaded;
    const td = tdx.quote!.td!;
    const p: Policy = {
      tdx: {
        mrtd: [toHex(td.mrTd)],
        rtmr0: [toHex(td.rtmrs[0])],
        rtmr3: [toHex(td.rtmrs[3])],
        acceptedTcbStatus: ["UpToDate"],
      },
    };
    applyPolicy(tdx, p);
    expect(policyError(() => applyPolicy(tdx, { tdx: { rtmr2: ["11".repeat(48)] } })).field).toBe(
      "policy.tdx.rtmr2",
    );
    expect(policyError(() => applyPolicy(tdx, { tdx: { mrtd: ["11".repeat(48)] } })).field).toBe(
      "policy.tdx.mrtd",
    );
    const unknown = policyError(() => applyPolicy(tdxNoCollateral, p));
    expect(unknown.field).toBe("policy.tdx.acceptedTcbStatus");
    expect(unknown.message).toMatch(/no collateral/);
    applyPolicy(tdxNoCollateral, { tdx: { acceptedTcbStatus: ["Unknown"] } });
  });

  it("judges SGX MRENCLAVE, MRSIGNER and TCB status", async () => {
    await loaded;
    const e = sgx.quote!.enclave!;
    applyPolicy(sgx, { sgx: { mrenclave: [toHex(e.mrEnclave)], mrsigner: [toHex(e.mrSigner)] } });
    expect(policyError(() => applyPolicy(sgx, { sgx: { mrenclave: ["00".repeat(32)] } })).field).toBe(
      "policy.sgx.mrenclave",
    );
    expect(policyError(() => applyPolicy(sgx, { sgx: { acceptedTcbStatus: ["UpToDate"] } })).message).toMatch(
      /ConfigurationAndSWHardeningNeeded/,
    );
  });

  it("verifyEvidence dispatches envelopes and refuses a type mismatch", async () => {
    const s = SNP_SAMPLES[1]!;
    const ev = await verifyEvidence(
      { tee: "snp", raw: bytes(s.report), certificates: certs(...s.certs) },
      { now: new Date(s.now) },
    );
    expect(ev.tee).toBe("snp");
    await expect(
      verifyEvidence({ tee: "tdx", raw: bytes(s.report), certificates: [] }),
    ).rejects.toBeInstanceOf(AttestationError);
    await expect(
      verifyEvidence({ tee: "snp", raw: bytes("dcap-qvl/tdx_quote"), certificates: [] }),
    ).rejects.toMatchObject({ code: "MALFORMED" });
  });
});
