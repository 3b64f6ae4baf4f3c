// Intel DCAP collateral in the JSON form dcap-qvl uses, its verification, and the TCB status computation that
// follows Intel's Quote Verification Library (QVL): TCB level matching, QE identity, TDX module identity and
// the convergence of their statuses.
import { equalBytes, fromHex, pemBlocks } from "../bytes.js";
import { importEcdsaSpki, verifyEcdsa } from "../crypto.js";
import { fail } from "../errors.js";
import { type ChainCache, parseCertificate, type TcbStatus } from "../types.js";
import { Crl, X509 } from "../x509.js";
import type { PckExtensions } from "./pck.js";
import type { EnclaveReport, IntelQuote } from "./quote.js";

/** dcap-qvl's QuoteCollateralV3 JSON: the exact signed JSON strings with their hex r||s signatures. */
export interface DcapCollateral {
  pck_crl_issuer_chain: string;
  root_ca_crl: string;
  pck_crl: string;
  tcb_info_issuer_chain: string;
  tcb_info: string;
  tcb_info_signature: string;
  qe_identity_issuer_chain: string;
  qe_identity: string;
  qe_identity_signature: string;
}

const COLLATERAL_FIELDS = [
  "pck_crl_issuer_chain",
  "root_ca_crl",
  "pck_crl",
  "tcb_info_issuer_chain",
  "tcb_info",
  "tcb_info_signature",
  "qe_identity_issuer_chain",
  "qe_identity",
  "qe_identity_signature",
] as const;

/** Parses and shape-checks a dcap-qvl collateral document (text or parsed JSON). */
export function parseCollateral(input: string | unknown): DcapCollateral {
  let doc: unknown = input;
  if (typeof input === "string") {
    if (input.length > 1024 * 1024)
      fail("COLLATERAL_INVALID", "collateral is larger than 1 MiB", "collateral");
    try {
      doc = JSON.parse(input);
    } catch {
      fail("COLLATERAL_INVALID", "collateral is not JSON", "collateral");
    }
  }
  if (typeof doc !== "object" || doc === null)
    fail("COLLATERAL_INVALID", "collateral is not a JSON object", "collateral");
  const rec = doc as Record<string, unknown>;
  for (const f of COLLATERAL_FIELDS) {
    if (typeof rec[f] !== "string")
      fail("COLLATERAL_INVALID", `collateral field ${f} is missing or not a string`, `collateral.${f}`);
  }
  return rec as unknown as DcapCollateral;
}

/**
 * Builds the dcap-qvl form from Intel PCS responses (`{"tcbInfo":{...},"signature":"..."}` bodies with their
 * issuer-chain headers, DER CRLs), keeping the exact signed bytes of the inner JSON object.
 */
export function collateralFromPcs(pcs: {
  tcbInfoResponse: string;
  tcbInfoIssuerChain: string;
  qeIdentityResponse: string;
  qeIdentityIssuerChain: string;
  pckCrl: Uint8Array;
  pckCrlIssuerChain: string;
  rootCaCrl: Uint8Array;
}): DcapCollateral {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const tcb = signedMember(pcs.tcbInfoResponse, "tcbInfo");
  const qe = signedMember(pcs.qeIdentityResponse, "enclaveIdentity");
  return {
    pck_crl_issuer_chain: pcs.pckCrlIssuerChain,
    root_ca_crl: hex(pcs.rootCaCrl),
    pck_crl: hex(pcs.pckCrl),
    tcb_info_issuer_chain: pcs.tcbInfoIssuerChain,
    tcb_info: tcb.body,
    tcb_info_signature: tcb.signature,
    qe_identity_issuer_chain: pcs.qeIdentityIssuerChain,
    qe_identity: qe.body,
    qe_identity_signature: qe.signature,
  };
}

/** The raw text of a top-level object member (balanced braces, strings respected) and the "signature" member. */
function signedMember(text: string, key: string): { body: string; signature: string } {
  const start = text.indexOf(`"${key}":`);
  if (start < 0) fail("COLLATERAL_INVALID", `PCS response has no ${key}`, key);
  let i = text.indexOf("{", start);
  const from = i;
  let depth = 0;
  let inString = false;
  for (; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) break;
  }
  if (depth !== 0) fail("COLLATERAL_INVALID", `PCS response ${key} is not balanced JSON`, key);
  const parsed = JSON.parse(text) as { signature?: unknown };
  if (typeof parsed.signature !== "string") fail("COLLATERAL_INVALID", "PCS response has no signature", key);
  return { body: text.slice(from, i + 1), signature: parsed.signature };
}

