/**
 * Structured logs (pino, JSON lines on stderr). Never log secrets, keys or request bodies: the redaction
 * paths below censor the field names that could hold them even if a call site slips.
 */
import { type Logger, pino } from "pino";

export type { Logger };

export const REDACT_PATHS = [
  "secret",
  "secrets",
  "*.secret",
  "*.secrets",
  "key",
  "privateKey",
  "*.privateKey",
  "*.key",
  "password",
  "*.password",
  "body",
  "*.body",
  "manifest",
  "*.manifest",
  "files",
  "*.files",
  "env",
  "*.env",
  "signature",
  "*.signature",
  "plaintext",
  "*.plaintext",
];

export function createLogger(level: string, destination: NodeJS.WritableStream | number = 2): Logger {
  return pino(
    {
      level,
      base: { service: "tpod-provider" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    typeof destination === "number" ? pino.destination({ fd: destination, sync: true }) : destination,
  );
}
