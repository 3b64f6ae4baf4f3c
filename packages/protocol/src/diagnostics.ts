/**
 * Positioned diagnostics shared by the manifest, pricing and Compose readers: every problem a user can fix is
 * reported as `FILE:LINE:COL: message`, all of them at once.
 */

export type DiagnosticCode =
  | "YAML_SYNTAX"
  | "TOO_LARGE"
  | "UNKNOWN_KEY"
  | "MISSING_KEY"
  | "INVALID_TYPE"
  | "INVALID_VALUE"
  | "INVALID_QUANTITY"
  | "INVALID_NAME"
  | "INVALID_PORT"
  | "DUPLICATE"
  | "UNKNOWN_REFERENCE"
  | "CONFLICT"
  | "FILE_NOT_FOUND"
  | "UNSUPPORTED";

export type Severity = "error" | "warning";

export interface Diagnostic {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units like the yaml library counts them. */
  col: number;
  message: string;
  code: DiagnosticCode;
  severity: Severity;
}

/** `FILE:LINE:COL: message`, with `warning: ` before warnings' messages. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.severity === "warning" ? "warning: " : ""}${d.message}`;
}

/** Thrown when a manifest, pricing table or Compose file has errors; carries every error found. */
export class ManifestError extends Error {
  override readonly name = "ManifestError";
  readonly code = "INVALID_MANIFEST";
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join("\n"));
  }
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

const normalize = (s: string) => s.toLowerCase().replace(/[-_]/g, "");

/** The closest candidate by edit distance, ignoring case and `-`/`_` (so `working_dir` suggests `workingDir`). */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  if (input.length > 64) return undefined;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = normalize(c) === normalize(input) ? 0 : editDistance(input.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor(input.length / 3)));
  return bestDistance <= limit ? best : undefined;
}
