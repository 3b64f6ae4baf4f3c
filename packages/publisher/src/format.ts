/**
 * How amounts, durations and chain times read for people, in the CLI and the web app alike: one format
 * everywhere. Scripts get raw base units and seconds (`--json`); these helpers are for humans only.
 */
import { formatTokenAmount } from "@trustedpods/protocol";

/** What formatting an amount needs to know about its token. */
export interface TokenUnit {
  symbol: string;
  decimals: number;
}

/** "0.0019 TPT" for 1900000000000000n of an 18-decimal TPT: exact, trailing zeros trimmed, with the symbol. */
export function formatAmount(amount: bigint, token: TokenUnit): string {
  return formatTokenAmount(amount, token.decimals, token.symbol);
}

/** An amount per hour from a rate in base units per second: "0.0036 TPT/hour". */
export function formatRate(ratePerSecond: bigint, token: TokenUnit): string {
  return `${formatAmount(ratePerSecond * 3600n, token)}/hour`;
}

/** "3 h 20 min" style, for run time left and paid for. */
export function formatDuration(seconds: bigint | number): string {
  const big = BigInt(seconds);
  const s = Number(big < 0n ? 0n : big > 10n ** 12n ? 10n ** 12n : big);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

/** A chain timestamp (seconds) as an ISO 8601 UTC time, e.g. "2026-11-22T01:02:03Z". */
export function formatChainTime(seconds: bigint | number): string {
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.000Z$/, "Z");
}
