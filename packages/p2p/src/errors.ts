import { create } from "@bufbuild/protobuf";
import { ErrorCode, ErrorSchema, type Error as WireError } from "@trustedpods/protocol";

// Bounds on what one error carries over the wire, so an Error frame always fits well inside the
// smallest frame limit (see ERROR_FRAME_ALLOWANCE in frame.ts) whatever a handler put in it.
const MAX_ERROR_MESSAGE_CHARS = 1024;
const MAX_ERROR_DETAILS = 16;
const MAX_DETAIL_KEY_CHARS = 64;
const MAX_DETAIL_VALUE_CHARS = 200;

/**
 * A failure with a wire error code. Thrown by client calls (`remote` says whether the peer sent it or it was
 * raised locally, e.g. a local timeout) and thrown by handlers to send a typed error to the caller.
 */
export class RpcError extends Error {
  override readonly name = "RpcError";
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, string>>;
  readonly remote: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: Record<string, string>; remote?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
    this.remote = options.remote ?? false;
  }

  /** The enum name without prefix, e.g. "UNAUTHENTICATED", for logs and messages. */
  get codeName(): string {
    return errorCodeName(this.code);
  }

  /** `details.reason`, which the signed-request checks and the framework set to a stable keyword. */
  get reason(): string | undefined {
    return this.details.reason;
  }
}

export function errorCodeName(code: ErrorCode): string {
  return ErrorCode[code] ?? `CODE_${code}`;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The wire form of an RpcError, truncated to the framework's bounds. */
export function toWireError(error: RpcError): WireError {
  const details: Record<string, string> = {};
  for (const [key, value] of Object.entries(error.details).slice(0, MAX_ERROR_DETAILS)) {
    details[truncate(key, MAX_DETAIL_KEY_CHARS)] = truncate(value, MAX_DETAIL_VALUE_CHARS);
  }
  return create(ErrorSchema, {
    code: error.code,
    message: truncate(error.message, MAX_ERROR_MESSAGE_CHARS),
    details,
  });
}

/** An RpcError from an Error frame a peer sent; an unknown code number becomes UNSPECIFIED. */
export function fromWireError(wire: WireError): RpcError {
  const code = ErrorCode[wire.code] === undefined ? ErrorCode.UNSPECIFIED : wire.code;
  const details: Record<string, string> = {};
  for (const [key, value] of Object.entries(wire.details).slice(0, MAX_ERROR_DETAILS)) {
    details[truncate(key, MAX_DETAIL_KEY_CHARS)] = truncate(value, MAX_DETAIL_VALUE_CHARS);
  }
  return new RpcError(code, truncate(wire.message, MAX_ERROR_MESSAGE_CHARS), { details, remote: true });
}

/** Raised for a peer key file that is missing, malformed or readable by others. */
export class KeyFileError extends Error {
  override readonly name = "KeyFileError";
  constructor(
    message: string,
    readonly code: "KEY_FILE_MALFORMED" | "KEY_FILE_PERMISSIONS" | "KEY_FILE_MISSING",
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
