// AMD SEV-SNP ATTESTATION_REPORT (SEV-SNP ABI spec 56860, table "ATTESTATION_REPORT Structure").
// The layout is fixed at 0x4A0 bytes for versions 2 and later; later versions only define fields inside
// bytes that were reserved before, so a newer version parses with the same layout.
import { isZero, Reader, reversed } from "../bytes.js";
import { fail } from "../errors.js";

export const SNP_REPORT_SIZE = 0x4a0;
/** The signature covers bytes 0x000..0x29F. */
export const SNP_SIGNED_SIZE = 0x2a0;

export type SnpProduct = "Milan" | "Genoa" | "Turin";
export type SnpSigningKey = "vcek" | "vlek" | "none";

export interface SnpGuestPolicy {
  abiMinor: number;
  abiMajor: number;
  smt: boolean;
  migrateMa: boolean;
  debug: boolean;
  singleSocket: boolean;
  cxlAllow: boolean;
  memAes256Xts: boolean;
  raplDis: boolean;
  ciphertextHiding: boolean;
  pageSwapDisable: boolean;
}

export interface SnpPlatformInfo {
  smtEnabled: boolean;
  tsmeEnabled: boolean;
  eccEnabled: boolean;
  raplDisabled: boolean;
  ciphertextHidingEnabled: boolean;
  aliasCheckComplete: boolean;
}

export interface SnpReport {
  version: number;
  guestSvn: number;
  policy: bigint;
  guestPolicy: SnpGuestPolicy;
  familyId: Uint8Array;
  imageId: Uint8Array;
  vmpl: number;
  signatureAlgo: number;
  currentTcb: bigint;
  platformInfo: bigint;
  platform: SnpPlatformInfo;
  authorKeyEn: boolean;
  maskChipKey: boolean;
  signingKey: SnpSigningKey;
  reportData: Uint8Array;
  measurement: Uint8Array;
  hostData: Uint8Array;
  idKeyDigest: Uint8Array;
  authorKeyDigest: Uint8Array;
  reportId: Uint8Array;
  reportIdMa: Uint8Array;
  reportedTcb: bigint;
  /** CPUID family, model and stepping of the chip: version 3 and later only (zero before). */
  cpuidFamId: number | undefined;
  cpuidModId: number | undefined;
  cpuidStep: number | undefined;
  chipId: Uint8Array;
  committedTcb: bigint;
  currentBuild: number;
  currentMinor: number;
  currentMajor: number;
  committedBuild: number;
  committedMinor: number;
  committedMajor: number;
  launchTcb: bigint;
  /** Mitigation vectors: version 5 and later only. */
  launchMitVector: bigint | undefined;
  currentMitVector: bigint | undefined;
  /** ECDSA P-384 signature as big-endian r||s (the report stores each little-endian in 72 bytes). */
  signatureRs: Uint8Array;
  signedBytes: Uint8Array;
  raw: Uint8Array;
}

const bit = (v: bigint, n: number) => ((v >> BigInt(n)) & 1n) === 1n;

