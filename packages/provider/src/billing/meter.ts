import type { BillingMetrics } from "./metrics.js";
import type { BillingStore } from "./store.js";
import type { BillingConfig, BillingLogger, UsageSource } from "./types.js";

/**
 * Samples every running pod's usage from the engine at an interval and stores it (raw samples, pruned, plus
 * totals that keep everything). Usage is shown to the publisher; the rate, not usage, is what the channel pays.
 */
export class UsageMeter {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly opts: {
      store: BillingStore;
      usage: UsageSource;
      config: BillingConfig;
      logger: BillingLogger;
      metrics?: BillingMetrics;
    },
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sampleOnce(), this.opts.config.meterIntervalMs);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One sample of every running pod; engine errors are logged and skipped. */
  sampleOnce(): Promise<void> {
    if (!this.running) this.running = this.doSample().finally(() => (this.running = undefined));
    return this.running;
  }

  private async doSample(): Promise<void> {
    const { store, usage, config, logger, metrics } = this.opts;
    for (const pod of store.activePods()) {
      if (pod.state !== "running") continue;
      try {
        const s = await usage.stats(pod.podKey);
        store.addUsageSample(
          pod.podKey,
          {
            timeMs: s.time.getTime(),
            cpuSeconds: s.cpuSeconds,
            memoryBytes: s.memoryBytes,
            rxBytes: s.rxBytes,
            txBytes: s.txBytes,
          },
          config.samplesPerPod,
        );
        metrics?.usageSamples.inc();
      } catch (err) {
        logger.warn({ pod: pod.podKey, err: (err as Error).message }, "billing: usage sample failed");
      }
    }
  }
}
