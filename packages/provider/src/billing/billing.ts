import type { DatabaseSync } from "node:sqlite";
import type { ChainContext } from "@trustedpods/chain";
import type { Pricing } from "@trustedpods/protocol";
import type { Registry } from "prom-client";
import type { Address } from "viem";
import { ChannelGate } from "./gate.js";
import { BillingLoop } from "./loop.js";
import { UsageMeter } from "./meter.js";
import { BillingMetrics } from "./metrics.js";
import { type BillingStatus, billingStatus } from "./status.js";
import { BillingStore } from "./store.js";
import {
  type BillingConfig,
  type BillingLogger,
  DEFAULT_BILLING_CONFIG,
  type Hex,
  type PodLifecycle,
  silentLogger,
  type UsageSource,
} from "./types.js";

export interface BillingOptions {
  /** The daemon's SQLite database; billing creates and migrates its own `billing_` tables in it. */
  db: DatabaseSync;
  /** The provider's chain context (its wallet signs claims). */
  chain: ChainContext;
  /** The chain id channels must live on. */
  chainId: bigint;
  lifecycle: PodLifecycle;
  /** Usage samples (the engine); without it nothing is sampled. */
  usage?: UsageSource;
  /** Registers the billing metrics here when given. */
  registry?: Registry;
  logger?: BillingLogger;
  config?: Partial<BillingConfig>;
  /** The provider's pricing token; channels in another token are refused. */
  token?: Address;
  /** The provider's pricing: a channel must pay the pod's price under it (unless a request names a rate). */
  pricing?: Pricing;
  /** The string the daemon names pods by; default the bytes32 pod id in lowercase hex. */
  podKeyOf?: (podId: Hex) => string;
}

/**
 * Everything billing, wired: the provision gate the daemon calls, the claim loop, the usage meter, metrics and the
 * status summary, over one SQLite store. `start()` starts the timers; `tick()`/`sample()` run one pass (tests).
 */
export class Billing {
  readonly store: BillingStore;
  readonly config: BillingConfig;
  readonly gate: ChannelGate;
  readonly loop: BillingLoop;
  readonly meter: UsageMeter | undefined;
  readonly metrics: BillingMetrics | undefined;

  constructor(opts: BillingOptions) {
    this.config = { ...DEFAULT_BILLING_CONFIG, ...opts.config };
    const logger = opts.logger ?? silentLogger;
    this.store = new BillingStore(opts.db);
    this.metrics = opts.registry ? new BillingMetrics(opts.registry, this.store) : undefined;
    this.loop = new BillingLoop({
      store: this.store,
      chain: opts.chain,
      lifecycle: opts.lifecycle,
      config: this.config,
      logger,
      ...(this.metrics ? { metrics: this.metrics } : {}),
    });
    this.gate = new ChannelGate({
      store: this.store,
      chain: opts.chain,
      chainId: opts.chainId,
      config: this.config,
      logger,
      onChange: () => this.loop.wake(),
      ...(opts.token ? { token: opts.token } : {}),
      ...(opts.pricing ? { pricing: opts.pricing } : {}),
      ...(opts.podKeyOf ? { podKeyOf: opts.podKeyOf } : {}),
    });
    this.meter = opts.usage
      ? new UsageMeter({
          store: this.store,
          usage: opts.usage,
          config: this.config,
          logger,
          ...(this.metrics ? { metrics: this.metrics } : {}),
        })
      : undefined;
  }

  start(): void {
    this.loop.start();
    this.meter?.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.loop.stop(), this.meter?.stop()]);
  }

  tick() {
    return this.loop.tick();
  }

  sample(): Promise<void> {
    return this.meter?.sampleOnce() ?? Promise.resolve();
  }

  billingStatus(podKey: string): BillingStatus {
    return billingStatus(this.store, podKey);
  }
}
