import { concat, equalBytes, isZero, pemBlocks, toHex } from "../bytes.js";
import { importEcdsaRaw, sha256, verifyEcdsa } from "../crypto.js";
import { fail } from "../errors.js";
import { INTEL_SGX_ROOT_CA_PEM } from "../roots.js";
import { parseCertificate, type VerifiedEvidence, type VerifyOptions, verifyChainWith } from "../types.js";
import { X509 } from "../x509.js";
import { type DcapCollateral, evaluateTcb, parseCollateral } from "./collateral.js";
import { parsePckExtensions } from "./pck.js";
import { parseIntelQuote } from "./quote.js";

let root: X509 | undefined;
export function intelRoot(): X509 {
  root ??= new X509(pemBlocks(INTEL_SGX_ROOT_CA_PEM)[0]!, "intel-root");
  return root;
}

/**
 * Verifies a TDX (v4, v5) or SGX (v3) quote: the attestation key's signature over header and body, the QE
 * report's signature by the PCK certificate, the QE report data binding SHA-256(attestation key || QE auth
 * data), and the PCK chain to the pinned Intel SGX Root CA. With collateral, also the TCB status.
 */
export async function verifyIntelQuote(
  raw: Uint8Array,
  collateral: DcapCollateral | string | undefined,
  opts: VerifyOptions & { expectTee?: "tdx" | "sgx" } = {},
): Promise<VerifiedEvidence> {
  const now = opts.now ?? new Date();
  const quote = parseIntelQuote(raw);
  if (opts.expectTee && quote.tee !== opts.expectTee) {
    fail(
      "UNSUPPORTED",
      `this is an ${quote.tee.toUpperCase()} quote, not ${opts.expectTee.toUpperCase()}`,
      "header.teeType",
    );
  }
  const warnings: string[] = [];
  if (quote.paddingBytes > 0) warnings.push(`ignored ${quote.paddingBytes} unsigned bytes after the quote`);

  const attKey = await importEcdsaRaw(quote.attestationKey, "P-256");
  if (!(await verifyEcdsa(attKey, "SHA-256", quote.signature, quote.signedBytes))) {
    fail("SIGNATURE_INVALID", "quote signature does not verify with the attestation key", "signature");
  }
  const binding = await sha256(concat(quote.attestationKey, quote.qeAuthData));
  if (
    !equalBytes(quote.qeReport.reportData.subarray(0, 32), binding) ||
    !isZero(quote.qeReport.reportData.subarray(32))
  ) {
    fail(
      "QE_REPORT_INVALID",
      "QE report data is not SHA-256(attestation key || QE auth data)",
      "qeReport.reportData",
    );
  }
  if (quote.certDataType !== 5)
    fail("UNSUPPORTED", `certification data type ${quote.certDataType} (need 5, PCK chain)`, "certData.type");
  const chain = pemBlocks(new TextDecoder().decode(quote.certData)).map((d, i) =>
    parseCertificate(d, i === 0 ? "pck" : i === 1 ? "pck-ca" : `pck-chain[${i}]`, opts.cache),
  );
  if (chain.length === 0) fail("CHAIN_INVALID", "quote carries no PCK certificate chain", "certData");
  const pck = chain[0]!;
  if (pck.curve !== "P-256") fail("CHAIN_INVALID", "PCK certificate does not hold a P-256 key", "pck");
  if (!(await verifyEcdsa(await pck.ecKey(), "SHA-256", quote.qeReportSignature, quote.qeReport.raw))) {
    fail(
      "QE_REPORT_INVALID",
      "QE report signature does not verify with the PCK certificate",
      "qeReportSignature",
    );
  }
  await verifyChainWith(chain, [intelRoot()], now, opts.cache);
  const pckExt = parsePckExtensions(pck);

  const tcb: Record<string, number | string> = {
    qeSvn: quote.qeSvn,
    pceSvn: quote.pceSvn,
    pckPceSvn: pckExt.pceSvn,
    pckCpuSvn: toHex(pckExt.cpuSvn),
    fmspc: pckExt.fmspc,
    qeIsvSvn: quote.qeReport.isvSvn,
  };
  let tcbStatus: VerifiedEvidence["tcbStatus"] = "Unknown";
  let advisoryIds: string[] = [];
  if (collateral !== undefined) {
    const col = typeof collateral === "string" ? parseCollateral(collateral) : parseCollateral(collateral);
    const ev = await evaluateTcb(quote, chain, pckExt, intelRoot(), col, now, opts.cache);
    tcbStatus = ev.tcbStatus;
    advisoryIds = ev.advisoryIds;
    tcb.platformTcbStatus = ev.platformStatus;
    tcb.qeTcbStatus = ev.qeStatus;
    if (ev.tdxModuleStatus) tcb.tdxModuleTcbStatus = ev.tdxModuleStatus;
    if (ev.tcbDate) tcb.tcbDate = ev.tcbDate;
    if (tcbStatus === "Revoked") fail("REVOKED", "the platform's TCB is revoked", "tcbStatus");
  } else {
    warnings.push("no DCAP collateral: TCB status unknown");
  }

  if (quote.td) {
    const td = quote.td;
    tcb.teeTcbSvn = toHex(td.teeTcbSvn);
    return {
      tee: "tdx",
      version: quote.version,
      measurement: td.mrTd,
      reportData: td.reportData,
      // TDATTRIBUTES bit 0 (TUD.DEBUG): the TD's memory and state are readable by the host.
      debug: (td.tdAttributes[0]! & 1) === 1,
      tcb,
      tcbStatus,
      advisoryIds,
      quote,
      warnings,
    };
  }
  const e = quote.enclave!;
  tcb.isvSvn = e.isvSvn;
  tcb.isvProdId = e.isvProdId;
  tcb.cpuSvn = toHex(e.cpuSvn);
  return {
    tee: "sgx",
    version: quote.version,
    measurement: e.mrEnclave,
    reportData: e.reportData,
    // SGX ATTRIBUTES.DEBUG is bit 1 of the flags.
    debug: (e.attributes[0]! & 2) === 2,
    tcb,
    tcbStatus,
    advisoryIds,
    quote,
    warnings,
  };
}
