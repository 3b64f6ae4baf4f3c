import { accruedAt, claimableAt, remainingSeconds, runOutTime } from "./accrual.js";
import { UnknownPodError } from "./errors.js";
import type { BillingStore, PodState, Reserved, UsageTotals } from "./store.js";
import type { Hex } from "./types.js";

/** What a publisher sees about its pod's money (the daemon's status handler includes it). */
export interface BillingStatus {
  podKey: string;
  podId: Hex;
  publisher: Hex;
  channelId: Hex;
  token: Hex;
  state: PodState;
  /** Token base units per second, as the chain last showed it. */
  ratePerSecond: bigint;
  deposit: bigint;
  claimed: bigint;
  /** Accrued at `chainTime` (capped by the deposit: what the provider can ever get for it). */
  accrued: bigint;
  /** What the provider could claim now on top of `claimed`. */
  claimable: bigint;
  /** Seconds of service the deposit still pays for (0 when stopped or out of funds). */
  remainingSeconds: bigint;
  /** Chain second at which the deposit runs out (undefined when it never does). */
  runsOutAt: bigint | undefined;
  /** 0n while open. */
  closeAt: bigint;
  noticeSeconds: bigint;
  /** Chain second from which the pod is removed if nothing changes (stopped pods). */
  removeAt: bigint | null;
  /** The block and time the numbers above were read at (undefined before the first read). */
  observedBlock: bigint | undefined;
  chainTime: bigint | undefined;
  warnings: string[];
  lastError: string | null;
  reserved: Reserved & {
    /** Chain seconds the pod has been provisioned (running) in total. */
    seconds: bigint;
  };
  usage: UsageTotals;
  claims: { cumulative: bigint; status: string; txHash: Hex | null }[];
}

/** Seconds covered by the reservation intervals, open ones counted up to `now`. */
export function reservedSeconds(store: BillingStore, podKey: string, now: bigint | undefined): bigint {
  let total = 0n;
  for (const r of store.reservations(podKey)) {
    if (r.start === null) continue;
    const end = r.end ?? now ?? r.start;
    if (end > r.start) total += end - r.start;
  }
  return total;
}

export function billingStatus(store: BillingStore, podKey: string): BillingStatus {
  const pod = store.getPod(podKey);
  if (!pod) throw new UnknownPodError(`billing knows no pod ${podKey}`);
  const o = pod.observed;
  const t = o?.time ?? 0n;
  const terms = o ?? {
    deposit: 0n,
    claimed: 0n,
    ratePerSecond: pod.ratePerSecond,
    since: 0n,
    accruedBefore: 0n,
    closeAt: 0n,
    noticeSeconds: 0n,
  };
  const accruedRaw = o ? accruedAt(terms, t) : 0n;
  const stopped = pod.state !== "running" && pod.state !== "checked";
  return {
    podKey,
    podId: pod.podId,
    publisher: pod.publisher,
    channelId: pod.channelId,
    token: pod.token,
    state: pod.state,
    ratePerSecond: terms.ratePerSecond,
    deposit: terms.deposit,
    claimed: terms.claimed,
    accrued: accruedRaw < terms.deposit ? accruedRaw : terms.deposit,
    claimable: o ? claimableAt(terms, t) : 0n,
    remainingSeconds: o && !stopped ? remainingSeconds(terms, t) : 0n,
    runsOutAt: o ? runOutTime(terms) : undefined,
    closeAt: terms.closeAt,
    noticeSeconds: terms.noticeSeconds,
    removeAt:
      pod.removeAt ??
      ((pod.state === "deleted" || pod.state === "stopped_rate") && pod.stoppedAt !== null && o
        ? pod.stoppedAt + o.noticeSeconds
        : null),
    observedBlock: o?.block,
    chainTime: o?.time,
    warnings: pod.warnings,
    lastError: pod.lastError,
    reserved: { ...pod.reserved, seconds: reservedSeconds(store, podKey, o?.time) },
    usage: store.usageTotals(podKey),
    claims: store
      .claims(podKey)
      .slice(-10)
      .map((c) => ({ cumulative: c.cumulative, status: c.status, txHash: c.txHash })),
  };
}
