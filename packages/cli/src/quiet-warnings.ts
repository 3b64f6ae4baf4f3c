/**
 * Silences exactly one warning: Node's "ExperimentalWarning: SQLite is an experimental feature", which every
 * command that loads the provider's state store (node:sqlite) would print to a user's stderr. Every other
 * warning, experimental or not, is still printed. Imported first by main.ts, before anything can load SQLite.
 */

/** True for the warning node:sqlite emits when it loads. */
export function isSqliteExperimentalWarning(warning: string | Error, type?: unknown): boolean {
  const name = warning instanceof Error ? warning.name : typeof type === "string" ? type : undefined;
  const message = warning instanceof Error ? warning.message : warning;
  return name === "ExperimentalWarning" && /^SQLite is an experimental feature\b/.test(message);
}

const emitWarning = process.emitWarning;
process.emitWarning = function filtered(this: unknown, warning: string | Error, ...rest: unknown[]) {
  // rest[0] is the type, or an options object { type } (Node accepts both forms).
  const opt = rest[0];
  const type = typeof opt === "object" && opt !== null ? (opt as { type?: unknown }).type : opt;
  if (isSqliteExperimentalWarning(warning, type)) return;
  return (emitWarning as (...a: unknown[]) => void).call(process, warning, ...rest);
} as typeof process.emitWarning;
