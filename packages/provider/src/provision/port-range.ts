/**
 * A fixed range of host ports for pods' tcp and udp endpoints (`engine.hostPortRange`). Without it the engine
 * picks any free port; with it every endpoint gets a port from the range, so an operator can open exactly
 * that range in a firewall, or forward it into a VM (the provider image's QEMU user networking forwards only
 * the ports it is told about).
 *
 * A port is in use when an active pod's record has it (per transport: tcp 20000 and udp 20000 are different
 * sockets), when another operation has reserved it and not yet recorded it, or when a bind probe finds another
 * program on it. A pod keeps the ports it was given across updates and restarts (host-ports.ts).
 */
import { RpcError } from "@trustedpods/p2p";
import { ErrorCode, type Pod } from "@trustedpods/protocol";
import type { EndpointRecord, StateDb } from "../state/db.js";
import { type HostTransport, hostPortKey, hostPortOf, recordedHostPorts } from "./translate.js";

export interface HostPortRange {
  from: number;
  to: number;
}

/** The lowest port a range may start at: ports below 1024 are privileged and belong to system services. */
export const MIN_RANGE_PORT = 1024;
export const MAX_RANGE_PORT = 65535;

/** One host port a pod asks for: the manifest's position (for the error's field), its key and transport. */
export interface HostPortNeed {
  key: string;
  transport: HostTransport;
  field: string;
}

/** "PORT/TRANSPORT": the unit of use (a tcp and a udp socket may share a number). */
export function portUse(port: number, transport: HostTransport): string {
  return `${port}/${transport}`;
}

function transportOfKey(key: string): HostTransport {
  return key.endsWith("/udp") ? "udp" : "tcp";
}

/** Every tcp and udp port of the pod, each of which is published on one host port. */
export function hostPortNeeds(pod: Pod): HostPortNeed[] {
  const out: HostPortNeed[] = [];
  pod.containers.forEach((c, i) => {
    c.ports.forEach((p, j) => {
      if (p.protocol === "http") return;
      out.push({
        key: hostPortKey(c.name, p.containerPort, p.protocol),
        transport: p.protocol,
        field: `spec.containers[${i}].ports[${j}]`,
      });
    });
  });
  return out;
}

/** The host ports (as portUse keys) recorded for the active pods other than `exceptId`. */
export function hostPortsInUse(state: Pick<StateDb, "listPods">, exceptId: string): Set<string> {
  const out = new Set<string>();
  for (const p of state.listPods(["pending", "running", "stopped"])) {
    if (p.id === exceptId) continue;
    for (const e of p.endpoints) {
      const port = hostPortOf(e);
      if (port !== undefined && e.protocol !== "http") out.add(portUse(port, e.protocol));
    }
  }
  return out;
}

function inRange(range: HostPortRange, port: number): boolean {
  return port >= range.from && port <= range.to;
}

function rangeText(range: HostPortRange): string {
  return `${range.from}-${range.to}`;
}

/** The typed refusal when a pod needs more ports of a transport than the range has left. */
export function rangeExhausted(
  range: HostPortRange,
  need: HostPortNeed,
  wanted: number,
  left: number,
): RpcError {
  return new RpcError(
    ErrorCode.RESOURCE_EXHAUSTED,
    `this provider's host port range ${rangeText(range)} has no free ${need.transport} port left for ${need.key} (the pod needs ${wanted} new ${need.transport} port${wanted === 1 ? "" : "s"}, ${left} ${left === 1 ? "is" : "are"} free)`,
    { details: { field: need.field, reason: "host-port-range" } },
  );
}

/**
 * Admission's check (no side effects, no probes): the pod's tcp and udp ports that are not already recorded for
 * it fit into what the range has left after every other active pod's. Refused with RESOURCE_EXHAUSTED before
 * anything is pulled or recorded.
 */
export function checkHostPortRange(
  range: HostPortRange,
  pod: Pod,
  inUse: ReadonlySet<string>,
  recorded: readonly EndpointRecord[],
): void {
  const kept = recordedHostPorts(recorded);
  const size = range.to - range.from + 1;
  for (const transport of ["tcp", "udp"] as const) {
    const fresh = hostPortNeeds(pod).filter((n) => n.transport === transport && !kept.has(n.key));
    if (fresh.length === 0) continue;
    let used = 0;
    for (let p = range.from; p <= range.to; p++) if (inUse.has(portUse(p, transport))) used++;
    for (const [key, port] of kept)
      if (transportOfKey(key) === transport && inRange(range, port) && !inUse.has(portUse(port, transport)))
        used++;
    const left = size - used;
    if (fresh.length > left) throw rangeExhausted(range, fresh[left]!, fresh.length, left);
  }
}

/**
 * Gives pods host ports from the range and holds each one for its pod until the operation that asked for it
 * has recorded it (release). Concurrent provisions never get the same port: a port is reserved before the bind
 * probe that checks it awaits.
 */
export class HostPortAllocator {
  private readonly reserved = new Map<string, Set<string>>();

  constructor(
    readonly range: HostPortRange,
    private readonly inUse: (exceptId: string) => Set<string>,
    private readonly isFree: (port: number, transport: HostTransport) => Promise<boolean>,
  ) {}

  private taken(use: string, id: string, recorded: ReadonlySet<string>): boolean {
    if (recorded.has(use)) return true;
    for (const [other, set] of this.reserved) if (other !== id && set.has(use)) return true;
    return this.reserved.get(id)?.has(use) ?? false;
  }

  /**
   * `kept` (the ports the pod keeps) plus a port from the range for every need it lacks. When the range runs
   * out, throws RESOURCE_EXHAUSTED and holds nothing for the pod.
   */
  async assign(
    id: string,
    needs: readonly HostPortNeed[],
    kept: ReadonlyMap<string, number>,
  ): Promise<Map<string, number>> {
    const out = new Map(kept);
    const recorded = this.inUse(id);
    for (const [key, port] of kept) recorded.add(portUse(port, transportOfKey(key)));
    const mine = new Set<string>();
    this.reserved.set(id, mine);
    const missing = needs.filter((n) => !out.has(n.key));
    for (const [index, need] of missing.entries()) {
      const port = await this.pick(id, need.transport, recorded, mine);
      if (port === undefined) {
        this.release(id);
        // `index` ports were free for it: that is how many the range had left.
        throw rangeExhausted(this.range, need, missing.length, index);
      }
      out.set(need.key, port);
    }
    return out;
  }

  /** The lowest port of the range nobody uses or holds and that a bind probe finds free, reserved for `id`. */
  private async pick(
    id: string,
    transport: HostTransport,
    recorded: ReadonlySet<string>,
    mine: Set<string>,
  ): Promise<number | undefined> {
    for (let port = this.range.from; port <= this.range.to; port++) {
      const use = portUse(port, transport);
      if (this.taken(use, id, recorded)) continue;
      mine.add(use);
      if (await this.isFree(port, transport)) return port;
      mine.delete(use);
    }
    return undefined;
  }

  /** Drops what was held for the pod (its ports are in its record now, or the operation failed). */
  release(id: string): void {
    this.reserved.delete(id);
  }
}
