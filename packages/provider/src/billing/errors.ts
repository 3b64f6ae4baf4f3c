import { create } from "@bufbuild/protobuf";
import { ErrorCode, ErrorSchema, type Error as WireError } from "@trustedpods/protocol";

/** One way a channel fails the provider's terms: the field at fault and what to do about it. */
export interface ChannelProblem {
  /** The channel field (or request field) at fault, e.g. "deposit", "ratePerSecond", "royalties[3]". */
  field: string;
  message: string;
}

/**
 * The payment channel does not satisfy the provider's terms. Carries every problem found, so the publisher can fix
 * them all at once; `field` is the first. Maps to the wire code ERROR_CODE_PAYMENT_REQUIRED.
 */
export class PaymentRequiredError extends Error {
  override readonly name = "PaymentRequiredError";
  readonly code = "PAYMENT_REQUIRED";
  readonly wireCode = ErrorCode.PAYMENT_REQUIRED;
  readonly field: string;
  constructor(readonly problems: readonly ChannelProblem[]) {
    super(problems.map((p) => p.message).join("; "));
    if (problems.length === 0) throw new Error("PaymentRequiredError needs at least one problem");
    this.field = problems[0]!.field;
  }

  /** Machine-readable details for the wire: `field` (the first) and `fields` (all, comma-separated). */
  get details(): Record<string, string> {
    return { field: this.field, fields: this.problems.map((p) => p.field).join(",") };
  }

  toWire(): WireError {
    return create(ErrorSchema, { code: this.wireCode, message: this.message, details: this.details });
  }
}

/**
 * The chain could not be read (RPC down, timeout): not the publisher's fault and worth retrying. Maps to
 * ERROR_CODE_UNAVAILABLE. The provision check raises it instead of guessing, and nothing is started.
 */
export class ChainUnavailableError extends Error {
  override readonly name = "ChainUnavailableError";
  readonly code = "CHAIN_UNAVAILABLE";
  readonly wireCode = ErrorCode.UNAVAILABLE;
  toWire(): WireError {
    return create(ErrorSchema, { code: this.wireCode, message: this.message, details: {} });
  }
}

/** A billing call about a pod the billing module does not know (never checked, or already settled). */
export class UnknownPodError extends Error {
  override readonly name = "UnknownPodError";
  readonly code = "BILLING_UNKNOWN_POD";
  readonly wireCode = ErrorCode.NOT_FOUND;
}