interface TcbComponent {
  svn: number;
}
interface TcbLevel {
  tcb: {
    sgxtcbcomponents?: TcbComponent[];
    tdxtcbcomponents?: TcbComponent[];
    pcesvn?: number;
    isvsvn?: number;
    [k: string]: unknown;
  };
  tcbDate?: string;
  tcbStatus: string;
  advisoryIDs?: string[];
}
interface TdxModuleIdentity {
  id: string;
  mrsigner: string;
  attributes: string;
  attributesMask: string;
  tcbLevels: TcbLevel[];
}
interface TcbInfo {
  id?: string;
  version: number;
  issueDate: string;
  nextUpdate: string;
  fmspc: string;
  pceId: string;
  tcbLevels: TcbLevel[];
  tdxModule?: { mrsigner: string; attributes: string; attributesMask: string };
  tdxModuleIdentities?: TdxModuleIdentity[];
}
interface QeIdentity {
  id: string;
  version: number;
  issueDate: string;
  nextUpdate: string;
  miscselect: string;
  miscselectMask: string;
  attributes: string;
  attributesMask: string;
  mrsigner: string;
  isvprodid: number;
  tcbLevels: TcbLevel[];
}

const STATUSES: ReadonlySet<string> = new Set([
  "UpToDate",
  "SWHardeningNeeded",
  "ConfigurationNeeded",
  "ConfigurationAndSWHardeningNeeded",
  "OutOfDate",
  "OutOfDateConfigurationNeeded",
  "Revoked",
]);

function status(s: string, field: string): TcbStatus {
  if (!STATUSES.has(s)) fail("COLLATERAL_INVALID", `unknown TCB status ${s}`, field);
  return s as TcbStatus;
}

function parseJson<T>(text: string, field: string): T {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== "object" || v === null) throw new Error();
    return v as T;
  } catch {
    return fail("COLLATERAL_INVALID", `${field} is not a JSON object`, field);
  }
}

function checkWindow(issueDate: string, nextUpdate: string, now: Date, field: string): void {
  const from = Date.parse(issueDate);
  const to = Date.parse(nextUpdate);
  if (Number.isNaN(from) || Number.isNaN(to)) fail("COLLATERAL_INVALID", `${field} has invalid dates`, field);
  if (now.getTime() < from || now.getTime() > to) {
    fail("EXPIRED", `${field} is valid ${issueDate}..${nextUpdate}, not at ${now.toISOString()}`, field);
  }
}

/** Verifies a signed JSON collateral item: its issuer chain to the root and the ECDSA P-256 signature over the exact text. */
async function verifySignedJson(
  text: string,
  sigHex: string,
  chainPem: string,
  root: X509,
  rootCrl: Crl,
  now: Date,
  field: string,
  cache: ChainCache | undefined,
): Promise<X509> {
  const chain = pemBlocks(chainPem).map((d, i) => parseCertificate(d, `${field}.chain[${i}]`, cache));
  const signer = chain[0];
  if (!signer) fail("COLLATERAL_INVALID", `${field} issuer chain has no certificates`, field);
  await verifyIntelChain(chain, root, now, field);
  for (const c of chain)
    if (rootCrl.isRevoked(c)) fail("REVOKED", `${c.commonName} is revoked by the root CA CRL`, c.label);
  const sig = fromHex(sigHex, `${field}_signature`);
  if (sig.length !== 64)
    fail("COLLATERAL_INVALID", `${field} signature must be 64 bytes`, `${field}_signature`);
  const key = await importEcdsaSpki(signer.spki, "P-256");
  if (!(await verifyEcdsa(key, "SHA-256", sig, new TextEncoder().encode(text)))) {
    fail("COLLATERAL_INVALID", `${field} signature does not verify with ${signer.commonName}`, field);
  }
  return signer;
}

/** A chain (leaf first) whose last certificate is, or is signed by, the pinned Intel root. */
export async function verifyIntelChain(chain: X509[], root: X509, now: Date, field: string): Promise<void> {
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!(await chain[i]!.isSignedBy(chain[i + 1]!))) {
      fail(
        "CHAIN_INVALID",
        `${chain[i]!.commonName} is not signed by ${chain[i + 1]!.commonName}`,
        chain[i]!.label,
      );
    }
  }
  const last = chain[chain.length - 1]!;
  if (!last.sameAs(root)) {
    if (last.isSelfIssued() || !(await last.isSignedBy(root))) {
      fail(
        "UNTRUSTED_ROOT",
        `${field} chain ends at ${last.commonName}, not the pinned Intel SGX Root CA`,
        last.label,
      );
    }
  }
  for (const c of [...chain, root]) c.checkValidity(now);
}

