import type { GatewayErrorCode, PodStopReason } from "./types.js";

const STATUS: Record<GatewayErrorCode, number> = {
  INVALID_ROUTE: 500,
  HOST_CONFLICT: 500,
  MISSING_HOST: 400,
  UNKNOWN_HOST: 404,
  BODY_TOO_LARGE: 413,
  POD_NOT_RUNNING: 503,
  // Payment Required: the pod runs again once its channel is topped up.
  POD_STOPPED_FOR_FUNDS: 402,
  // Gone: a closed channel cannot be topped up; the pod is removed after its retention time.
  POD_CHANNEL_CLOSED: 410,
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

/** Connect-phase failures: the address we hold is stale or the container is gone. */
export const CONNECT_ERRORS: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ETIMEDOUT",
  "UND_ERR_CONNECT_TIMEOUT",
]);

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Maps socket errors (node:net, node:http) and undici's to the gateway's typed errors. */
export function toGatewayError(
  err: unknown,
  fallback: GatewayErrorCode = "UPSTREAM_UNREACHABLE",
): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const withCause = { cause: err };
  switch (code) {
    case "ECONNRESET":
    case "EPIPE":
    case "UND_ERR_SOCKET":
      return new GatewayError("UPSTREAM_RESET", "the pod closed the connection", withCause);
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
      return new GatewayError("UPSTREAM_TIMEOUT", "connecting to the pod timed out", withCause);
    case "UND_ERR_HEADERS_TIMEOUT":
      return new GatewayError("UPSTREAM_TIMEOUT", "the pod sent no response in time", withCause);
    case "UND_ERR_BODY_TIMEOUT":
      return new GatewayError("UPSTREAM_TIMEOUT", "the pod sent no data in time", withCause);
  }
  if (code && CONNECT_ERRORS.has(code))
    return new GatewayError(
      "UPSTREAM_UNREACHABLE",
      `the pod did not accept the connection (${code})`,
      withCause,
    );
  return new GatewayError(fallback, `the pod could not be reached: ${messageOf(err)}`, withCause);
}

/** What a stopped pod's hostnames answer. */
export function stoppedPodError(host: string, reason: PodStopReason): GatewayError {
  if (reason === "funds")
    return new GatewayError(
      "POD_STOPPED_FOR_FUNDS",
      `the pod at ${host} is stopped: its payment channel ran out of funds. It starts again when its publisher tops up the channel (tpod fund); its volumes are kept until the channel's notice period ends`,
    );
  if (reason === "underpaid")
    return new GatewayError(
      "POD_CHANNEL_CLOSED",
      `the pod at ${host} is stopped: its payment channel's rate was cut below the pod's price, so the provider closed it`,
    );
  return new GatewayError(
    "POD_CHANNEL_CLOSED",
    `the pod at ${host} is stopped: its payment channel was closed, and it will be removed`,
  );
}
