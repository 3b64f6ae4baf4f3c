import { formatTokenAmount, type Quote as WireQuote } from "@trustedpods/protocol";
import { PublisherError } from "./errors.js";
import { formatAmount, formatDuration, formatRate } from "./format.js";

/**
 * The provider daemon's default `billing.minDepositSeconds`: what a deposit is assumed to need to pay for when
 * the quote does not say (daemons older than Quote.min_deposit_seconds send 0).
 */
export const DEFAULT_MIN_DEPOSIT_SECONDS = 3600;
/** Bounds on the terms a quote may carry (the daemon's own config limits): anything above is malformed. */
const MAX_MIN_DEPOSIT_SECONDS = 10 * 365 * 86400;
const MAX_CONFIRMATIONS = 1000;
/**
 * Extra seconds a default or suggested deposit adds to the provider's minimum: the deposit starts paying when
 * the channel opens, and the provider checks what is left a few blocks later, so a deposit of exactly the
 * minimum would be refused. Named in DEPOSIT_TOO_SMALL's message so the suggested amount is explained.
 */
export const DEPOSIT_MARGIN_SECONDS = 60;
/**
 * What a default deposit pays for (when the provider's minimum is shorter): several hours, so that a first pod
 * does not stop, and lose its volumes, minutes after deploy. Whatever is not used comes back on close.
 */
export const DEFAULT_RUN_SECONDS = 6 * 3600;
/** Less paid time left than this and deploy, status and pods warn that the pod will stop soon. */
export const LOW_RUNWAY_SECONDS = 3600;

/**
 * Rounds an amount up to `digits` significant decimal digits of the token, so a suggested deposit reads like
 * "0.37" rather than "0.366000000000000001".
 */
export function roundUpAmount(amount: bigint, digits = 2): bigint {
  if (amount <= 0n) return 0n;
  const len = amount.toString().length;
  if (len <= digits) return amount;
  const unit = 10n ** BigInt(len - digits);
  return ((amount + unit - 1n) / unit) * unit;
}

export interface DepositCheck {
  ratePerSecond: bigint;
  /** The funds offered, in token base units; undefined: the default (DEFAULT_RUN_SECONDS, at least the minimum plus the margin). */
  funds?: bigint;
  /** The provider's minimum paid run time (the quote's terms); default DEFAULT_MIN_DEPOSIT_SECONDS. */
  minDepositSeconds?: number;
  decimals: number;
  symbol?: string;
  /** How the caller sets the funds, named in the error's fix (default the CLI's `--funds`). */
  fundsFlag?: string;
}

/** Whole seconds a deposit pays for at a rate (undefined at rate 0: it never runs out). */
export function paidSeconds(deposit: bigint, ratePerSecond: bigint): bigint | undefined {
  return ratePerSecond > 0n ? deposit / ratePerSecond : undefined;
}

/**
 * The deposit to open the channel with: the funds given, or by default what pays for DEFAULT_RUN_SECONDS (at
 * least the minimum run time plus the margin), rounded up to two significant digits. Funds that do not pay for
 * the minimum plus the margin fail with DEPOSIT_TOO_SMALL naming the minimum, the margin and why, and the
 * amount that would do (rounded up).
 */
