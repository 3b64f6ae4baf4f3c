/**
 * Why a provision or an update failed, as the publisher sees it: a typed code for the class of failure (the
 * engine, the image pipeline, the gateway) and the underlying reason, with what must not leave the provider
 * removed: the pod's secret values and env values, and the provider's own host paths.
 */
import { RpcError } from "@trustedpods/p2p";
import { ErrorCode } from "@trustedpods/protocol";
import { EngineError, engineReason } from "../engine/errors.js";

/** Where in a provision the failure happened; decides the code of an error that carries none of its own. */
export type ProvisionStage = "image" | "secret" | "engine" | "gateway";

/** Directories of the container engine on any host: their paths say nothing the publisher can act on. */
const ENGINE_HOST_DIRS = [
  "/var/lib/containers",
  "/run/containers",
  "/var/run/containers",
  "/run/libpod",
  "/var/run/libpod",
  "/usr/libexec/podman",
  "/dev/shm",
];

/** Shorter values than this are too common to redact without mangling the message (e.g. "1", "yes"). */
const MIN_REDACTED_CHARS = 4;
const MAX_REASON_CHARS = 600;
export const REDACTED = "[redacted]";
export const HOST_PATH = "<provider path>";

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Collects what must not appear in a reason, then cleans reasons of it. */
export class Redactor {
  private readonly values = new Set<string>();
  private readonly paths = new Set<string>(ENGINE_HOST_DIRS);

  /** A secret or env value: the whole value, and each of its lines (a config file's line may be quoted alone). */
  addValue(value: string | Uint8Array): void {
    const text = typeof value === "string" ? value : new TextDecoder().decode(value);
    for (const part of [text, text.trim(), ...text.split(/\r?\n/).map((l) => l.trim())]) {
      if (part.length >= MIN_REDACTED_CHARS) this.values.add(part);
    }
  }

  addPath(dir: string | undefined): void {
    const d = dir?.replace(/\/+$/, "");
    if (d?.startsWith("/") && d.length > 1) this.paths.add(d);
  }

  clean(reason: string): string {
    let out = reason;
    // Longest first: a value that contains another is redacted whole.
    for (const v of [...this.values].sort((a, b) => b.length - a.length)) out = out.split(v).join(REDACTED);
    for (const p of [...this.paths].sort((a, b) => b.length - a.length)) {
      // The directory and anything under it, up to a character that ends a path in a message.
      out = out.replace(
        new RegExp(`${escapeRegExp(p)}(?=[/\\s"'\`:,;)\\]]|$)[^\\s"'\`:,;)\\]]*`, "g"),
        HOST_PATH,
      );
    }
    // Control characters (a terminal escape from an engine's output) and runs of whitespace go.
    out = out
      .replace(/[\p{Cc}]+/gu, " ")
      .replace(/\s{2,}/g, " ")
      .trim();
    return out.length <= MAX_REASON_CHARS ? out : `${out.slice(0, MAX_REASON_CHARS - 1)}…`;
  }
}

const STAGE_CODE: Record<ProvisionStage, ErrorCode> = {
  image: ErrorCode.IMAGE_FAILED,
  secret: ErrorCode.INTERNAL,
  engine: ErrorCode.ENGINE_FAILED,
  gateway: ErrorCode.GATEWAY_FAILED,
};

const STAGE_WORDS: Record<ProvisionStage, string> = {
  image: "the image could not be prepared",
  secret: "a secret could not be prepared",
  engine: "the container engine could not start the pod",
  gateway: "the gateway could not route the pod",
};

function engineCode(code: EngineError["code"]): ErrorCode {
  switch (code) {
    case "INVALID_SPEC":
      return ErrorCode.INVALID_ARGUMENT;
    case "ENGINE_UNAVAILABLE":
      return ErrorCode.UNAVAILABLE;
    case "NOT_FOUND":
      return ErrorCode.NOT_FOUND;
    case "IMAGE_LOAD_FAILED":
      return ErrorCode.IMAGE_FAILED;
    default:
      return ErrorCode.ENGINE_FAILED;
  }
}

/**
 * A failure of a provision or update as the RpcError sent to the publisher. Errors that already carry a wire
 * code keep it (their message is cleaned all the same); every other one gets the code of the stage it failed in.
 */
export function provisionFailure(err: unknown, stage: ProvisionStage | null, redactor: Redactor): RpcError {
  if (err instanceof RpcError) {
    const message = redactor.clean(err.message);
    return message === err.message
      ? err
      : new RpcError(err.code, message, { details: { ...err.details }, cause: err });
  }
  const name = (err as Error)?.name;
  if (name === "AbortError" || name === "TimeoutError")
    return new RpcError(ErrorCode.DEADLINE_EXCEEDED, "provisioning took too long or the caller went away");
  if (err instanceof EngineError) {
    const words = err.code === "IMAGE_LOAD_FAILED" ? STAGE_WORDS.image : STAGE_WORDS.engine;
    return new RpcError(engineCode(err.code), `${words}: ${redactor.clean(err.message)}`, {
      details: { reason: err.code.toLowerCase() },
      cause: err,
    });
  }
  if (name === "GatewayError") {
    const code = String((err as { code?: string }).code);
    const message = redactor.clean((err as Error).message);
    if (code === "HOST_CONFLICT" || code === "INVALID_ROUTE")
      return new RpcError(
        code === "HOST_CONFLICT" ? ErrorCode.ALREADY_EXISTS : ErrorCode.INVALID_ARGUMENT,
        message,
        {
          details: { field: "hostname", reason: code.toLowerCase() },
        },
      );
    return new RpcError(ErrorCode.GATEWAY_FAILED, `${STAGE_WORDS.gateway}: ${message}`, {
      details: { reason: code.toLowerCase() },
      cause: err,
    });
  }
  const reason = redactor.clean(engineReason(err));
  if (!stage) return new RpcError(ErrorCode.INTERNAL, `provisioning failed: ${reason}`, { cause: err });
  return new RpcError(STAGE_CODE[stage], `${STAGE_WORDS[stage]}: ${reason}`, {
    details: { reason: `${stage}-failed` },
    cause: err,
  });
}
