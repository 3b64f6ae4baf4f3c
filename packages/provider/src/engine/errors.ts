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
