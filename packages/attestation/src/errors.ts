/**
 * Why evidence was rejected. Codes are stable (scripts and the wire error's details use them); the message
 * is for humans. `field` names the report field, certificate or policy rule that failed.
 */
export type AttestationErrorCode =
  /** The evidence or a certificate cannot be parsed (truncated, wrong size, bad encoding). */
  | "MALFORMED"
  /** A well-formed input of a kind or version this verifier does not handle. */
  | "UNSUPPORTED"
  /** The report or quote signature does not verify. */
  | "SIGNATURE_INVALID"
  /** The QE report signature or its binding to the attestation key does not hold (TDX/SGX). */
  | "QE_REPORT_INVALID"
  /** A certificate in the chain is not signed by the next one, or a required certificate is missing. */
  | "CHAIN_INVALID"
  /** The chain does not end at a root pinned in this code. */
  | "UNTRUSTED_ROOT"
  /** A certificate or collateral is outside its validity window at the verification time. */
  | "EXPIRED"
  /** The VCEK/VLEK or PCK certificate's extensions do not match the report (chip id, TCB, FMSPC...). */
  | "CERT_MISMATCH"
  /** A certificate is listed on a CRL. */
  | "REVOKED"
  /** DCAP collateral is malformed, wrongly signed, or for another platform. */
  | "COLLATERAL_INVALID"
  /** No TCB level in the collateral matches the platform (Intel: TCB not supported). */
  | "TCB_NOT_SUPPORTED"
  /** The report data is not the binding of the verifier's nonce and the provider's keys. */
  | "REPORT_DATA_MISMATCH"
  /** A policy rule rejected otherwise genuine evidence. */
  | "POLICY_VIOLATION"
  /** Attester side: this machine's kernel offers no TEE report interface (the field names what is missing). */
  | "TEE_UNAVAILABLE";

export class AttestationError extends Error {
  override readonly name = "AttestationError";
  constructor(
    readonly code: AttestationErrorCode,
    message: string,
    /** The field, certificate or policy rule that failed, e.g. "measurement", "vcek.hwID", "policy.debug". */
    readonly field?: string,
  ) {
    super(message);
  }
}

export function fail(code: AttestationErrorCode, message: string, field?: string): never {
  throw new AttestationError(code, message, field);
}