export interface TcbEvaluation {
  tcbStatus: TcbStatus;
  advisoryIds: string[];
  platformStatus: TcbStatus;
  qeStatus: TcbStatus;
  tdxModuleStatus?: TcbStatus;
  tcbDate?: string;
  fmspc: string;
}

/**
 * Verifies the collateral (signatures, chains, CRLs, validity windows, that it is for this platform) and
 * computes the TCB status of the quote's platform, QE and TDX module the way Intel's QVL does.
 */
export async function evaluateTcb(
  quote: IntelQuote,
  pckChain: X509[],
  pck: PckExtensions,
  root: X509,
  collateral: DcapCollateral,
  now: Date,
  cache?: ChainCache,
): Promise<TcbEvaluation> {
  const rootCrl = new Crl(fromHex(collateral.root_ca_crl, "root_ca_crl"), "root_ca_crl");
  await rootCrl.check(root, now);
  for (const c of pckChain.slice(1)) {
    if (!c.sameAs(root) && rootCrl.isRevoked(c))
      fail("REVOKED", `${c.commonName} is revoked by the root CA CRL`, c.label);
  }
  // The PCK CRL is signed by the PCK's issuing CA (Platform or Processor CA), which the quote's chain holds.
  const pckCrl = new Crl(fromHex(collateral.pck_crl, "pck_crl"), "pck_crl");
  const crlIssuer =
    pckChain.find((c) => c.subject === pckCrl.issuer) ??
    pemBlocks(collateral.pck_crl_issuer_chain)
      .map((d) => new X509(d, "pck_crl_issuer"))
      .find((c) => c.subject === pckCrl.issuer);
  if (!crlIssuer)
    fail("COLLATERAL_INVALID", `no certificate for the PCK CRL issuer ${pckCrl.issuer}`, "pck_crl");
  if (!pckChain.includes(crlIssuer)) await verifyIntelChain([crlIssuer], root, now, "pck_crl_issuer_chain");
  await pckCrl.check(crlIssuer, now);
  if (pckCrl.isRevoked(pckChain[0]!)) fail("REVOKED", "the PCK certificate is revoked by the PCK CRL", "pck");

  await verifySignedJson(
    collateral.tcb_info,
    collateral.tcb_info_signature,
    collateral.tcb_info_issuer_chain,
    root,
    rootCrl,
    now,
    "tcb_info",
    cache,
  );
  await verifySignedJson(
    collateral.qe_identity,
    collateral.qe_identity_signature,
    collateral.qe_identity_issuer_chain,
    root,
    rootCrl,
    now,
    "qe_identity",
    cache,
  );

  const tcbInfo = parseJson<TcbInfo>(collateral.tcb_info, "tcb_info");
  const qeIdentity = parseJson<QeIdentity>(collateral.qe_identity, "qe_identity");
  checkWindow(tcbInfo.issueDate, tcbInfo.nextUpdate, now, "tcb_info");
  checkWindow(qeIdentity.issueDate, qeIdentity.nextUpdate, now, "qe_identity");

  const wantId = quote.tee === "tdx" ? "TDX" : "SGX";
  if ((tcbInfo.id ?? "SGX") !== wantId)
    fail("COLLATERAL_INVALID", `tcb_info is for ${tcbInfo.id}, the quote is ${wantId}`, "tcb_info.id");
  if (tcbInfo.version !== 2 && tcbInfo.version !== 3)
    fail("COLLATERAL_INVALID", `tcb_info version ${tcbInfo.version}`, "tcb_info.version");
  if (tcbInfo.fmspc?.toLowerCase() !== pck.fmspc) {
    fail(
      "COLLATERAL_INVALID",
      `tcb_info is for FMSPC ${tcbInfo.fmspc}, the PCK certificate says ${pck.fmspc}`,
      "tcb_info.fmspc",
    );
  }
  if (tcbInfo.pceId?.toLowerCase() !== pck.pceId) {
    fail(
      "COLLATERAL_INVALID",
      `tcb_info is for PCE ID ${tcbInfo.pceId}, the PCK certificate says ${pck.pceId}`,
      "tcb_info.pceId",
    );
  }

  const qe = evaluateQeIdentity(quote.qeReport, qeIdentity, quote.tee === "tdx" ? "TD_QE" : "QE");
  const level = matchPlatformLevel(tcbInfo, pck, quote);
  let platformStatus = status(level.tcbStatus, "tcb_info.tcbStatus");
  const advisories = new Set<string>(level.advisoryIDs ?? []);
  let tdxModuleStatus: TcbStatus | undefined;
  if (quote.td) {
    const mod = evaluateTdxModule(
      tcbInfo,
      quote.td.teeTcbSvn,
      quote.td.mrSignerSeam,
      quote.td.seamAttributes,
    );
    if (mod) {
      tdxModuleStatus = mod.status;
      for (const a of mod.advisoryIds) advisories.add(a);
      platformStatus = convergeWithModule(platformStatus, mod.status);
    }
  }
  for (const a of qe.advisoryIds) advisories.add(a);
  const tcbStatus = convergeWithQe(platformStatus, qe.status);
  return {
    tcbStatus,
    advisoryIds: [...advisories].sort(),
    platformStatus: status(level.tcbStatus, "tcb_info.tcbStatus"),
    qeStatus: qe.status,
    ...(tdxModuleStatus ? { tdxModuleStatus } : {}),
    ...(level.tcbDate ? { tcbDate: level.tcbDate } : {}),
    fmspc: pck.fmspc,
  };
}