export function depositFor(c: DepositCheck): bigint {
  const min = BigInt(c.minDepositSeconds ?? DEFAULT_MIN_DEPOSIT_SECONDS);
  const margin = BigInt(DEPOSIT_MARGIN_SECONDS);
  const needSeconds = min + margin;
  const need = c.ratePerSecond * needSeconds;
  if (c.funds === undefined) {
    const run = needSeconds > BigInt(DEFAULT_RUN_SECONDS) ? needSeconds : BigInt(DEFAULT_RUN_SECONDS);
    return roundUpAmount(c.ratePerSecond * run);
  }
  if (c.funds < need) {
    const unit = { symbol: c.symbol ?? "", decimals: c.decimals };
    const offered = c.ratePerSecond === 0n ? 0n : c.funds / c.ratePerSecond;
    const minAmount = c.ratePerSecond * min;
    const suggested = roundUpAmount(need);
    const text = formatTokenAmount(suggested, c.decimals);
    const minText = formatTokenAmount(minAmount, c.decimals);
    const flag = c.fundsFlag ?? "--funds";
    throw new PublisherError(
      "DEPOSIT_TOO_SMALL",
      `deposit too small: the provider wants ${min} s paid in advance (${formatAmount(minAmount, unit)}), and deploy adds a ${margin} s margin because the deposit starts paying when the channel opens, a few blocks before the provider checks it: ${needSeconds} s at ${formatRate(c.ratePerSecond, unit)} is ${formatAmount(need, unit)}. You offered ${offered} s (${formatAmount(c.funds, unit)}); use ${flag} ${text} (${needSeconds} s, rounded up) or more. Without ${flag}, deploy pays for ${formatDuration(DEFAULT_RUN_SECONDS)}.`,
      {
        field: "funds",
        details: {
          minSeconds: min.toString(),
          marginSeconds: margin.toString(),
          needSeconds: needSeconds.toString(),
          minAmount: minAmount.toString(),
          minAmountFormatted: minText,
          needAmount: need.toString(),
          offeredSeconds: offered.toString(),
          suggested: suggested.toString(),
          suggestedFormatted: text,
          ratePerSecond: c.ratePerSecond.toString(),
        },
      },
    );
  }
  return c.funds;
}

/** The provider's billing terms a deploy plans with, from its quote. */
export interface QuotedTerms {
  /** Shortest paid run time a new channel's deposit must cover (the fallback when the quote said 0). */
  minDepositSeconds: number;
  /** Blocks on top of the channel's block the provider waits for before it accepts the channel. */
  confirmations: number;
  /** Shortest close notice the provider accepts (signed in the quote). */
  minNoticeSeconds: number;
  /** False when the quote carried no minimum (an older daemon) and `minDepositSeconds` is the fallback. */
  quoted: boolean;
}

/**
 * The terms of a checked wire quote. A provider that sends no minimum (0, daemons before the field) gets
 * `fallbackMinDepositSeconds` (default DEFAULT_MIN_DEPOSIT_SECONDS). Values beyond the daemon's own config
 * bounds are a malformed quote.
 */
export function quotedTerms(
  w: Pick<WireQuote, "minDepositSeconds" | "confirmations" | "minNoticeSeconds">,
  fallbackMinDepositSeconds = DEFAULT_MIN_DEPOSIT_SECONDS,
): QuotedTerms {
  if (w.minDepositSeconds > BigInt(MAX_MIN_DEPOSIT_SECONDS))
    throw new PublisherError(
      "QUOTE_INVALID",
      `the provider's quote asks for a minimum run time of ${w.minDepositSeconds} s (more than 10 years)`,
      { field: "minDepositSeconds" },
    );
  if (w.confirmations > MAX_CONFIRMATIONS)
    throw new PublisherError(
      "QUOTE_INVALID",
      `the provider's quote asks for ${w.confirmations} confirmations (at most ${MAX_CONFIRMATIONS})`,
      { field: "confirmations" },
    );
  const quoted = w.minDepositSeconds > 0n;
  return {
    minDepositSeconds: quoted ? Number(w.minDepositSeconds) : fallbackMinDepositSeconds,
    confirmations: w.confirmations,
    minNoticeSeconds: Number(w.minNoticeSeconds),
    quoted,
  };
}

/** One line for progress output: the terms and what the default deposit pays for. */
export function describeTerms(t: QuotedTerms, ratePerSecond: bigint, format: (a: bigint) => string): string {
  const min = `minimum paid time ${t.minDepositSeconds} s (${format(ratePerSecond * BigInt(t.minDepositSeconds))})${t.quoted ? "" : " assumed: the provider's quote does not say"}`;
  return `${min}, notice ≥ ${t.minNoticeSeconds} s, ${t.confirmations} confirmation${t.confirmations === 1 ? "" : "s"}`;
}
