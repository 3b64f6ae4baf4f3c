/**
 * Keeping a pod's tcp and udp host ports across updates and restarts: the ports recorded for the pod are asked for again,
 * unless another program took one meanwhile (then the engine picks a new one and the publisher is told).
 */
import dgram from "node:dgram";
import net from "node:net";
import type { Engine } from "../engine/types.js";
import type { EndpointRecord } from "../state/db.js";
import { type HostTransport, hostPortKey, recordedHostPorts } from "./translate.js";

/**
 * Whether nothing listens on `port` at `hostIp` ("" = every address) on this host, on the port's transport:
 * binds it briefly to find out.
 */
export function localPortFree(
  hostIp: string,
  port: number,
  transport: HostTransport = "tcp",
): Promise<boolean> {
  if (transport === "udp")
    return new Promise((resolve) => {
      const socket = dgram.createSocket({ type: hostIp.includes(":") ? "udp6" : "udp4", reuseAddr: false });
      socket.once("error", () => {
        socket.close();
        resolve(false);
      });
      socket.bind({ address: hostIp || "0.0.0.0", port, exclusive: true }, () =>
        socket.close(() => resolve(true)),
      );
    });
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: hostIp || "0.0.0.0", port, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

export interface MovedPort {
  key: string;
  from: number;
}

/**
 * The recorded host ports that can be asked for again: those the pod's own containers publish now (they are
 * freed when a container is recreated) and those nothing else holds. The rest are `moved`.
 */
export async function reusableHostPorts(
  engine: Engine,
  podId: string,
  previous: readonly EndpointRecord[],
  isFree: (port: number, transport: HostTransport) => Promise<boolean>,
): Promise<{ hostPorts: Map<string, number>; moved: MovedPort[] }> {
  const hostPorts = recordedHostPorts(previous);
  const moved: MovedPort[] = [];
  if (hostPorts.size === 0) return { hostPorts, moved };
  const status = await engine.status(podId).catch(() => undefined);
  const ours = new Set(status?.containers.flatMap((c) => c.ports.map((p) => p.hostPort)) ?? []);
  for (const [key, port] of hostPorts) {
    if (ours.has(port) || (await isFree(port, key.endsWith("/udp") ? "udp" : "tcp"))) continue;
    hostPorts.delete(key);
    moved.push({ key, from: port });
  }
  return { hostPorts, moved };
}

/** What the publisher reads in the pod's status message when a port could not be kept. */
export function movedPortNotes(moved: readonly MovedPort[], endpoints: readonly EndpointRecord[]): string[] {
  return moved.map((m) => {
    const now = endpoints.find(
      (e) => e.protocol !== "http" && hostPortKey(e.container, e.containerPort, e.protocol) === m.key,
    )?.hostPort;
    return `${m.key.endsWith("/udp") ? "udp" : "tcp"} port ${m.key}: host port ${m.from} was taken by another program, so it moved to ${now ?? "a new port"}`;
  });
}
