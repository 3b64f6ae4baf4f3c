export type EngineErrorCode =
  | "INVALID_SPEC"
  | "NOT_FOUND"
  | "ENGINE_UNAVAILABLE"
  | "ENGINE_FAILURE"
  | "IMAGE_LOAD_FAILED"
  | "SECRETS_MISSING"
  | "FIREWALL_FAILED";

export class EngineError extends Error {
  readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EngineError";
    this.code = code;
  }
}

/** The engine's own words for a Docker-API error (its JSON body's message), else the error's message. */
export function engineReason(err: unknown): string {
  const e = err as { json?: { message?: unknown }; message?: unknown } | null | undefined;
  const fromBody = typeof e?.json?.message === "string" ? e.json.message : undefined;
  const raw = fromBody ?? (typeof e?.message === "string" ? e.message : String(err));
  // dockerode prefixes "(HTTP code 500) server error - ": the status says nothing to the publisher.
  return raw.replace(/^\(HTTP code \d+\)\s*[a-z ]*-\s*/i, "");
}
