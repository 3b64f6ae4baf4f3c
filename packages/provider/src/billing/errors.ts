import { RpcError, toWireError } from "@trustedpods/p2p";
import { ErrorCode, type Error as WireError } from "@trustedpods/protocol";

/** One way a channel fails the provider's terms: the field at fault and what to do about it. */
export interface ChannelProblem {
  /** The channel field (or request field) at fault, e.g. "deposit", "ratePerSecond", "royalties[listing 3]". */
  field: string;
  message: string;
}

/**
 * The payment channel does not satisfy the provider's terms: an RpcError with code ERROR_CODE_PAYMENT_REQUIRED,
 * so the daemon's handlers send it as is. Carries every problem found, so the publisher can fix them all at once;
 * `details.field` is the first, `details.fields` all of them (comma-separated).
 */
export class PaymentRequiredError extends RpcError {
  readonly wireCode = ErrorCode.PAYMENT_REQUIRED;
  readonly field: string;
  readonly problems: readonly ChannelProblem[];
  constructor(problems: readonly ChannelProblem[]) {
    if (problems.length === 0) throw new Error("PaymentRequiredError needs at least one problem");
    super(ErrorCode.PAYMENT_REQUIRED, problems.map((p) => p.message).join("; "), {
      details: { field: problems[0]!.field, fields: problems.map((p) => p.field).join(",") },
    });
    this.field = problems[0]!.field;
    this.problems = problems;
  }

  toWire(): WireError {
    return toWireError(this);
  }
}

/**
 * The chain could not be read (RPC down, timeout): not the publisher's fault and worth retrying. An RpcError with
 * ERROR_CODE_UNAVAILABLE. The provision check raises it instead of guessing, and nothing is started.
 */
export class ChainUnavailableError extends RpcError {
  readonly wireCode = ErrorCode.UNAVAILABLE;
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(ErrorCode.UNAVAILABLE, message, { details: { reason: "chain_unavailable" }, ...options });
  }
  toWire(): WireError {
    return toWireError(this);
  }
}

/** A billing call about a pod the billing module does not know (never checked, or already settled). */
export class UnknownPodError extends Error {
  override readonly name = "UnknownPodError";
  readonly code = "BILLING_UNKNOWN_POD";
}
