/**
 * The daemon's gateway from its config: the Node gateway on `gateway.listen`, with nginx in front when the
 * native data plane is chosen (or found, with `auto`), its request metrics, and a waker bound to the pod table.
 */
import { Counter, Gauge } from "prom-client";
import type { ProviderConfig } from "../config.js";
import type { Engine } from "../engine/types.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { StateDb } from "../state/db.js";
import { createGateway } from "./gateway.js";
import { nginxDirFor } from "./nginx/front-door.js";
import { findNginx } from "./nginx/process.js";
import type { Gateway } from "./types.js";

/**
 * The HTTP gateway on `gateway.listen`. Its waker starts a scaled-to-zero pod only while the daemon's state says
 * the pod runs, so a pod stopped for non-payment or being deleted is never woken by a request.
 */
export async function startGateway(
  config: ProviderConfig,
  d: { engine: Engine; state: Pick<StateDb, "getPod">; metrics: Metrics; log: Logger },
): Promise<Gateway> {
  const i = config.gateway.listen.lastIndexOf(":");
  const host = config.gateway.listen.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(config.gateway.listen.slice(i + 1));
  const requests = new Counter({
    name: "tpod_provider_gateway_requests_total",
    help: "HTTP requests through the gateway, by status class and gateway error",
    labelNames: ["status", "error"],
    registers: [d.metrics.registry],
  });
  const nginx = nginxFor(config, d.log);
  const gw = await createGateway({
    ...(nginx ? { nginx } : {}),
    engine: d.engine,
    waker: {
      async wake(id) {
        const phase = d.state.getPod(id)?.phase;
        if (phase !== "running") throw new Error(`pod ${id} is ${phase ?? "unknown"}: not woken`);
        await d.engine.start(id);
      },
      sleep: (id) => d.engine.stop(id),
    },
    listen: { host, port },
    baseDomain: config.gateway.baseDomain,
    ...(config.gateway.publicUrl ? { publicUrl: config.gateway.publicUrl } : {}),
    log: d.log.child({ module: "gateway" }),
    onRequest: (e) => requests.inc({ status: `${Math.floor(e.status / 100)}xx`, error: e.error ?? "" }),
  });
  new Gauge({
    name: "tpod_provider_gateway_info",
    help: "The gateway's data plane (nginx in front of the Node gateway, or the Node gateway alone)",
    labelNames: ["data_plane"],
    registers: [d.metrics.registry],
  }).set({ data_plane: gw.dataPlane }, 1);
  return gw;
}

/** The native data plane's settings, or undefined for the Node gateway alone (dataPlane node, or auto without nginx). */
export function nginxFor(
  config: ProviderConfig,
  log: Logger,
): { binary: string; dir: string; workers?: number } | undefined {
  const { dataPlane, nginx, workers } = config.gateway;
  if (dataPlane === "node") return undefined;
  const binary = findNginx(nginx);
  if (!binary) {
    if (dataPlane === "nginx")
      throw new Error(
        `gateway.dataPlane is nginx but ${nginx ? `${nginx} does not exist` : "no nginx binary was found"}: apt install nginx, or set gateway.nginx`,
      );
    log.warn(
      "gateway: nginx is not installed; the Node gateway serves the port alone (slower for busy pods)",
    );
    return undefined;
  }
  return { binary, dir: nginxDirFor(config.dataDir), ...(workers ? { workers } : {}) };
}
