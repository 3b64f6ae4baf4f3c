/** Prometheus metrics on a loopback HTTP port: pods by phase, requests by protocol and code, provision time. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { PodPhaseName } from "./state/db.js";

export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<"protocol" | "code">;
  readonly errors: Counter<"protocol" | "code">;
  readonly provisionDuration: Histogram<"result">;
  readonly pods: Gauge<"phase">;
  private server: Server | undefined;

  constructor(podCounts: () => Record<PodPhaseName, number>) {
    collectDefaultMetrics({ register: this.registry, prefix: "tpod_provider_" });
    this.requests = new Counter({
      name: "tpod_provider_requests_total",
      help: "Requests handled, by protocol and result code (OK or the wire error code)",
      labelNames: ["protocol", "code"],
      registers: [this.registry],
    });
    this.errors = new Counter({
      name: "tpod_provider_errors_total",
      help: "Requests that failed, by protocol and wire error code",
      labelNames: ["protocol", "code"],
      registers: [this.registry],
    });
    this.provisionDuration = new Histogram({
      name: "tpod_provider_provision_duration_seconds",
      help: "Time from an accepted provision request to a running pod (or failure)",
      labelNames: ["result"],
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
      registers: [this.registry],
    });
    this.pods = new Gauge({
      name: "tpod_provider_pods",
      help: "Pods known to the daemon, by phase",
      labelNames: ["phase"],
      registers: [this.registry],
      collect() {
        for (const [phase, n] of Object.entries(podCounts())) this.set({ phase }, n);
      },
    });
  }

  /** Serves GET /metrics on `listen` (HOST:PORT, loopback); resolves to the URL. */
  async listen(listen: string): Promise<string> {
    const i = listen.lastIndexOf(":");
    const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
    const port = Number(listen.slice(i + 1));
    this.server = createServer((req, res) => {
      if (req.method !== "GET" || req.url !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": this.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(port, host, () => resolve());
    });
    const addr = this.server.address() as AddressInfo;
    const h = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    return `http://${h}:${addr.port}/metrics`;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
  }
}
