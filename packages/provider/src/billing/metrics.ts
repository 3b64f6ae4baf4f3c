import { Counter, Gauge, type Registry } from "prom-client";
import { billingStatus } from "./status.js";
import type { BillingStore, PodState } from "./store.js";

const STATES: PodState[] = [
  "checked",
  "running",
  "stopped_funds",
  "closed",
  "deleted",
  "stopped_rate",
  "removed",
  "settled",
];

/**
 * Prometheus metrics of billing. Per-pod gauges are computed from the SQLite store at scrape time, so they survive
 * restarts and never disagree with `billingStatus`. Token amounts are exported as floats (Prometheus has no
 * integers): exact below 2^53 base units; the status summary carries the exact bigints.
 */
export class BillingMetrics {
  readonly claims: Counter<"result">;
  readonly claimedAmount: Counter;
  readonly rpcErrors: Counter;
  readonly usageSamples: Counter;
  readonly lastTickSeconds: Gauge;
  readonly lastTickPods: Gauge;
  readonly lastTickCpuSeconds: Gauge;

  constructor(registry: Registry, store: BillingStore) {
    const registers = [registry];
    this.claims = new Counter({
      name: "tpod_billing_claims_total",
      help: "Claim attempts by result (confirmed, reverted, refused by simulation, unknown outcome)",
      labelNames: ["result"],
      registers,
    });
    this.claimedAmount = new Counter({
      name: "tpod_billing_claimed_amount_total",
      help: "Token base units claimed by this process",
      registers,
    });
    this.rpcErrors = new Counter({
      name: "tpod_billing_rpc_errors_total",
      help: "Chain reads or writes that failed for RPC reasons (nothing is deleted because of them)",
      registers,
    });
    this.lastTickSeconds = new Gauge({
      name: "tpod_billing_last_tick_seconds",
      help: "Wall time of the last billing tick: chain reads of every pod, lifecycle steps, claims sent and confirmed",
      registers,
    });
    this.lastTickCpuSeconds = new Gauge({
      name: "tpod_billing_last_tick_cpu_seconds",
      help: "CPU time the daemon process used during the last billing tick (the tick's own and whatever else ran meanwhile)",
      registers,
    });
    this.lastTickPods = new Gauge({
      name: "tpod_billing_last_tick_pods",
      help: "Pods the last billing tick went through",
      registers,
    });
    this.usageSamples = new Counter({
      name: "tpod_billing_usage_samples_total",
      help: "Engine usage samples stored",
      registers,
    });

    const perPod = (name: string, help: string, pick: (s: ReturnType<typeof billingStatus>) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["pod"],
        registers,
        collect() {
          this.reset();
          for (const p of store.allPods()) {
            if (p.state === "settled" || p.state === "checked") continue;
            this.set({ pod: p.podKey }, pick(billingStatus(store, p.podKey)));
          }
        },
      });
    perPod("tpod_billing_rate_per_second", "Channel rate in token base units per second", (s) =>
      Number(s.ratePerSecond),
    );
    perPod("tpod_billing_deposit", "Channel deposit in token base units", (s) => Number(s.deposit));
    perPod("tpod_billing_claimed", "Claimed on chain (cumulative, token base units)", (s) =>
      Number(s.claimed),
    );
    perPod("tpod_billing_accrued", "Accrued at the last chain read, capped by the deposit", (s) =>
      Number(s.accrued),
    );
    perPod("tpod_billing_remaining_seconds", "Seconds the deposit still pays for", (s) =>
      Number(s.remainingSeconds),
    );
    perPod("tpod_billing_reserved_seconds", "Chain seconds the pod has been provisioned", (s) =>
      Number(s.reserved.seconds),
    );
    perPod("tpod_billing_cpu_seconds_total", "CPU seconds used (engine samples)", (s) => s.usage.cpuSeconds);
    perPod("tpod_billing_memory_bytes", "Memory in use at the last sample", (s) => s.usage.memoryBytes);
    perPod("tpod_billing_memory_max_bytes", "Highest memory sample", (s) => s.usage.memoryMaxBytes);
    perPod(
      "tpod_billing_network_receive_bytes_total",
      "Bytes received (engine samples)",
      (s) => s.usage.rxBytes,
    );
    perPod(
      "tpod_billing_network_transmit_bytes_total",
      "Bytes sent (engine samples)",
      (s) => s.usage.txBytes,
    );
    new Gauge({
      name: "tpod_billing_reserved",
      help: "Reserved units per resource (cpu millicores, memory MiB, storage GiB, gpu) while provisioned",
      labelNames: ["pod", "resource"],
      registers,
      collect() {
        this.reset();
        for (const p of store.allPods()) {
          if (p.state !== "running") continue;
          this.set({ pod: p.podKey, resource: "cpu_millicores" }, Number(p.reserved.cpuMillis));
          this.set({ pod: p.podKey, resource: "memory_mib" }, Number(p.reserved.memoryMiB));
          this.set({ pod: p.podKey, resource: "storage_gib" }, Number(p.reserved.storageGiB));
          this.set({ pod: p.podKey, resource: "gpu" }, Number(p.reserved.gpu));
        }
      },
    });
    new Gauge({
      name: "tpod_billing_pods",
      help: "Billed pods by state",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        const counts = new Map<PodState, number>(STATES.map((s) => [s, 0]));
        for (const p of store.allPods()) counts.set(p.state, (counts.get(p.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
  }
}