function maskedEqual(a: Uint8Array, b: Uint8Array, mask: Uint8Array): boolean {
  if (a.length !== mask.length || b.length !== mask.length) return false;
  return a.every((x, i) => (x & mask[i]!) === (b[i]! & mask[i]!));
}

function u32le(n: number): Uint8Array {
  return new Uint8Array([n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff]);
}

function evaluateQeIdentity(
  qe: EnclaveReport,
  id: QeIdentity,
  wantId: string,
): { status: TcbStatus; advisoryIds: string[] } {
  if (id.id !== wantId)
    fail("COLLATERAL_INVALID", `qe_identity is for ${id.id}, the quote needs ${wantId}`, "qe_identity.id");
  // miscselect is a little-endian u32 in the report and a big-endian hex string in the identity.
  const misc = fromHex(id.miscselect, "qe_identity.miscselect").reverse();
  const miscMask = fromHex(id.miscselectMask, "qe_identity.miscselectMask").reverse();
  if (!maskedEqual(u32le(qe.miscSelect), misc, miscMask))
    fail("QE_REPORT_INVALID", "QE MISCSELECT does not match the QE identity", "qe.miscSelect");
  if (
    !maskedEqual(
      qe.attributes,
      fromHex(id.attributes, "qe_identity.attributes"),
      fromHex(id.attributesMask, "qe_identity.attributesMask"),
    )
  ) {
    fail("QE_REPORT_INVALID", "QE ATTRIBUTES do not match the QE identity", "qe.attributes");
  }
  if (!equalBytes(qe.mrSigner, fromHex(id.mrsigner, "qe_identity.mrsigner")))
    fail("QE_REPORT_INVALID", "QE MRSIGNER does not match the QE identity", "qe.mrSigner");
  if (qe.isvProdId !== id.isvprodid)
    fail("QE_REPORT_INVALID", `QE ISVPRODID ${qe.isvProdId} is not ${id.isvprodid}`, "qe.isvProdId");
  const level = id.tcbLevels.find((l) => typeof l.tcb.isvsvn === "number" && qe.isvSvn >= l.tcb.isvsvn);
  // QVL: an ISVSVN below every level is out of date.
  if (!level) return { status: "OutOfDate", advisoryIds: [] };
  return { status: status(level.tcbStatus, "qe_identity.tcbStatus"), advisoryIds: level.advisoryIDs ?? [] };
}

function sgxComponents(level: TcbLevel): number[] {
  if (level.tcb.sgxtcbcomponents) return level.tcb.sgxtcbcomponents.map((c) => c.svn);
  // tcbInfo v2 names them sgxtcbcomp01svn..sgxtcbcomp16svn.
  return Array.from({ length: 16 }, (_, i) =>
    Number(level.tcb[`sgxtcbcomp${String(i + 1).padStart(2, "0")}svn`] ?? Number.NaN),
  );
}

