import type { PodStats } from "../engine/types.js";
import type { PodStopReason } from "../gateway/types.js";

export type Hex = `0x${string}`;

/**
 * The provision check's request is the daemon's seam's (src/billing-seam.ts): ChannelGate implements that
 * PaymentGate; these names stay for billing's own callers.
 */
export type {
  PaymentChannelRef as ChannelRefLike,
  ProvisionPaymentRequest as ProvisionCheck,
} from "../billing-seam.js";

/** The controls billing needs from the daemon. Every method must be idempotent. */
export interface PodLifecycle {
  /**
   * Stop every container; keep volumes, images and the pod's definition. `reason`: the deposit ran out (a
   * top-up restarts it), the channel closed, or the channel pays less than the running pod's price; the gateway
   * tells the pod's visitors which. `detail` replaces the reason's standard message for the publisher.
   */
  stop(podId: string, reason: PodStopReason, detail?: string): Promise<void>;
  start(podId: string): Promise<void>;
  /** Delete everything of the pod. */
  remove(podId: string): Promise<void>;
}

/** Where usage samples come from: the engine (Engine satisfies this). */
export interface UsageSource {
  stats(podId: string): Promise<PodStats>;
}

/** pino-compatible subset; the default logs nothing. */
export interface BillingLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLogger: BillingLogger = { info() {}, warn() {}, error() {} };

/** The provider's payment terms and the loop's timing. */
export interface BillingConfig {
  /** Blocks on top of the block the provider reads channels at (0 = latest). */
  confirmations: number;
  /** A new channel's free deposit must pay at least this many seconds at its rate. */
  minRunSeconds: bigint;
  /** Shortest notice period accepted. */
  minNoticeSeconds: bigint;
  /** Warn when the deposit covers less than this many seconds. */
  warnSeconds: bigint;
  /** How often the billing loop runs (ms of wall time; what it bills is measured in chain time). */
  claimIntervalMs: number;
  /**
   * While a pod is stopped for funds, how often its channel is read (no transaction) for a top-up, which then runs
   * a tick at once. Accrual restarts at the top-up, so this bounds what a publisher pays before its pod runs
   * again. 0 = only at the claim interval.
   */
  restartPollMs: number;
  /** Do not claim less than this (token base units), except the final claim of a stopped or closed pod. */
  minClaimAmount: bigint;
  /**
   * Do not claim a channel before it owes this many seconds of its rate, except a final claim: a floor on how often
   * each channel is claimed, whatever wakes the loop (every provision does). Where gas is not priced
   * (`tokenUnitsPerEther` unset, e.g. a devnet) it is what keeps claims from costing more than they collect.
   */
  minClaimIntervalSeconds: bigint;
  /**
   * The provider's price of its pricing token: token base units one ether (10^18 wei of the chain's native
   * currency) is worth, so claims can be weighed against their gas. undefined: gas is not priced, every due claim
   * is sent (batched); set it on any chain where gas costs money.
   */
  tokenUnitsPerEther: bigint | undefined;
  /** A claim transaction must collect at least this many times what its gas costs (1 = break even). */
  minClaimReturn: bigint;
  /** Most channels claimed in one transaction (claimBatch); bounded by the block gas limit (~12,000 gas each). */
  maxClaimBatch: number;
  /** How often usage is sampled from the engine (ms). */
  meterIntervalMs: number;
  /** Keep a closed pod's volumes this long after the close time before removing it (chain seconds). */
  retainAfterCloseSeconds: bigint;
  /** Give up the rest of the notice (providerClose) when the publisher deletes the pod, so billing stops then. */
  closeOnDelete: boolean;
  /** Longest wait between attempts while the chain is unreachable (ms). */
  maxBackoffMs: number;
  /** Usage samples kept per pod (older ones are pruned; the totals keep everything). */
  samplesPerPod: number;
}

export const DEFAULT_BILLING_CONFIG: BillingConfig = {
  confirmations: 2,
  minRunSeconds: 3600n,
  minNoticeSeconds: 3600n,
  warnSeconds: 3600n,
  claimIntervalMs: 60_000,
  restartPollMs: 5_000,
  minClaimAmount: 0n,
  minClaimIntervalSeconds: 0n,
  tokenUnitsPerEther: undefined,
  minClaimReturn: 2n,
  maxClaimBatch: 100,
  meterIntervalMs: 15_000,
  retainAfterCloseSeconds: 0n,
  closeOnDelete: true,
  maxBackoffMs: 300_000,
  samplesPerPod: 1000,
};
