/**
 * Why an expected launch measurement cannot be computed. Codes are stable (the CLI prints them and scripts
 * match on them); the message is for humans.
 */
export type MeasureErrorCode =
  /** The firmware image is truncated, not page-aligned, or its GUIDed footer table or metadata is corrupt. */
  | "OVMF_MALFORMED"
  /** The firmware has no SEV footer table or no SEV-ES reset block: it was not built to boot an SEV guest. */
  | "OVMF_NOT_SEV"
  /** SNP mode, but the firmware carries no SEV-SNP metadata (pages to pre-validate, secrets, CPUID). */
  | "OVMF_NO_SNP_METADATA"
  /** A kernel was given, but the firmware has no place for the kernel hashes table, so it cannot measure it. */
  | "OVMF_NO_KERNEL_HASHES"
  /** The firmware's metadata names a section type this code does not know how to measure. */
  | "OVMF_UNKNOWN_SECTION"
  /** The firmware carries no TDX metadata (TDVF descriptor): it was not built to boot a TDX guest. */
  | "TDVF_NO_METADATA"
  /** The kernel given for a TDX direct boot is not a PE/COFF image (no EFI stub) or its headers are corrupt. */
  | "KERNEL_NOT_PE"
  /** The vCPU type is not one of the known QEMU CPU models. */
  | "UNKNOWN_VCPU_TYPE"
  /** An argument is out of range or inconsistent with the others. */
  | "INVALID_ARGUMENT";

export class MeasureError extends Error {
  override readonly name = "MeasureError";
  constructor(
    readonly code: MeasureErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function measureFail(code: MeasureErrorCode, message: string): never {
  throw new MeasureError(code, message);
}
