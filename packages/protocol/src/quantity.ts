/**
 * Kubernetes-style resource quantities ("500m", "2", "1.5", "512Mi", "1Gi", "1e3") parsed exactly into
 * integers, never floats: prices are multiplied by these values and must not drift.
 */

export class QuantityError extends Error {
  override readonly name = "QuantityError";
  readonly code = "INVALID_QUANTITY";
}

const BINARY_SUFFIX: Record<string, bigint> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};

/** Decimal suffixes as powers of ten. */
const DECIMAL_SUFFIX: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

const QUANTITY_RE = /^([+]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d{1,3}))?$/;

/** An exact non-negative rational: value = numerator / 10^scale. */
interface Decimal {
  numerator: bigint;
  scale: number;
}

function parseDecimal(input: string): Decimal {
  const match = QUANTITY_RE.exec(input);
  if (!match) {
    throw new QuantityError(`"${input}" is not a quantity (examples: 500m, 2, 0.5, 512Mi, 1Gi)`);
  }
  const [, , digits = "", suffix, exponent] = match;
  const [whole = "", frac = ""] = digits.split(".");
  let numerator = BigInt(`${whole || "0"}${frac}`);
  let scale = frac.length;
  if (suffix !== undefined && suffix in BINARY_SUFFIX) {
    numerator *= BINARY_SUFFIX[suffix]!;
  } else {
    const power = exponent !== undefined ? Number(exponent) : DECIMAL_SUFFIX[suffix ?? ""]!;
    scale -= power;
  }
  if (scale < 0) {
    numerator *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { numerator, scale };
}

/** Converts to an integer count of 1/10^digits units, failing when the quantity is finer than that. */
function toScaledInteger(input: string, digits: number, unitName: string): bigint {
  const { numerator, scale } = parseDecimal(input.trim());
  if (scale <= digits) return numerator * 10n ** BigInt(digits - scale);
  const divisor = 10n ** BigInt(scale - digits);
  if (numerator % divisor !== 0n) {
    throw new QuantityError(`"${input}" is finer than one ${unitName}`);
  }
  return numerator / divisor;
}

/** CPU in millicores: "500m" → 500n, "2" → 2000n, "0.25" → 250n. */
export function parseCpu(input: string | number): bigint {
  return toScaledInteger(String(input), 3, "millicore");
}

/** Bytes: "512Mi" → 536870912n, "1G" → 1000000000n, "100" → 100n. */
export function parseBytes(input: string | number): bigint {
  return toScaledInteger(String(input), 0, "byte");
}

/** A whole count (GPUs, replicas): "1" → 1n; fractions are refused. */
export function parseCount(input: string | number): bigint {
  return toScaledInteger(String(input), 0, "unit");
}

/** Formats millicores the way people write them: 2000n → "2", 500n → "500m". */
export function formatCpu(millicores: bigint): string {
  return millicores % 1000n === 0n ? String(millicores / 1000n) : `${millicores}m`;
}

/** Formats bytes with the largest binary suffix that divides them exactly: 536870912n → "512Mi". */
export function formatBytes(bytes: bigint): string {
  for (const suffix of ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"] as const) {
    const unit = BINARY_SUFFIX[suffix]!;
    if (bytes >= unit && bytes % unit === 0n) return `${bytes / unit}${suffix}`;
  }
  return String(bytes);
}
