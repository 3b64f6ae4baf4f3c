import {
  type BatchClaim,
  type ChainContext,
  ChainError,
  type ChannelState,
  gasLimit,
  paymentsAbi,
  skippedClaims,
} from "@trustedpods/chain";
import { TransactionNotFoundError, TransactionReceiptNotFoundError } from "viem";
import { accruedAt, claimCap, maxBig, minBig, remainingSeconds, runOutTime } from "./accrual.js";
import { asChainFailure, type ChainPoint, chainPoints, channelAt, channelsAt } from "./chain-read.js";
import { type ClaimCandidate, planClaims } from "./claim-policy.js";
import { ChainUnavailableError } from "./errors.js";
import type { BillingMetrics } from "./metrics.js";
import type { BillingPodRecord, BillingStore } from "./store.js";
import type { BillingConfig, BillingLogger, Hex, PodLifecycle } from "./types.js";

export interface BillingLoopOptions {
  store: BillingStore;
  /** The provider's context (claims are sent from its wallet). */
  chain: ChainContext;
  lifecycle: PodLifecycle;
  config: BillingConfig;
  logger: BillingLogger;
  metrics?: BillingMetrics;
}

export interface TickResult {
  ok: boolean;
  /** Chain time (seconds) of the confirmed block the tick decided on. */
  chainTime?: bigint;
  pods: number;
  errors: string[];
}

/** A claim a pod's step found due; the tick's end plans and sends them together (claim-policy.ts). */
interface DueClaim extends ClaimCandidate {
  pod: BillingPodRecord;
  channel: ChannelState;
  target: bigint;
  waive: bigint;
}

/** A pod's channel as the tick read it (confirmed block, head, the chain time it decides at), or the read's error. */
type ChannelReads = { conf: ChannelState; head: ChannelState; now: bigint } | Error;

const MAX_ERROR_CHARS = 500;
/** Pods a tick works on at once. */
const TICK_CONCURRENCY = 8;
const short = (err: unknown) => {
  const m = err instanceof Error ? err.message : String(err);
  return m.length > MAX_ERROR_CHARS ? `${m.slice(0, MAX_ERROR_CHARS)}...` : m;
};

/**
 * The billing loop. Every tick reads the chain head, then per pod: the channel at the confirmed block (what
 * lifecycle decisions rest on) and at the head (what claims rest on). It claims what accrued (computed exactly as
 * the contract does, never above its cap), stops a pod when its deposit runs out, its channel closes or its rate
 * falls below the price of the spec that runs, restarts it after a top-up, waives the accrual of time the pod did
 * not serve (provisioning, the restart after a top-up) before claiming, and removes it only when a successful
 * chain read proves the notice period is over. An RPC error changes nothing: the tick is retried with backoff.
 */
export class BillingLoop {
  private timer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private running: Promise<TickResult> | undefined;
  private stopped = true;
  private failures = 0;
  /** Receipts of the claims sent during the current tick. */
  private inFlight: Promise<string[]>[] = [];
  /** Claims found due during the current tick, sent at its end. */
  private due: DueClaim[] = [];
  /** Removed pods whose channel may be fully claimed once this tick's claims landed. */
  private settleChecks: BillingPodRecord[] = [];

