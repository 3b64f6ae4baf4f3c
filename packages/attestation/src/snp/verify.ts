import { equalBytes, isZero, pemBlocks } from "../bytes.js";
import { verifyEcdsa } from "../crypto.js";
import { AttestationError, fail } from "../errors.js";
import {
  ARK_GENOA_PEM,
  ARK_MILAN_PEM,
  ARK_TURIN_PEM,
  ASK_GENOA_PEM,
  ASK_MILAN_PEM,
  ASK_TURIN_PEM,
} from "../roots.js";
import { parseCertificate, type VerifiedEvidence, type VerifyOptions, verifyChainWith } from "../types.js";
import { X509 } from "../x509.js";
import { decodeTcb, parseSnpReport, productFromCpuid, type SnpProduct, type SnpTcb } from "./report.js";

const AMD_OID = "1.3.6.1.4.1.3704.1";
export const VCEK_OID = {
  structVersion: `${AMD_OID}.1`,
  productName: `${AMD_OID}.2`,
  blSpl: `${AMD_OID}.3.1`,
  teeSpl: `${AMD_OID}.3.2`,
  snpSpl: `${AMD_OID}.3.3`,
  ucodeSpl: `${AMD_OID}.3.8`,
  fmcSpl: `${AMD_OID}.3.9`,
  hwId: `${AMD_OID}.4`,
  cspId: `${AMD_OID}.5`,
} as const;

interface PinnedProduct {
  product: SnpProduct;
  ark: X509;
  ask: X509;
}

let pinned: PinnedProduct[] | undefined;

/** The pinned ARKs (and AMD's published ASKs, used when the evidence carries only a VCEK). */
export function snpPinnedRoots(): PinnedProduct[] {
  pinned ??= (
    [
      ["Milan", ARK_MILAN_PEM, ASK_MILAN_PEM],
      ["Genoa", ARK_GENOA_PEM, ASK_GENOA_PEM],
      ["Turin", ARK_TURIN_PEM, ASK_TURIN_PEM],
    ] as const
  ).map(([product, ark, ask]) => ({
    product,
    ark: new X509(pemBlocks(ark)[0]!, `ark-${product.toLowerCase()}`),
    ask: new X509(pemBlocks(ask)[0]!, `ask-${product.toLowerCase()}`),
  }));
  return pinned;
}

/** Small DER readers for AMD's extension values (INTEGER, IA5String, OCTET STRING). */
function derInteger(v: Uint8Array | undefined, field: string): number {
  if (v?.[0] !== 0x02 || v[1] === undefined || v[1] < 1 || v[1] > 4 || v.length !== 2 + v[1]) {
    return fail("CERT_MISMATCH", `VCEK/VLEK extension ${field} is missing or not a small INTEGER`, field);
  }
  let n = 0;
  for (const b of v.subarray(2)) n = n * 256 + b;
  return n;
}

function derString(v: Uint8Array | undefined): string | undefined {
  if (!v || v.length < 2 || v.length !== 2 + v[1]!) return undefined;
  return new TextDecoder().decode(v.subarray(2));
}

function hwIdOf(v: Uint8Array | undefined): Uint8Array | undefined {
  if (!v) return undefined;
  // AMD's VCEKs hold the hwID as raw bytes in the extension value; accept an OCTET STRING wrapper as well.
  if (v[0] === 0x04 && v.length === 2 + v[1]!) return v.subarray(2);
  return v;
}

/** Orders the supplied certificates into leaf → … by issuer name, drawing missing ASKs from AMD's published ones. */
function buildSnpChain(leaf: X509, pool: X509[]): X509[] {
  const chain = [leaf];
  let cur = leaf;
  while (!cur.isSelfIssued() && chain.length < 4) {
    const next = pool.find((c) => c.subject === cur.issuer && !chain.includes(c));
    if (!next) break;
    chain.push(next);
    cur = next;
  }
  return chain;
}

/**
 * Verifies an SEV-SNP report: the ECDSA P-384 signature by the VCEK/VLEK, its chain to a pinned ARK, that the
 * certificate's hwID and TCB extensions match the report, and validity at `now`.
 * `certs` are DER certificates: the VCEK or VLEK (required), then optionally the ASK/ASVK and ARK.
 */
