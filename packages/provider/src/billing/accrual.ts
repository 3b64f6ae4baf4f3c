/**
 * The Payments contract's money math, reproduced exactly (contracts/Payments.sol `_accruedAt`, `claimable`,
 * `_claim`, the restart rule of `topUp`) so the billing loop never asks for more than the contract allows and can
 * predict when a deposit runs out without a round trip.
 *
 * Everything here starts from the channel as `getChannel` returns it: `since` and `accruedBefore` are the anchor
 * the contract keeps (opening, last rate change, or last top-up after a run-out), never the opening time assumed.
 */
import type { ChannelState } from "@trustedpods/chain";

/** The channel fields the math needs: @trustedpods/chain's ChannelState (getChannel) is their one declaration. */
export type ChannelTerms = Pick<
  ChannelState,
  "deposit" | "claimed" | "ratePerSecond" | "since" | "accruedBefore" | "closeAt"
>;

/** The smaller of two bigints (Math.min does not take bigints). */
export function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

/** The larger of two bigints (Math.max does not take bigints). */
export function maxBig(a: bigint, b: bigint): bigint {
  if (a > b) return a;
  return b;
}

/** Total accrued at time `t` (seconds), not capped by the deposit: `_accruedAt` in the contract. */
export function accruedAt(c: ChannelTerms, t: bigint): bigint {
  let end = t;
  if (c.closeAt !== 0n && end > c.closeAt) end = c.closeAt;
  let total = end > c.since ? c.ratePerSecond * (end - c.since) : 0n;
  total += c.accruedBefore;
  return total;
}

/** The highest cumulative amount `claim()` accepts at time `t`: min(deposit, accrued). */
export function claimCap(c: ChannelTerms, t: bigint): bigint {
  const a = accruedAt(c, t);
  // bigints: Math.min does not apply.
  if (a < c.deposit) return a;
  return c.deposit;
}

/** What a claim at `t` would add: the cap minus what was claimed (0n when nothing). */
export function claimableAt(c: ChannelTerms, t: bigint): bigint {
  const cap = claimCap(c, t);
  return cap > c.claimed ? cap - c.claimed : 0n;
}

/**
 * The first second at which the accrued amount reaches the deposit, or undefined when it never does (zero rate,
 * or accrual stops at the close time first).
 */
export function runOutTime(c: ChannelTerms): bigint | undefined {
  if (c.accruedBefore >= c.deposit) return c.since;
  if (c.ratePerSecond === 0n) return undefined;
  const left = c.deposit - c.accruedBefore;
  const t = c.since + (left + c.ratePerSecond - 1n) / c.ratePerSecond;
  if (c.closeAt !== 0n && t > c.closeAt) return undefined;
  return t;
}

/**
 * Whole seconds of service the deposit still pays for at `t` (what is left over the rate, rounded down), also
 * bounded by the close time when the channel is closing. 0n once it ran out or closed.
 */
export function remainingSeconds(c: ChannelTerms, t: bigint): bigint {
  const a = accruedAt(c, t);
  let left = a >= c.deposit ? 0n : c.ratePerSecond === 0n ? 2n ** 63n : (c.deposit - a) / c.ratePerSecond;
  if (c.closeAt !== 0n) {
    const toClose = c.closeAt > t ? c.closeAt - t : 0n;
    if (toClose < left) left = toClose;
  }
  return left;
}

/**
 * The channel after `topUp(amount)` mined at `t`, as the contract computes it: when the deposit had run out
 * (accrued ≥ deposit) and the amount is not zero, what is owed freezes at the old deposit and accrual restarts at
 * `t`, so the time the pod stood stopped for funds is never billed. Otherwise only the deposit grows.
 */
export function afterTopUp<T extends ChannelTerms>(c: T, t: bigint, amount: bigint): T {
  const deposit = c.deposit + amount;
  if (amount === 0n || !restartsOnTopUp(c, t)) return { ...c, deposit };
  return { ...c, deposit, accruedBefore: c.deposit, since: t };
}

/** Whether a top-up mined at `t` restarts accrual (the deposit had run out by then and the channel is open). */
export function restartsOnTopUp(c: ChannelTerms, t: bigint): boolean {
  return c.closeAt === 0n && accruedAt(c, t) >= c.deposit;
}
