/** Go-style durations ("30s", "1m30s", "500ms", "1.5h") parsed exactly into milliseconds. */

export class DurationError extends Error {
  override readonly name = "DurationError";
  readonly code = "INVALID_DURATION";
}

const UNIT_NS: Record<string, bigint> = {
  h: 3_600_000_000_000n,
  m: 60_000_000_000n,
  s: 1_000_000_000n,
  ms: 1_000_000n,
  us: 1_000n,
  µs: 1_000n,
  ns: 1n,
};

const PART_RE = /(\d+)(?:\.(\d+))?(ms|us|µs|ns|h|m|s)/y;

/** "1m30s" → 90000n. A bare integer counts seconds. Refuses negatives and sub-millisecond remainders. */
export function parseDuration(input: string | number): bigint {
  const text = String(input).trim();
  if (/^\d{1,15}$/.test(text)) return BigInt(text) * 1000n;
  if (text === "" || text.length > 64)
    throw new DurationError(`"${text}" is not a duration (examples: 30s, 1m30s, 500ms)`);
  let ns = 0n;
  PART_RE.lastIndex = 0;
  while (PART_RE.lastIndex < text.length) {
    const start = PART_RE.lastIndex;
    const m = PART_RE.exec(text);
    if (!m || m.index !== start)
      throw new DurationError(`"${text}" is not a duration (examples: 30s, 1m30s, 500ms)`);
    const [, whole = "0", frac = "", unit = "s"] = m;
    const unitNs = UNIT_NS[unit]!;
    ns += BigInt(whole) * unitNs + (BigInt(frac || "0") * unitNs) / 10n ** BigInt(frac.length);
  }
  if (ns % 1_000_000n !== 0n) throw new DurationError(`"${text}" is finer than one millisecond`);
  return ns / 1_000_000n;
}

/** 90000n → "1m30s", 1500n → "1s500ms", 0n → "0s". parseDuration(formatDuration(x)) === x. */
export function formatDuration(ms: bigint): string {
  if (ms === 0n) return "0s";
  let rest = ms;
  let out = "";
  for (const [unit, size] of [
    ["h", 3_600_000n],
    ["m", 60_000n],
    ["s", 1_000n],
    ["ms", 1n],
  ] as const) {
    const n = rest / size;
    if (n > 0n) out += `${n}${unit}`;
    rest %= size;
  }
  return out;
}