export async function verifySnp(
  raw: Uint8Array,
  certs: Uint8Array[],
  opts: VerifyOptions = {},
): Promise<VerifiedEvidence> {
  const now = opts.now ?? new Date();
  const report = parseSnpReport(raw);
  const warnings: string[] = [];
  if (report.signatureAlgo !== 1) {
    fail(
      "UNSUPPORTED",
      `SEV-SNP signature algorithm ${report.signatureAlgo} (only 1, ECDSA P-384 SHA-384)`,
      "signatureAlgo",
    );
  }
  if (report.signingKey === "none")
    fail("SIGNATURE_INVALID", "SEV-SNP report is unsigned (signing key 7)", "signingKey");
  const parsed = certs.map((der, i) => parseCertificate(der, i === 0 ? "leaf" : `cert[${i}]`, opts.cache));
  const leafIndex = parsed.findIndex((c) => c.curve === "P-384");
  if (leafIndex < 0) {
    fail(
      "CHAIN_INVALID",
      `no ${report.signingKey.toUpperCase()} certificate (P-384 key) among the certificates`,
      report.signingKey,
    );
  }
  const leafRaw = parsed[leafIndex]!;
  const leaf = leafRaw.relabel(report.signingKey);
  const expectCn = report.signingKey === "vcek" ? "SEV-VCEK" : "SEV-VLEK";
  if (leaf.commonName !== expectCn) {
    fail(
      "CERT_MISMATCH",
      `report says it is signed by the ${report.signingKey.toUpperCase()}, certificate is ${leaf.commonName}`,
      report.signingKey,
    );
  }

  // The report signature first: it is the cheap check that fails for any tampered report byte.
  const ok = await verifyEcdsa(await leaf.ecKey(), "SHA-384", report.signatureRs, report.signedBytes);
  if (!ok)
    fail(
      "SIGNATURE_INVALID",
      `SEV-SNP report signature does not verify with the ${report.signingKey.toUpperCase()}`,
      "signature",
    );

  const roots = snpPinnedRoots();
  const others = parsed
    .filter((_, i) => i !== leafIndex)
    .map((c, i) =>
      c.relabel(
        c.curve ? `cert[${i}]` : c.isSelfIssued() ? "ark" : report.signingKey === "vlek" ? "asvk" : "ask",
      ),
    );
  const pool = [...others, ...(report.signingKey === "vcek" ? roots.map((r) => r.ask) : [])];
  const chain = buildSnpChain(leaf, pool);
  // Every supplied certificate must be on the chain: a stray ASK or ARK means the caller holds the wrong chain.
  for (const c of others) {
    if (!chain.some((x) => x.sameAs(c))) {
      fail(
        "CHAIN_INVALID",
        `${c.label} (${c.commonName}) is not on the ${report.signingKey.toUpperCase()}'s chain`,
        c.label,
      );
    }
  }
  const anchor = await verifyChainWith(
    chain,
    roots.map((r) => r.ark),
    now,
    opts.cache,
  );
  const product = roots.find((r) => r.ark === anchor)!.product;

  checkProductConsistency(report.cpuidFamId, report.cpuidModId, leaf, product);
  const reported = decodeTcb(report.reportedTcb, product);
  checkTcbExtensions(leaf, reported, product, report.signingKey);
  if (report.signingKey === "vcek") {
    const hwId = hwIdOf(leaf.extension(VCEK_OID.hwId));
    if (!hwId) fail("CERT_MISMATCH", "VCEK has no hwID extension", "vcek.hwID");
    if (report.maskChipKey || isZero(report.chipId)) {
      warnings.push("chip id is masked in the report: VCEK hwID not compared");
    } else {
      // Turin VCEKs carry an 8-byte hwID; the report's CHIP_ID holds it in its first 8 bytes.
      const want = hwId.length === 8 ? report.chipId.subarray(0, 8) : report.chipId;
      if (!equalBytes(hwId, want))
        fail("CERT_MISMATCH", "VCEK hwID does not match the report's CHIP_ID", "vcek.hwID");
    }
  }

  return {
    tee: "snp",
    version: report.version,
    measurement: report.measurement,
    reportData: report.reportData,
    debug: report.guestPolicy.debug,
    tcb: {
      ...tcbFields("", reported),
      ...tcbFields("committed", decodeTcb(report.committedTcb, product)),
      ...tcbFields("launch", decodeTcb(report.launchTcb, product)),
      ...tcbFields("current", decodeTcb(report.currentTcb, product)),
      guestSvn: report.guestSvn,
      vmpl: report.vmpl,
    },
    tcbStatus: "Unknown",
    advisoryIds: [],
    snp: { report, product, signer: report.signingKey },
    warnings,
  };
}

function tcbFields(prefix: string, tcb: SnpTcb): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(tcb)) {
    if (v !== undefined) out[prefix ? `${prefix}${k[0]!.toUpperCase()}${k.slice(1)}` : k] = v;
  }
  return out;
}

function checkProductConsistency(
  fam: number | undefined,
  model: number | undefined,
  leaf: X509,
  product: SnpProduct,
): void {
  if (fam !== undefined && model !== undefined && (fam !== 0 || model !== 0)) {
    const fromCpuid = productFromCpuid(fam, model);
    if (fromCpuid && fromCpuid !== product) {
      fail("CERT_MISMATCH", `report CPUID names ${fromCpuid}, certificate chain is ${product}`, "cpuid");
    }
  }
  const name = derString(leaf.extension(VCEK_OID.productName));
  if (name && !name.startsWith(product)) {
    fail(
      "CERT_MISMATCH",
      `certificate product ${name} does not match its ${product} root`,
      `${leaf.label}.productName`,
    );
  }
}

/** The VCEK/VLEK is derived for one TCB: its SPL extensions must equal the report's REPORTED_TCB. */
function checkTcbExtensions(leaf: X509, tcb: SnpTcb, product: SnpProduct, signer: string): void {
  const pairs: [string, string, number][] = [
    ["blSPL", VCEK_OID.blSpl, tcb.bootloader],
    ["teeSPL", VCEK_OID.teeSpl, tcb.tee],
    ["snpSPL", VCEK_OID.snpSpl, tcb.snp],
    ["ucodeSPL", VCEK_OID.ucodeSpl, tcb.microcode],
  ];
  if (product === "Turin") pairs.push(["fmcSPL", VCEK_OID.fmcSpl, tcb.fmc ?? 0]);
  for (const [name, oid, want] of pairs) {
    const got = derInteger(leaf.extension(oid), `${signer}.${name}`);
    if (got !== want) {
      throw new AttestationError(
        "CERT_MISMATCH",
        `${signer.toUpperCase()} ${name} is ${got}, report REPORTED_TCB has ${want}`,
        `${signer}.${name}`,
      );
    }
  }
}