  constructor(private readonly opts: BillingLoopOptions) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
    this.scheduleTopUpWatch();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.running?.catch(() => {});
  }

  /** Runs a tick soon (after a provision or delete). */
  wake(): void {
    if (!this.stopped) this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick().then((r) => {
        this.failures = r.ok ? 0 : this.failures + 1;
        const { claimIntervalMs, maxBackoffMs } = this.opts.config;
        // Backoff while the chain is unreachable: 1 s, 2 s, 4 s ... capped; never faster than the interval.
        const delay = r.ok
          ? claimIntervalMs
          : Math.min(maxBackoffMs, Math.max(1000, 2 ** this.failures * 500));
        this.schedule(delay);
      });
    }, ms);
    this.timer.unref?.();
  }

  private scheduleTopUpWatch(): void {
    const ms = this.opts.config.restartPollMs;
    if (this.stopped || ms <= 0) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.checkTopUps().finally(() => this.scheduleTopUpWatch());
    }, ms);
    this.restartTimer.unref?.();
  }

  /**
   * Reads only the channels of pods stopped for funds (no transaction) and runs a tick at once when one was
   * topped up. The contract restarts accrual at the top-up, so every second until the next regular tick would be
   * paid for a pod that is not running yet. Resolves true when it woke the loop; chain errors are left to the tick.
   */
  async checkTopUps(): Promise<boolean> {
    const { store, chain, config } = this.opts;
    if (this.running) return false;
    const stopped = store.activePods().filter((p) => p.state === "stopped_funds");
    if (stopped.length === 0) return false;
    try {
      const pts = await chainPoints(chain, config.confirmations);
      const keys = stopped.map((pod) => ({
        publisher: pod.publisher,
        provider: pod.provider,
        podId: pod.podId,
      }));
      const confs = await channelsAt(chain, keys, pts.confirmed.number);
      for (const [i, pod] of stopped.entries()) {
        const conf = confs[i]!;
        if (conf instanceof Error) continue;
        const now = maxBig(pts.confirmed.time, pod.observed?.time ?? 0n);
        if (conf.exists && toppedUp(conf, maxBig(pod.stoppedAt ?? now, now))) {
          this.wake();
          return true;
        }
      }
    } catch {
      // An unreachable chain is the tick's to report and back off from.
    }
    return false;
  }

  /** One pass over every active pod. Concurrent calls share the pass in progress. */
  tick(): Promise<TickResult> {
    if (!this.running) this.running = this.doTick().finally(() => (this.running = undefined));
    return this.running;
  }

  private async doTick(): Promise<TickResult> {
    const started = performance.now();
    const cpu = process.cpuUsage();
    const result = await this.tickPods();
    const used = process.cpuUsage(cpu);
    this.opts.metrics?.lastTickSeconds.set((performance.now() - started) / 1000);
    this.opts.metrics?.lastTickCpuSeconds.set((used.user + used.system) / 1e6);
    this.opts.metrics?.lastTickPods.set(result.pods);
    return result;
  }

  private async tickPods(): Promise<TickResult> {
    const { store, chain, config, logger, metrics } = this.opts;
    let points: { head: ChainPoint; confirmed: ChainPoint };
    try {
      points = await chainPoints(chain, config.confirmations);
    } catch (err) {
      metrics?.rpcErrors.inc();
      logger.warn({ err: short(err) }, "billing: chain unreachable, nothing changes until it answers");
      return { ok: false, pods: 0, errors: [short(err)] };
    }
    const pods = store.activePods();
    const errors: string[] = [];
    this.inFlight = [];
    this.due = [];
    this.settleChecks = [];
    const failed = (podKey: string, err: unknown) => {
      if (err instanceof ChainUnavailableError) metrics?.rpcErrors.inc();
      errors.push(`${podKey}: ${short(err)}`);
      store.updatePod(podKey, { lastError: short(err) });
      logger.warn({ pod: podKey, err: short(err) }, "billing: pod step failed, retrying next tick");
    };
    // Every pod's channel at the confirmed block and at the head, read in batches (one eth_call per 200 channels)
    // rather than one RPC per channel per block (bench/scale: 50 pods one by one took 6 s on a loaded machine).
    const reads = await this.readChannels(pods, points);
    // Pods are independent: the few whose step waits for Podman or a transaction overlap.
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < pods.length; i = next++) {
        const pod = pods[i]!;
        try {
          await this.processPod(pod, points, reads[i]!);
        } catch (err) {
          failed(pod.podKey, err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(TICK_CONCURRENCY, pods.length) }, worker));
    await this.sendDueClaims(failed);
    for (const e of await Promise.all(this.inFlight)) errors.push(...e);
    this.inFlight = [];
    for (const pod of this.settleChecks)
      await this.settleIfClaimed(pod).catch((err) => failed(pod.podKey, err));
    this.settleChecks = [];
    return { ok: errors.length === 0, chainTime: points.confirmed.time, pods: pods.length, errors };
  }

  /**
   * Reads every pod's channel at the confirmed block and at the head (batched), and records what was observed for
   * all of them in one SQLite transaction (one commit per tick, not one per pod). A pod whose read failed gets its
   * error, thrown by its step.
   */
  private async readChannels(
    pods: readonly BillingPodRecord[],
    pts: { head: ChainPoint; confirmed: ChainPoint },
  ): Promise<ChannelReads[]> {
    const { store, chain, config } = this.opts;
    const keys = pods.map((pod) => ({ publisher: pod.publisher, provider: pod.provider, podId: pod.podId }));
    const [confs, heads] = await Promise.all([
      channelsAt(chain, keys, pts.confirmed.number),
      config.confirmations > 0 ? channelsAt(chain, keys, pts.head.number) : undefined,
    ]);
    const reads = pods.map((pod, i): ChannelReads => {
      const conf = confs[i]!;
      const head = heads ? heads[i]! : conf;
      if (conf instanceof Error) return conf;
      if (head instanceof Error) return head;
      // Chain time never goes back for our decisions (a node restarted from a state dump can mine blocks with
      // earlier timestamps): a stopped pod must not restart because the clock went back.
      return { conf, head, now: maxBig(pts.confirmed.time, pod.observed?.time ?? 0n) };
    });
    store.transaction(() => {
      pods.forEach((pod, i) => {
        const r = reads[i]!;
        if (r instanceof Error) return;
        // What was claimed is read at the head: the provider's own claims count as soon as they are mined.
        store.updatePod(pod.podKey, {
          observed: {
            ...r.conf,
            block: pts.confirmed.number,
            time: r.now,
            claimed: maxBig(r.head.claimed, r.conf.claimed),
          },
          lastError: null,
        });
        if (r.conf.exists && pod.state === "running") store.fillReservationStart(pod.podKey, r.now);
      });
    });
    return reads;
  }

  private async processPod(
    pod: BillingPodRecord,
    pts: { head: ChainPoint; confirmed: ChainPoint },
    read: ChannelReads,
  ): Promise<void> {
    const { store, chain, config } = this.opts;
    if (read instanceof Error) throw read;
    const { conf, head, now } = read;
    const key = { publisher: pod.publisher, provider: pod.provider, podId: pod.podId };

    if (!conf.exists) {
      if (conf.finalized) {
        // Positive evidence: the publisher settled the channel (refund after the close time); the contract paid
        // the provider what accrued up to then. Nothing more to bill.
        await this.endPod(pod, now, "the channel was settled on chain");
        store.updatePod(pod.podKey, { state: "settled", warnings: [] });
        this.opts.logger.info({ pod: pod.podKey }, "billing: channel settled, pod removed");
        return;
      }
      // A channel that vanished without being settled is not evidence of anything (wrong RPC, chain reset):
      // keep everything and say so.
      this.setWarnings(pod, [
        `the chain shows no channel for this pod at block ${pts.confirmed.number}: nothing is stopped or removed until it does`,
      ]);
      return;
    }

    await this.reconcileClaims(pod, head);
    let state = pod.state;
    let stoppedAt = pod.stoppedAt;
    let claimBasis = { channel: head, time: pts.head.time };

    // 1. Stop or restart, from the confirmed read.
    if (state === "running") {
      const runOut = runOutTime(conf);
      if (conf.closeAt !== 0n && now >= conf.closeAt) {
        await this.opts.lifecycle.stop(pod.podKey, "closed");
        stoppedAt = conf.closeAt;
        store.transaction(() => {
          store.closeReservation(pod.podKey, conf.closeAt);
          store.resetUsageBaseline(pod.podKey);
          store.updatePod(pod.podKey, {
            state: "closed",
            stoppedAt,
            removeAt: conf.closeAt + config.retainAfterCloseSeconds,
          });
        });
        state = "closed";
        this.opts.logger.info(
          { pod: pod.podKey, closeAt: conf.closeAt.toString() },
          "billing: channel closed, pod stopped",
        );
      } else if (conf.ratePerSecond < pod.requiredRate) {
        // A rate change with a quote for another (cheaper) spec: the provider would serve this spec below its
        // price. Stop it now and end the channel, so the publisher pays nothing more for a pod that does not run.
        const reason = `stopped by billing: the channel pays ${conf.ratePerSecond} wei/s, less than the ${pod.requiredRate} wei/s the running pod was quoted at (its rate was changed with a quote for another spec); the provider closes the channel; volumes are kept until chain time ${now + conf.noticeSeconds}`;
        await this.opts.lifecycle.stop(pod.podKey, "underpaid", reason);
        stoppedAt = now;
        store.transaction(() => {
          store.closeReservation(pod.podKey, now);
          store.resetUsageBaseline(pod.podKey);
          store.updatePod(pod.podKey, {
            state: "stopped_rate",
            stoppedAt,
            removeAt: now + conf.noticeSeconds,
            waiver: null,
          });
        });
        state = "stopped_rate";
        this.opts.logger.warn(
          { pod: pod.podKey, rate: conf.ratePerSecond.toString(), required: pod.requiredRate.toString() },
          reason,
        );
      } else if (runOut !== undefined && now >= runOut) {
        await this.opts.lifecycle.stop(pod.podKey, "funds");
        stoppedAt = runOut;
        store.transaction(() => {
          store.closeReservation(pod.podKey, runOut);
          store.resetUsageBaseline(pod.podKey);
          store.updatePod(pod.podKey, {
            state: "stopped_funds",
            stoppedAt,
            removeAt: runOut + conf.noticeSeconds,
          });
        });
        state = "stopped_funds";
        this.opts.logger.warn(
          {
            pod: pod.podKey,
            ranOutAt: runOut.toString(),
            removeAt: (runOut + conf.noticeSeconds).toString(),
          },
          "billing: deposit ran out, pod stopped (volumes kept until the notice period passes without a top-up)",
        );
      }
    } else if (state === "stopped_funds") {
      if (toppedUp(conf, maxBig(stoppedAt ?? now, now))) {
        await this.opts.lifecycle.start(pod.podKey);
        store.transaction(() => {
          store.openReservation(pod.podKey, now);
          store.updatePod(pod.podKey, { state: "running", stoppedAt: null, removeAt: null });
        });
        // Accrual ran from the top-up (or, if it did not restart accrual, through the stop): the seconds until
        // the pod serves again are waived with the next claim. (Chain down: the confirmed time, a bit less.)
        const servingAt = maxBig(await this.headTimeOr(now), now);
        const unservedFrom = maxBig(conf.since, stoppedAt ?? conf.since);
        if (servingAt > unservedFrom)
          store.updatePod(pod.podKey, {
            waiver: { since: conf.since, until: conf.since + (servingAt - unservedFrom) },
          });
        state = "running";
        stoppedAt = null;
        this.opts.logger.info(
          { pod: pod.podKey, deposit: conf.deposit.toString() },
          "billing: topped up, pod restarted",
        );
      }
    }
    if (state === "deleted" || state === "stopped_rate") {
      if (stoppedAt === null) {
        stoppedAt = now;
        store.closeReservation(pod.podKey, now);
        store.updatePod(pod.podKey, { stoppedAt });
      }
      if (
        (config.closeOnDelete || state === "stopped_rate") &&
        !pod.providerClosed &&
        (await this.providerClose(pod, conf, pts.head.time))
      ) {
        // The close was mined after the head was read: claim up to its close time now, not one block short.
        const closed = await channelAt(chain, key, undefined);
        claimBasis = { channel: closed, time: closed.closeAt };
      }
    }

    // 2. Claim, from the head: the claim lands at or after its time, and accrual only grows with time. A pending
    // waiver of what the pod did not serve goes with the claim (claimWaiving), or alone when there is nothing to
    // claim yet; no claim ever covers time still to be waived.
    // A pod stopped for funds whose top-up restarted accrual is not serving yet: claim only up to that anchor.
    if (state === "stopped_funds" && stoppedAt !== null && claimBasis.channel.since > stoppedAt)
      claimBasis = { ...claimBasis, time: minBig(claimBasis.time, claimBasis.channel.since) };
    const waive = this.pendingWaiver(pod, claimBasis.channel);
    await this.claim(pod, claimBasis.channel, claimBasis.time, state !== "running", waive);

    // 3. Remove, after the last claim, only when the confirmed read proves the wait is over.
    if (state === "closed" && conf.closeAt !== 0n && now >= conf.closeAt + config.retainAfterCloseSeconds) {
      await this.opts.lifecycle.remove(pod.podKey);
      store.updatePod(pod.podKey, { state: "removed" });
      state = "removed";
      this.opts.logger.info({ pod: pod.podKey }, "billing: closed pod removed");
    } else if (state === "stopped_funds" || state === "deleted" || state === "stopped_rate") {
      let removeAt = (stoppedAt ?? now) + conf.noticeSeconds;
      // A closing channel can no longer be topped up: its close time ends the wait too.
      if (state === "stopped_funds" && conf.closeAt !== 0n && conf.closeAt < removeAt)
        removeAt = maxBig(conf.closeAt, stoppedAt ?? now);
      if (now >= removeAt) {
        await this.removeAndStopAccrual(
          { ...pod, providerClosed: pod.providerClosed || state === "deleted" || state === "stopped_rate" },
          conf,
        );
        state = "removed";
      }
    }

    // Settled once the final claim (sent at the tick's end) landed: checked after the tick's claims.
    if (state === "removed") this.settleChecks.push(pod);
    // With this tick's stop time: the record read at the start of the tick does not have it yet.
    this.setWarnings({ ...pod, state, stoppedAt }, this.warningsFor(state, conf, now, { ...pod, stoppedAt }));
  }

  /** A removed pod is settled when its channel is gone or everything it will ever owe has been claimed. */
  private async settleIfClaimed(pod: BillingPodRecord): Promise<void> {
    const key = { publisher: pod.publisher, provider: pod.provider, podId: pod.podId };
    const fresh = await channelAt(this.opts.chain, key, undefined);
    // Once accrual has a stop (closeAt), claimCap at that time is all the channel will ever owe.
    const closed = fresh.closeAt !== 0n;
    if (!fresh.exists || (closed && fresh.claimed >= claimCap(fresh, fresh.closeAt))) {
      this.opts.store.updatePod(pod.podKey, { state: "settled", warnings: [] });
      this.opts.logger.info({ pod: pod.podKey, claimed: fresh.claimed.toString() }, "billing: settled");
    }
  }

  private warningsFor(
    state: BillingPodRecord["state"],
    c: ChannelState,
    now: bigint,
    pod: BillingPodRecord,
  ): string[] {
    const w: string[] = [];
    if (state === "running") {
      const left = remainingSeconds(c, now);
      if (c.closeAt !== 0n)
        w.push(`the channel closes at ${c.closeAt} (in ${c.closeAt - now} s): the pod stops then`);
      else if (left < this.opts.config.warnSeconds)
        w.push(
          `low funds: the deposit pays for ${left} more seconds (until chain time ${now + left}); top up the channel to keep the pod running`,
        );
    } else if (state === "stopped_funds") {
      const removeAt = (pod.stoppedAt ?? now) + c.noticeSeconds;
      w.push(
        `stopped: the deposit ran out at ${pod.stoppedAt}; top up before chain time ${removeAt} or the pod and its volumes are deleted (billing restarts at the top-up: the stopped time is not charged)`,
      );
    } else if (state === "deleted") {
      w.push(`deleted: volumes are kept until chain time ${(pod.stoppedAt ?? now) + c.noticeSeconds}`);
    } else if (state === "stopped_rate") {
      w.push(
        `stopped: the channel's rate (${c.ratePerSecond} wei/s) fell below the price the running pod was quoted at (${pod.requiredRate} wei/s); the provider closed the channel; volumes are kept until chain time ${(pod.stoppedAt ?? now) + c.noticeSeconds}`,
      );
    } else if (state === "closed") {
      w.push(`stopped: the channel closed at ${c.closeAt}`);
    }
    return w;
  }

  private setWarnings(pod: BillingPodRecord, warnings: string[]): void {
    const before = JSON.stringify(pod.warnings);
    if (before === JSON.stringify(warnings)) return;
    this.opts.store.updatePod(pod.podKey, { warnings });
    for (const w of warnings) if (!pod.warnings.includes(w)) this.opts.logger.warn({ pod: pod.podKey }, w);
  }

  /** Stops the pod if it may still run, ends its reservation, and removes it. */
  private async endPod(pod: BillingPodRecord, now: bigint, why: string): Promise<void> {
    if (pod.state === "running") {
      await this.opts.lifecycle.stop(pod.podKey, "closed");
      this.opts.store.closeReservation(pod.podKey, pod.observed?.closeAt || now);
    }
    if (pod.state !== "removed") await this.opts.lifecycle.remove(pod.podKey);
    this.opts.logger.info({ pod: pod.podKey }, `billing: pod removed: ${why}`);
  }

  /**
   * Removes a pod whose notice period passed, and stops its channel's accrual (providerClose) when still open, so
   * a later top-up of a channel whose pod is gone cannot be claimed and the publisher can refund it.
   */
  private async removeAndStopAccrual(pod: BillingPodRecord, conf: ChannelState): Promise<void> {
    await this.opts.lifecycle.remove(pod.podKey);
    this.opts.store.updatePod(pod.podKey, { state: "removed" });
    this.opts.logger.warn({ pod: pod.podKey }, "billing: notice period passed, pod and volumes removed");
    if (!pod.providerClosed && conf.closeAt === 0n) await this.providerClose(pod, conf, undefined);
  }

  private async providerClose(
    pod: BillingPodRecord,
    conf: ChannelState,
    headTime: bigint | undefined,
  ): Promise<boolean> {
    if (conf.closeAt !== 0n && headTime !== undefined && conf.closeAt <= headTime) {
      this.opts.store.updatePod(pod.podKey, { providerClosed: true });
      return false;
    }
    try {
      await this.send("providerClose", [pod.publisher, pod.podId]);
    } catch (err) {
      // Already closed (a race with the publisher's requestClose): nothing left to do.
      if (!(err instanceof ChainError && err.errorName === "ChannelAlreadyClosed")) throw err;
      this.opts.store.updatePod(pod.podKey, { providerClosed: true });
      return false;
    }
    this.opts.store.updatePod(pod.podKey, { providerClosed: true });
    this.opts.logger.info({ pod: pod.podKey }, "billing: accrual stopped on chain (providerClose)");
    return true;
  }

  /** The chain head's time, or `fallback` when the chain does not answer. */
  private async headTimeOr(fallback: bigint): Promise<bigint> {
    try {
      return (await chainPoints(this.opts.chain, 0)).head.time;
    } catch {
      return fallback;
    }
  }

  /**
   * The seconds of the pod's pending waiver, while the channel's anchor is still the one it was computed for; a
   * moved anchor means it landed (or a rate change superseded it): then it is dropped. 0n when none.
   */
  private pendingWaiver(pod: BillingPodRecord, head: ChannelState): bigint {
    const waiver = this.opts.store.getPod(pod.podKey)?.waiver;
    if (!waiver) return 0n;
    if (head.since !== waiver.since || waiver.until <= waiver.since) {
      this.opts.store.updatePod(pod.podKey, { waiver: null });
      return 0n;
    }
    return waiver.until - waiver.since;
  }

  /** Sends a waiver alone (nothing to claim yet); a refusal means the channel moved on: it is dropped. */
  private async sendWaiver(pod: BillingPodRecord, seconds: bigint): Promise<void> {
    const { store, logger } = this.opts;
    try {
      await this.send("waive", [pod.publisher, pod.podId, seconds]);
    } catch (err) {
      if (!(err instanceof ChainError)) throw err;
      store.updatePod(pod.podKey, { waiver: null, lastError: short(err) });
      logger.warn({ pod: pod.podKey, err: short(err) }, "billing: waiver refused by the contract; dropped");
      return;
    }
    store.updatePod(pod.podKey, { waiver: null });
    logger.info(
      { pod: pod.podKey, seconds: seconds.toString() },
      "billing: waived accrual the pod did not serve",
    );
  }

  /**
   * Resolves claims left in flight (by a crash, an RPC error or a restart) against the chain. Claims are
   * cumulative, so the chain's `claimed` is the truth: a claim at or below it is done, whoever sent it.
   */
  private async reconcileClaims(pod: BillingPodRecord, head: ChannelState): Promise<void> {
    const { store, chain } = this.opts;
    for (const c of store.pendingClaims(pod.podKey)) {
      if (head.claimed >= c.cumulative) {
        store.updateClaim(c.id, "confirmed");
        continue;
      }
      if (!c.txHash) {
        // Never sent, or sent without us learning the hash: a new claim supersedes it safely (cumulative).
        store.updateClaim(c.id, "dropped", { error: "not on chain" });
        continue;
      }
      try {
        const r = await chain.publicClient.getTransactionReceipt({ hash: c.txHash });
        // A batch claim succeeds as a whole while skipping entries: look for this channel among the skipped.
        const skip = skippedClaims(chain, r).find(
          (k) => k.channelId.toLowerCase() === c.channelId.toLowerCase(),
        );
        if (r.status === "success" && !skip) store.updateClaim(c.id, "confirmed");
        else
          store.updateClaim(c.id, "failed", {
            error: skip ? `skipped by the contract: ${skip.errorName}` : "reverted",
          });
      } catch (err) {
        if (!(err instanceof TransactionReceiptNotFoundError))
          throw asChainFailure(err, "read a claim receipt");
        try {
          await chain.publicClient.getTransaction({ hash: c.txHash });
          // Still pending: wait for it rather than racing it.
        } catch (e) {
          if (!(e instanceof TransactionNotFoundError)) throw asChainFailure(e, "read a claim transaction");
          store.updateClaim(c.id, "dropped", { error: "transaction vanished (node restarted or reorg)" });
        }
      }
    }
  }

  /**
   * Queues a claim up to the contract's cap at `time` when there is enough to claim (or anything, when final); the
   * tick's end decides with the gas price whether and in which batch it goes (sendDueClaims).
   */
  private async claim(
    pod: BillingPodRecord,
    head: ChannelState,
    time: bigint,
    final: boolean,
    waive = 0n,
  ): Promise<void> {
    const { store, config } = this.opts;
    if (!head.exists) return;
    if (store.pendingClaims(pod.podKey).length > 0) return; // one in flight: let it land first
    // With a waiver, the cap is the contract's once the anchor moved on by it.
    const target = claimCap(waive > 0n ? { ...head, since: head.since + waive } : head, time);
    if (target <= head.claimed) {
      if (waive > 0n) await this.sendWaiver(pod, waive);
      return;
    }
    if (!final && target - head.claimed < config.minClaimAmount) return;
    if (!final && target - head.claimed < head.ratePerSecond * config.minClaimIntervalSeconds) return;
    this.due.push({
      podKey: pod.podKey,
      owed: target - head.claimed,
      ratePerSecond: final || head.closeAt !== 0n ? 0n : head.ratePerSecond,
      royalties: Number(head.royaltyCount),
      final,
      pod,
      channel: head,
      target,
      waive,
    });
  }

  /**
   * Sends the tick's due claims as the policy plans them: many channels per `claimBatch` transaction, only when a
   * transaction collects more than its gas costs (claim-policy.ts). Receipts are awaited at the tick's end, so a
   * tick costs about one block time whatever the number of pods.
   */
  private async sendDueClaims(failed: (podKey: string, err: unknown) => void): Promise<void> {
    const { chain, config, logger } = this.opts;
    const due = this.due;
    this.due = [];
    if (due.length === 0) return;
    let gasPrice = 0n;
    if (config.tokenUnitsPerEther !== undefined) {
      try {
        gasPrice = await chain.publicClient.getGasPrice();
      } catch (err) {
        const e = asChainFailure(err, "read the gas price");
        for (const d of due) failed(d.podKey, e);
        return;
      }
    }
    const plan = planClaims<DueClaim>({
      candidates: due,
      gasPrice,
      tokenUnitsPerEther: config.tokenUnitsPerEther,
      minReturn: config.minClaimReturn,
      maxBatch: config.maxClaimBatch,
    });
    if (plan.deferred.length > 0)
      logger.info(
        {
          deferred: plan.deferred.length,
          owed: plan.deferred.reduce((s, d) => s + d.owed, 0n).toString(),
          gasPrice: gasPrice.toString(),
          ...(plan.nextClaimInSeconds !== undefined
            ? { worthClaimingInSeconds: plan.nextClaimInSeconds.toString() }
            : {}),
        },
        "billing: claims deferred: they would not pay for their gas yet",
      );
    for (const batch of plan.batches) {
      try {
        if (batch.length === 1) await this.sendSingle(batch[0]!);
        else await this.sendBatch(batch);
      } catch (err) {
        for (const d of batch) failed(d.podKey, err);
      }
    }
  }

  /** One channel: a plain claim (or claimWaiving), cheaper than a batch of one. */
  private async sendSingle(d: DueClaim): Promise<void> {
    const { store, metrics } = this.opts;
    const { pod, target, waive } = d;
    const id = store.addClaimIntent(pod.podKey, d.channel.id, target);
    try {
      const hash =
        waive > 0n
          ? await this.write("claimWaiving", [pod.publisher, pod.podId, target, waive])
          : await this.write("claim", [pod.publisher, pod.podId, target]);
      store.updateClaim(id, "sent", { txHash: hash });
      this.inFlight.push(this.confirmClaims([{ d, id }], hash));
    } catch (err) {
      if (err instanceof ChainError) {
        // The contract refused (e.g. someone's claim landed first): nothing was sent; the next tick re-reads.
        store.updateClaim(id, "failed", { error: err.message });
        // A waiver the channel no longer allows (it moved on) is dropped rather than retried forever.
        if (err.errorName === "WaiveTooLong") store.updatePod(pod.podKey, { waiver: null });
        metrics?.claims.inc({ result: "refused" });
        return;
      }
      // Unknown outcome (RPC error): leave the intent; reconcileClaims settles it against the chain.
      metrics?.claims.inc({ result: "unknown" });
      throw asChainFailure(err, "send a claim");
    }
  }

  /** Many channels in one claimBatch; an entry the contract skips is reported by its receipt (confirmClaims). */
  private async sendBatch(batch: DueClaim[]): Promise<void> {
    const { store, metrics } = this.opts;
    // One commit for the batch's intents (recorded before the transaction is sent), one for its hashes.
    const sent = store.transaction(() =>
      batch.map((d) => ({ d, id: store.addClaimIntent(d.podKey, d.channel.id, d.target) })),
    );
    const entries: BatchClaim[] = batch.map((d) => ({
      publisher: d.pod.publisher,
      podId: d.pod.podId,
      cumulative: d.target,
      waiveSeconds: d.waive,
    }));
    try {
      const hash = await this.write("claimBatch", [entries]);
      store.transaction(() => {
        for (const s of sent) store.updateClaim(s.id, "sent", { txHash: hash });
      });
      this.inFlight.push(this.confirmClaims(sent, hash));
    } catch (err) {
      if (err instanceof ChainError) {
        // The batch skips refused entries instead of reverting: a refusal here is of the transaction itself.
        store.transaction(() => {
          for (const s of sent) store.updateClaim(s.id, "failed", { error: err.message });
        });
        metrics?.claims.inc({ result: "refused" }, sent.length);
        return;
      }
      metrics?.claims.inc({ result: "unknown" }, sent.length);
      throw asChainFailure(err, "send a batch claim");
    }
  }

  /**
   * Waits for a claim transaction's receipt and settles each of its claims: confirmed, or failed when it reverted
   * or the batch skipped that channel. A wait error leaves them "sent" for reconcileClaims; returns the errors.
   */
  private async confirmClaims(sent: { d: DueClaim; id: number }[], hash: Hex): Promise<string[]> {
    const { store, metrics, logger, chain } = this.opts;
    let receipt: Awaited<ReturnType<typeof chain.publicClient.waitForTransactionReceipt>>;
    try {
      receipt = await chain.publicClient.waitForTransactionReceipt({
        hash,
        timeout: 60_000,
        pollingInterval: 250,
      });
    } catch (err) {
      metrics?.claims.inc({ result: "unknown" }, sent.length);
      const msg = short(asChainFailure(err, "confirm a claim"));
      for (const { d } of sent) store.updatePod(d.podKey, { lastError: `${d.podKey}: ${msg}` });
      logger.warn(
        { pods: sent.length, tx: hash },
        "billing: claim receipt not seen yet; reconciled next tick",
      );
      return sent.map(({ d }) => `${d.podKey}: ${msg}`);
    }
    if (receipt.status !== "success") {
      for (const { id } of sent) store.updateClaim(id, "failed", { error: "reverted" });
      metrics?.claims.inc({ result: "reverted" }, sent.length);
      return sent.map(({ d }) => `${d.podKey}: claim ${hash} reverted`);
    }
    const skipped = new Map(
      skippedClaims(chain, receipt).map((k) => [k.channelId.toLowerCase(), k.errorName]),
    );
    // One commit for the whole batch's outcomes.
    store.transaction(() => this.settleClaims(sent, skipped, hash));
    return [];
  }

  /** Records each claim of a mined transaction: confirmed, or failed when the batch skipped its channel. */
  private settleClaims(sent: { d: DueClaim; id: number }[], skipped: Map<string, string>, hash: Hex): void {
    const { store, metrics, logger } = this.opts;
    for (const { d, id } of sent) {
      const refusal = skipped.get(d.channel.id.toLowerCase());
      if (refusal !== undefined) {
        store.updateClaim(id, "failed", { error: `skipped by the contract: ${refusal}` });
        if (refusal === "WaiveTooLong") store.updatePod(d.podKey, { waiver: null });
        metrics?.claims.inc({ result: "refused" });
        logger.warn(
          { pod: d.podKey, tx: hash, refusal },
          "billing: claim skipped by the contract; re-read next tick",
        );
        continue;
      }
      store.updateClaim(id, "confirmed");
      const seen = store.getPod(d.podKey)?.observed;
      if (seen && seen.claimed < d.target)
        store.updatePod(d.podKey, { observed: { ...seen, claimed: d.target } });
      metrics?.claims.inc({ result: "confirmed" });
      metrics?.claimedAmount.inc(Number(d.owed));
      logger.info(
        {
          pod: d.podKey,
          cumulative: d.target.toString(),
          amount: d.owed.toString(),
          tx: hash,
          ...(sent.length > 1 ? { batch: sent.length } : {}),
        },
        "billing: claimed",
      );
    }
  }

  /** Simulates against the pending block (a revert becomes a ChainError before signing) and sends. */
  private async write(
    functionName: "claim" | "claimWaiving" | "claimBatch" | "providerClose" | "waive",
    args: readonly unknown[],
  ): Promise<Hex> {
    const { chain } = this.opts;
    const wallet = chain.walletClient;
    if (!wallet) throw new Error("the billing loop needs the provider's wallet client");
    try {
      const call = {
        address: chain.addresses.payments,
        abi: paymentsAbi,
        functionName,
        args,
        account: wallet.account,
        chain: wallet.chain,
        blockTag: "pending",
      } as const;
      const sim = await chain.publicClient.simulateContract(call as never);
      // A claim accrues by the time it is mined at, later than estimated: the same headroom as every send.
      const gas = gasLimit(await chain.publicClient.estimateContractGas(call as never));
      return await wallet.writeContract({ ...(sim as { request: object }).request, gas } as never);
    } catch (err) {
      throw asChainFailure(err, `send ${functionName}`);
    }
  }

  private async send(functionName: "providerClose" | "waive", args: readonly unknown[]): Promise<void> {
    const hash = await this.write(functionName, args);
    try {
      const r = await this.opts.chain.publicClient.waitForTransactionReceipt({
        hash,
        timeout: 60_000,
        pollingInterval: 250,
      });
      if (r.status !== "success") throw new Error(`${functionName} transaction ${hash} reverted`);
    } catch (err) {
      throw asChainFailure(err, `confirm ${functionName}`);
    }
  }
}

/**
 * Whether a pod stopped for funds may run again at `t`: its open channel holds more than has accrued (after a
 * top-up, which restarted accrual at its block when the deposit had run out).
 */
function toppedUp(conf: ChannelState, t: bigint): boolean {
  return conf.closeAt === 0n && accruedAt(conf, t) < conf.deposit;
}
