// The verifier core: pure TypeScript on WebCrypto, no Node APIs, so it runs in browsers as well as Node.
// Node-only parts (configfs-tsm attester, file loading) are in "@trustedpods/attestation/node".
export * from "./binding.js";
export * from "./bytes.js";
export { digest, sha256, sha384, sha512 } from "./crypto.js";
export * from "./errors.js";
export * from "./evidence.js";
export * from "./insecure.js";
export {
  collateralFromPcs,
  type DcapCollateral,
  parseCollateral,
  type TcbEvaluation,
} from "./intel/collateral.js";
export { type PckExtensions, parsePckExtensions } from "./intel/pck.js";
export { type EnclaveReport, type IntelQuote, parseIntelQuote, type TdReport } from "./intel/quote.js";
export { intelRoot, verifyIntelQuote } from "./intel/verify.js";
export * from "./launch.js";
export * from "./measure/errors.js";
export * from "./measure/snp/index.js";
export * from "./measure/tdx/index.js";
export * from "./policy.js";
export * from "./roots.js";
export * from "./snp/report.js";
export { snpPinnedRoots, VCEK_OID, verifySnp } from "./snp/verify.js";
export * from "./types.js";
export { Crl, verifyChain, X509 } from "./x509.js";
