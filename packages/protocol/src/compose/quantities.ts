/** Compose byte sizes ("512m", "1gb", "2048k", 1073741824): binary multiples, as Docker reads them. */
export function parseComposeBytes(text: string): bigint | undefined {
  const m = /^(\d+)(?:\.(\d+))?\s*([bkmgt]?)b?$/i.exec(text.trim());
  if (!m) return undefined;
  const [, whole = "0", frac = "", unit = ""] = m;
  const shift = { "": 0n, b: 0n, k: 10n, m: 20n, g: 30n, t: 40n }[unit.toLowerCase()] ?? 0n;
  const scale = 10n ** BigInt(frac.length);
  return ((BigInt(whole) * scale + BigInt(frac || "0")) << shift) / scale;
}

/** Compose cpus ("0.5", 2): millicores, rounded up to whole millicores. */
export function parseComposeCpus(text: string): bigint | undefined {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!m) return undefined;
  const [, whole = "0", frac = ""] = m;
  const f = frac.slice(0, 3).padEnd(3, "0");
  const rest = frac.length > 3 && /[1-9]/.test(frac.slice(3)) ? 1n : 0n;
  return BigInt(whole) * 1000n + BigInt(f) + rest;
}
