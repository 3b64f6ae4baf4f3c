// Intel DCAP ECDSA quotes: SGX quote v3, TDX quote v4 and v5 (Intel "TDX DCAP Quoting Library API" and
// "SGX ECDSA QuoteLibReference" layouts). All integers little-endian.

import { Reader } from "../bytes.js";
import { fail } from "../errors.js";

export const HEADER_SIZE = 48;
export const ENCLAVE_REPORT_SIZE = 384;
export const TD_REPORT10_SIZE = 584;
export const TD_REPORT15_SIZE = 648;
/** Upper bound on a quote: a few KiB in practice; anything far larger is not a quote. */
export const MAX_QUOTE_SIZE = 64 * 1024;

export interface EnclaveReport {
  cpuSvn: Uint8Array;
  miscSelect: number;
  attributes: Uint8Array;
  mrEnclave: Uint8Array;
  mrSigner: Uint8Array;
  isvProdId: number;
  isvSvn: number;
  reportData: Uint8Array;
  raw: Uint8Array;
}

export interface TdReport {
  teeTcbSvn: Uint8Array;
  mrSeam: Uint8Array;
  mrSignerSeam: Uint8Array;
  seamAttributes: Uint8Array;
  tdAttributes: Uint8Array;
  xfam: Uint8Array;
  mrTd: Uint8Array;
  mrConfigId: Uint8Array;
  mrOwner: Uint8Array;
  mrOwnerConfig: Uint8Array;
  rtmrs: [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  reportData: Uint8Array;
  /** TDX 1.5 body (quote v5, body type 3) only. */
  teeTcbSvn2?: Uint8Array;
  mrServiceTd?: Uint8Array;
}

export interface IntelQuote {
  version: number;
  attestationKeyType: number;
  tee: "sgx" | "tdx";
  qeSvn: number;
  pceSvn: number;
  qeVendorId: Uint8Array;
  userData: Uint8Array;
  /** v5 body descriptor type: 1 SGX, 2 TDX 1.0, 3 TDX 1.5. */
  bodyType: number | undefined;
  enclave?: EnclaveReport;
  td?: TdReport;
  /** Header and body: what the attestation key signed. */
  signedBytes: Uint8Array;
  signature: Uint8Array;
  attestationKey: Uint8Array;
  qeReport: EnclaveReport;
  qeReportSignature: Uint8Array;
  qeAuthData: Uint8Array;
  certDataType: number;
  certData: Uint8Array;
  /** Bytes after the quote's signature data: unsigned, ignored (tools hand out fixed-size buffers). */
  paddingBytes: number;
}

export function parseEnclaveReport(raw: Uint8Array, what: string): EnclaveReport {
  const r = new Reader(raw, what);
  const cpuSvn = r.take(16, `${what}.cpuSvn`);
  const miscSelect = r.u32(`${what}.miscSelect`);
  r.take(28, "reserved");
  const attributes = r.take(16, `${what}.attributes`);
  const mrEnclave = r.take(32, `${what}.mrEnclave`);
  r.take(32, "reserved");
  const mrSigner = r.take(32, `${what}.mrSigner`);
  r.take(96, "reserved");
  const isvProdId = r.u16(`${what}.isvProdId`);
  const isvSvn = r.u16(`${what}.isvSvn`);
  r.take(60, "reserved");
  const reportData = r.take(64, `${what}.reportData`);
  return { cpuSvn, miscSelect, attributes, mrEnclave, mrSigner, isvProdId, isvSvn, reportData, raw };
}

function parseTdReport(r: Reader, v15: boolean): TdReport {
  const take48 = (f: string) => r.take(48, f);
  const td: TdReport = {
    teeTcbSvn: r.take(16, "teeTcbSvn"),
    mrSeam: take48("mrSeam"),
    mrSignerSeam: take48("mrSignerSeam"),
    seamAttributes: r.take(8, "seamAttributes"),
    tdAttributes: r.take(8, "tdAttributes"),
    xfam: r.take(8, "xfam"),
    mrTd: take48("mrTd"),
    mrConfigId: take48("mrConfigId"),
    mrOwner: take48("mrOwner"),
    mrOwnerConfig: take48("mrOwnerConfig"),
    rtmrs: [take48("rtmr0"), take48("rtmr1"), take48("rtmr2"), take48("rtmr3")],
    reportData: r.take(64, "reportData"),
  };
  if (v15) {
    td.teeTcbSvn2 = r.take(16, "teeTcbSvn2");
    td.mrServiceTd = take48("mrServiceTd");
  }
  return td;
}

/** A TDREPORT (TDG.MR.REPORT output, what /dev/tdx_guest returns before quoting) is exactly 1024 bytes. */
const TDREPORT_SIZE = 1024;

export function parseIntelQuote(raw: Uint8Array): IntelQuote {
  if (raw.length > MAX_QUOTE_SIZE)
    fail("MALFORMED", `quote is ${raw.length} bytes, more than ${MAX_QUOTE_SIZE}`, "quote");
  const r = new Reader(raw, "quote");
  const version = r.u16("header.version");
  const attestationKeyType = r.u16("header.attestationKeyType");
  const teeType = r.u32("header.teeType");
  const qeSvn = r.u16("header.qeSvn");
  const pceSvn = r.u16("header.pceSvn");
  const qeVendorId = r.take(16, "header.qeVendorId");
  const userData = r.take(20, "header.userData");
  if (version !== 3 && version !== 4 && version !== 5 && raw.length === TDREPORT_SIZE) {
    fail(
      "MALFORMED",
      "not a quote: 1024 bytes without a quote header is a TDREPORT, which only the local CPU can check; have the quoting enclave turn it into a quote",
      "quote",
    );
  }
  if (version !== 3 && version !== 4 && version !== 5)
    fail("UNSUPPORTED", `quote version ${version} (supported: SGX v3, TDX v4 and v5)`, "header.version");
  if (attestationKeyType !== 2)
    fail(
      "UNSUPPORTED",
      `attestation key type ${attestationKeyType} (only 2, ECDSA P-256)`,
      "header.attestationKeyType",
    );
  let tee: "sgx" | "tdx";
  if (version === 3) {
    if (teeType !== 0) fail("MALFORMED", "quote v3 header has a non-zero reserved field", "header.teeType");
    tee = "sgx";
  } else if (teeType === 0x81) tee = "tdx";
  else if (teeType === 0) tee = "sgx";
  else return fail("UNSUPPORTED", `TEE type 0x${teeType.toString(16)}`, "header.teeType");

  let bodyType: number | undefined;
  let enclave: EnclaveReport | undefined;
  let td: TdReport | undefined;
  if (version === 5) {
    bodyType = r.u16("body.type");
    const size = r.u32("body.size");
    const want =
      bodyType === 1
        ? ENCLAVE_REPORT_SIZE
        : bodyType === 2
          ? TD_REPORT10_SIZE
          : bodyType === 3
            ? TD_REPORT15_SIZE
            : -1;
    if (want < 0) fail("UNSUPPORTED", `quote v5 body type ${bodyType}`, "body.type");
    if (size !== want) fail("MALFORMED", `quote v5 body size ${size}, expected ${want}`, "body.size");
    if ((bodyType === 1) !== (tee === "sgx"))
      fail("MALFORMED", "quote v5 body type does not match the TEE type", "body.type");
  }
  if (tee === "sgx") enclave = parseEnclaveReport(r.take(ENCLAVE_REPORT_SIZE, "body"), "enclaveReport");
  else td = parseTdReport(r, bodyType === 3);
  const signedBytes = raw.subarray(0, r.offset);

  const sigLen = r.u32("signatureData.length");
  const sigEnd = r.offset + sigLen;
  if (sigEnd > raw.length)
    fail("MALFORMED", `quote is truncated: signature data needs ${sigLen} bytes`, "signatureData");
  const s = new Reader(raw.subarray(0, sigEnd), "quote signature data", r.offset);
  const signature = s.take(64, "signature");
  const attestationKey = s.take(64, "attestationKey");
  let qe: Reader = s;
  if (version >= 4) {
    const type = s.u16("certification.type");
    const size = s.u32("certification.size");
    if (type !== 6)
      fail("UNSUPPORTED", `certification data type ${type} (expected 6, QE report)`, "certification.type");
    qe = new Reader(s.take(size, "certification.data"), "QE report certification data");
  }
  const qeReportRaw = qe.take(ENCLAVE_REPORT_SIZE, "qeReport");
  const qeReportSignature = qe.take(64, "qeReportSignature");
  const authLen = qe.u16("qeAuthData.length");
  const qeAuthData = qe.take(authLen, "qeAuthData");
  const certDataType = qe.u16("certData.type");
  const certLen = qe.u32("certData.size");
  const certData = qe.take(certLen, "certData");
  if (qe.remaining !== 0 || (qe !== s && s.remaining !== 0))
    fail("MALFORMED", "quote signature data has trailing bytes", "signatureData");
  const padding = raw.subarray(sigEnd);
  return {
    version,
    attestationKeyType,
    tee,
    qeSvn,
    pceSvn,
    qeVendorId,
    userData,
    bodyType,
    ...(enclave ? { enclave } : {}),
    ...(td ? { td } : {}),
    signedBytes,
    signature,
    attestationKey,
    qeReport: parseEnclaveReport(qeReportRaw, "qeReport"),
    qeReportSignature,
    qeAuthData,
    certDataType,
    certData,
    paddingBytes: padding.length,
  };
}