function matchPlatformLevel(info: TcbInfo, pck: PckExtensions, quote: IntelQuote): TcbLevel {
  const tee = quote.td?.teeTcbSvn;
  for (const level of info.tcbLevels ?? []) {
    const sgx = sgxComponents(level);
    if (sgx.length !== 16 || sgx.some((v) => !Number.isInteger(v)))
      fail("COLLATERAL_INVALID", "tcb_info level has malformed SGX components", "tcb_info.tcbLevels");
    if (!pck.tcbComponents.every((v, i) => v >= sgx[i]!)) continue;
    if (pck.pceSvn < (level.tcb.pcesvn ?? Number.POSITIVE_INFINITY)) continue;
    if (tee) {
      const tdx = level.tcb.tdxtcbcomponents?.map((c) => c.svn);
      if (tdx?.length !== 16)
        fail("COLLATERAL_INVALID", "tcb_info level has no TDX components", "tcb_info.tcbLevels");
      // QVL: with a TDX module major version (TEE_TCB_SVN[1]) above 0, bytes 0 and 1 are judged by the TDX
      // module identity instead of the TCB level.
      const start = tee[1]! > 0 && info.tdxModuleIdentities ? 2 : 0;
      let ok = true;
      for (let i = start; i < 16; i++) if (tee[i]! < tdx[i]!) ok = false;
      if (!ok) continue;
    }
    return level;
  }
  return fail(
    "TCB_NOT_SUPPORTED",
    `no TCB level in tcb_info matches this platform (FMSPC ${pck.fmspc})`,
    "tcb_info.tcbLevels",
  );
}

function evaluateTdxModule(
  info: TcbInfo,
  teeTcbSvn: Uint8Array,
  mrSignerSeam: Uint8Array,
  seamAttributes: Uint8Array,
): { status: TcbStatus; advisoryIds: string[] } | undefined {
  const major = teeTcbSvn[1]!;
  const checkIdentity = (
    ident: { mrsigner: string; attributes: string; attributesMask: string },
    field: string,
  ) => {
    if (!equalBytes(mrSignerSeam, fromHex(ident.mrsigner, `${field}.mrsigner`)))
      fail("CERT_MISMATCH", "TDX module MRSIGNERSEAM does not match tcb_info", `${field}.mrsigner`);
    if (
      !maskedEqual(seamAttributes, fromHex(ident.attributes, field), fromHex(ident.attributesMask, field))
    ) {
      fail("CERT_MISMATCH", "TDX module SEAMATTRIBUTES do not match tcb_info", `${field}.attributes`);
    }
  };
  if (info.tdxModule) checkIdentity(info.tdxModule, "tcb_info.tdxModule");
  if (major === 0 || !info.tdxModuleIdentities) return undefined;
  const id = `TDX_${major.toString(16).padStart(2, "0").toUpperCase()}`;
  const ident = info.tdxModuleIdentities.find((m) => m.id.toUpperCase() === id);
  if (!ident)
    fail("TCB_NOT_SUPPORTED", `tcb_info has no TDX module identity ${id}`, "tcb_info.tdxModuleIdentities");
  checkIdentity(ident, `tcb_info.tdxModuleIdentities.${id}`);
  const isvSvn = teeTcbSvn[0]!;
  const level = ident.tcbLevels.find((l) => typeof l.tcb.isvsvn === "number" && isvSvn >= l.tcb.isvsvn);
  if (!level)
    fail(
      "TCB_NOT_SUPPORTED",
      `TDX module ${id} SVN ${isvSvn} is below every level`,
      "tcb_info.tdxModuleIdentities",
    );
  return { status: status(level.tcbStatus, "tdxModule.tcbStatus"), advisoryIds: level.advisoryIDs ?? [] };
}

function convergeWithModule(platform: TcbStatus, module: TcbStatus): TcbStatus {
  if (module === "Revoked") return "Revoked";
  if (module === "OutOfDate") {
    if (platform === "UpToDate" || platform === "SWHardeningNeeded") return "OutOfDate";
    if (platform === "ConfigurationNeeded" || platform === "ConfigurationAndSWHardeningNeeded")
      return "OutOfDateConfigurationNeeded";
  }
  return platform;
}

/** QVL's convergeTcbStatusWithQeTcbStatus. */
function convergeWithQe(platform: TcbStatus, qe: TcbStatus): TcbStatus {
  if (qe === "Revoked") return "Revoked";
  if (qe === "OutOfDate") {
    if (platform === "UpToDate" || platform === "SWHardeningNeeded") return "OutOfDate";
    if (platform === "ConfigurationNeeded" || platform === "ConfigurationAndSWHardeningNeeded")
      return "OutOfDateConfigurationNeeded";
  }
  return platform;
}
