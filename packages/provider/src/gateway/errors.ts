import type { GatewayErrorCode } from "./types.js";

const STATUS: Record<GatewayErrorCode, number> = {
  INVALID_ROUTE: 500,
  HOST_CONFLICT: 500,
  MISSING_HOST: 400,
  UNKNOWN_HOST: 404,
  BODY_TOO_LARGE: 413,
  POD_NOT_RUNNING: 503,
  POD_START_FAILED: 503,
  POD_START_TIMEOUT: 504,
  UPSTREAM_UNREACHABLE: 502,
  UPSTREAM_RESET: 502,
  UPSTREAM_TIMEOUT: 504,
  GATEWAY_CLOSING: 503,
};

/** Errors the gateway answers with (HTTP status from the code) or throws to the daemon (route errors). */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  get status(): number {
    return STATUS[this.code];
  }

  /** Clients may retry these after Retry-After: the pod is starting, stopped or failed to start. */
  get retryable(): boolean {
    return (
      this.code === "POD_START_FAILED" || this.code === "POD_START_TIMEOUT" || this.code === "POD_NOT_RUNNING"
    );
  }
}

/** Body of every response the gateway writes itself: the shape of trustedpods.v1.Error, codes as strings. */
export function errorBody(err: GatewayError): string {
  return `${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`;
}