export function parseSnpReport(raw: Uint8Array): SnpReport {
  if (raw.length !== SNP_REPORT_SIZE) {
    fail("MALFORMED", `SEV-SNP report must be ${SNP_REPORT_SIZE} bytes, got ${raw.length}`, "report");
  }
  const r = new Reader(raw, "SEV-SNP report");
  const version = r.u32("version");
  if (version < 2) fail("UNSUPPORTED", `SEV-SNP report version ${version} (need 2 or later)`, "version");
  const guestSvn = r.u32("guestSvn");
  const policy = r.u64("policy");
  const familyId = r.take(16, "familyId");
  const imageId = r.take(16, "imageId");
  const vmpl = r.u32("vmpl");
  const signatureAlgo = r.u32("signatureAlgo");
  const currentTcb = r.u64("currentTcb");
  const platformInfo = r.u64("platformInfo");
  const flags = r.u32("flags");
  r.u32("reserved0");
  const reportData = r.take(64, "reportData");
  const measurement = r.take(48, "measurement");
  const hostData = r.take(32, "hostData");
  const idKeyDigest = r.take(48, "idKeyDigest");
  const authorKeyDigest = r.take(48, "authorKeyDigest");
  const reportId = r.take(32, "reportId");
  const reportIdMa = r.take(32, "reportIdMa");
  const reportedTcb = r.u64("reportedTcb");
  const cpuidFam = r.u8("cpuidFamId");
  const cpuidMod = r.u8("cpuidModId");
  const cpuidStep = r.u8("cpuidStep");
  r.offset = 0x1a0;
  const chipId = r.take(64, "chipId");
  const committedTcb = r.u64("committedTcb");
  const currentBuild = r.u8("currentBuild");
  const currentMinor = r.u8("currentMinor");
  const currentMajor = r.u8("currentMajor");
  r.u8("reserved");
  const committedBuild = r.u8("committedBuild");
  const committedMinor = r.u8("committedMinor");
  const committedMajor = r.u8("committedMajor");
  r.u8("reserved");
  const launchTcb = r.u64("launchTcb");
  const launchMitVector = r.u64("launchMitVector");
  const currentMitVector = r.u64("currentMitVector");
  r.offset = SNP_SIGNED_SIZE;
  const sigR = r.take(72, "signature.r");
  const sigS = r.take(72, "signature.s");
  const signingKeyBits = (flags >> 2) & 7;
  const signingKey: SnpSigningKey =
    signingKeyBits === 0
      ? "vcek"
      : signingKeyBits === 1
        ? "vlek"
        : signingKeyBits === 7
          ? "none"
          : fail("MALFORMED", `SEV-SNP report signing key ${signingKeyBits} is reserved`, "signingKey");
  // r and s are 72-byte little-endian fields of which P-384 uses the low 48 bytes; the rest must be zero.
  if (!sigR.subarray(48).every((b) => b === 0) || !sigS.subarray(48).every((b) => b === 0)) {
    fail("SIGNATURE_INVALID", "SEV-SNP signature r or s exceeds 48 bytes", "signature");
  }
  if (!isZero(raw.subarray(SNP_SIGNED_SIZE + 144))) {
    fail("MALFORMED", "SEV-SNP signature's reserved bytes are not zero", "signature.reserved");
  }
  return {
    version,
    guestSvn,
    policy,
    guestPolicy: {
      abiMinor: Number(policy & 0xffn),
      abiMajor: Number((policy >> 8n) & 0xffn),
      smt: bit(policy, 16),
      migrateMa: bit(policy, 18),
      debug: bit(policy, 19),
      singleSocket: bit(policy, 20),
      cxlAllow: bit(policy, 21),
      memAes256Xts: bit(policy, 22),
      raplDis: bit(policy, 23),
      ciphertextHiding: bit(policy, 24),
      pageSwapDisable: bit(policy, 25),
    },
    familyId,
    imageId,
    vmpl,
    signatureAlgo,
    currentTcb,
    platformInfo,
    platform: {
      smtEnabled: bit(platformInfo, 0),
      tsmeEnabled: bit(platformInfo, 1),
      eccEnabled: bit(platformInfo, 2),
      raplDisabled: bit(platformInfo, 3),
      ciphertextHidingEnabled: bit(platformInfo, 4),
      aliasCheckComplete: bit(platformInfo, 5),
    },
    authorKeyEn: (flags & 1) === 1,
    maskChipKey: (flags & 2) === 2,
    signingKey,
    reportData,
    measurement,
    hostData,
    idKeyDigest,
    authorKeyDigest,
    reportId,
    reportIdMa,
    reportedTcb,
    cpuidFamId: version >= 3 ? cpuidFam : undefined,
    cpuidModId: version >= 3 ? cpuidMod : undefined,
    cpuidStep: version >= 3 ? cpuidStep : undefined,
    chipId,
    committedTcb,
    currentBuild,
    currentMinor,
    currentMajor,
    committedBuild,
    committedMinor,
    committedMajor,
    launchTcb,
    launchMitVector: version >= 5 ? launchMitVector : undefined,
    currentMitVector: version >= 5 ? currentMitVector : undefined,
    signatureRs: new Uint8Array([...reversed(sigR.subarray(0, 48)), ...reversed(sigS.subarray(0, 48))]),
    signedBytes: raw.subarray(0, SNP_SIGNED_SIZE),
    raw,
  };
}

/** Security patch levels of one TCB_VERSION. `fmc` exists on Turin and later only. */
export interface SnpTcb {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

/**
 * Decodes a TCB_VERSION. Milan and Genoa: byte 0 boot loader, 1 TEE, 6 SNP, 7 microcode.
 * Turin: byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP, 7 microcode.
 */
export function decodeTcb(raw: bigint, product: SnpProduct): SnpTcb {
  const b = (i: number) => Number((raw >> BigInt(8 * i)) & 0xffn);
  if (product === "Turin") return { fmc: b(0), bootloader: b(1), tee: b(2), snp: b(3), microcode: b(7) };
  return { bootloader: b(0), tee: b(1), snp: b(6), microcode: b(7) };
}

/** The product a report's CPUID family/model names (version 3+), as AMD's KDS and go-sev-guest map them. */
export function productFromCpuid(family: number, model: number): SnpProduct | undefined {
  if (family === 0x19) {
    if (model <= 0x0f) return "Milan";
    if ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)) return "Genoa";
  }
  if (family === 0x1a && model <= 0x11) return "Turin";
  return undefined;
}
