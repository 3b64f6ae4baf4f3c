/**
 * Manifest (typed Pod from the wire) → engine PodSpec and gateway routes. Pure functions: everything here is
 * decided from the pod, the decrypted secrets and the provider's config, so recovery can redo it exactly.
 */
import { createHash } from "node:crypto";
import path from "node:path";
import { RpcError } from "@trustedpods/p2p";
import { ErrorCode, type Pod } from "@trustedpods/protocol";
import type { Hex } from "viem";
import type { ContainerSpec, MountSpec, PodSpec, VolumeSpec } from "../engine/index.js";
import type { Route } from "../gateway-seam.js";
import type { EndpointRecord } from "../state/db.js";

/** Processes per container; the manifest has no field for it, so the provider caps it. */
export const PIDS_PER_CONTAINER = 1024;

/**
 * The engine's id of a publisher's pod. Pod ids are chosen by publishers (the channel is keyed by publisher and
 * pod id), so two publishers may pick the same one: the engine id hashes both.
 */
export function enginePodId(publisher: string, podId: Hex): string {
  const h = createHash("sha256")
    .update(Buffer.from(publisher.slice(2).toLowerCase(), "hex"))
    .update(Buffer.from(podId.slice(2), "hex"))
    .digest("hex");
  return `p${h.slice(0, 32)}`;
}

function invalid(field: string, message: string): RpcError {
  return new RpcError(ErrorCode.INVALID_ARGUMENT, message, { details: { field } });
}

export interface HttpRoutePlan {
  container: string;
  containerPort: number;
  hostname: string;
}

/** Hostnames for the pod's http ports: the requested one, else CONTAINER-PORT-SHORTID.BASEDOMAIN. */
export function planRoutes(pod: Pod, id: string, baseDomain: string): HttpRoutePlan[] {
  const out: HttpRoutePlan[] = [];
  for (const c of pod.containers)
    for (const p of c.ports)
      if (p.protocol === "http")
        out.push({
          container: c.name,
          containerPort: p.containerPort,
          hostname: p.hostname ?? `${c.name}-${p.containerPort}-${id.slice(1, 13)}.${baseDomain}`,
        });
  return out;
}

export function routesOf(plan: HttpRoutePlan[]): Route[] {
  return plan.map((r) => ({ hostname: r.hostname, container: r.container, containerPort: r.containerPort }));
}

export interface TranslateOptions {
  id: string;
  /** Decrypted secret volume contents by volume name (memory only). */
  secrets: Map<string, Uint8Array>;
  /** Engine image ref per container. */
  images: Record<string, string>;
  publishHostIp: string;
  hosts: string[];
  /**
   * Host ports the pod's tcp and udp ports had before (hostPortKey → port): asked for again so an update or a
   * restart keeps them. A port not in the map gets whatever the engine picks.
   */
  hostPorts?: ReadonlyMap<string, number>;
}

/** Ports published on a host port (http ports go through the gateway). */
export type HostTransport = "tcp" | "udp";

/** The key of one host-published port of a pod in TranslateOptions.hostPorts (tcp keys as before udp existed). */
export function hostPortKey(
  container: string,
  containerPort: number,
  transport: HostTransport = "tcp",
): string {
  return transport === "udp" ? `${container}/${containerPort}/udp` : `${container}/${containerPort}`;
}

/** The host port an endpoint record was published on (records made before hostPort was kept: from the address). */
export function hostPortOf(e: EndpointRecord): number | undefined {
  if (e.protocol === "http") return undefined;
  if (e.hostPort !== undefined) return e.hostPort;
  const m = /:(\d{1,5})$/.exec(e.tcpAddress ?? e.udpAddress ?? "");
  const port = m ? Number(m[1]) : 0;
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** The host ports of a pod's recorded tcp and udp endpoints, keyed by hostPortKey. */
export function recordedHostPorts(endpoints: readonly EndpointRecord[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of endpoints) {
    const port = hostPortOf(e);
    if (port !== undefined && e.protocol !== "http")
      out.set(hostPortKey(e.container, e.containerPort, e.protocol), port);
  }
  return out;
}

/**
 * The engine spec of a pod. A manifest secret volume is one file placed at exactly its mount path; engines
 * mount directories, so each container gets one read-only tmpfs directory per parent directory of its secret
 * files (the directory is shadowed, as in Kubernetes without subPath).
 */
export function toPodSpec(pod: Pod, o: TranslateOptions): PodSpec {
  const volumes: VolumeSpec[] = [];
  for (const v of pod.volumes) {
    if (v.kind === "emptyDir") volumes.push({ name: v.name, kind: "emptyDir" });
    else if (v.kind === "persistent")
      volumes.push({ name: v.name, kind: "persistent", sizeBytes: Number(v.sizeBytes) });
  }
  const containers: ContainerSpec[] = pod.containers.map((c, ci) => {
    const env: Record<string, string> = {};
    for (const e of c.env) {
      if (e.kind === "value") env[e.name] = e.value;
      else {
        const bytes = o.secrets.get(e.secret);
        if (!bytes) throw new RpcError(ErrorCode.INTERNAL, `secret ${e.secret} was not fetched`);
        try {
          env[e.name] = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        } catch {
          throw invalid(
            `spec.containers[${ci}].env`,
            `secret "${e.secret}" is not UTF-8 text and cannot be an env var`,
          );
        }
      }
    }
    const mounts: MountSpec[] = [];
    const secretDirs = new Map<
      string,
      { volume: string; files: Record<string, Uint8Array>; readOnly: boolean }
    >();
    for (const m of c.volumeMounts) {
      const v = pod.volumes.find((x) => x.name === m.name);
      if (!v) continue;
      if (v.kind !== "secret") {
        mounts.push({ volume: v.name, path: m.mountPath, readOnly: m.readOnly });
        continue;
      }
      const dir = path.posix.dirname(m.mountPath);
      let group = secretDirs.get(dir);
      if (!group) {
        group = {
          volume: `s${ci}x${secretDirs.size}-${createHash("sha256").update(dir).digest("hex").slice(0, 8)}`,
          files: {},
          readOnly: true,
        };
        secretDirs.set(dir, group);
      }
      const bytes = o.secrets.get(v.name);
      if (!bytes) throw new RpcError(ErrorCode.INTERNAL, `secret ${v.name} was not fetched`);
      group.files[path.posix.basename(m.mountPath)] = bytes;
    }
    for (const [dir, g] of secretDirs) {
      volumes.push({ name: g.volume, kind: "secret", files: g.files });
      mounts.push({ volume: g.volume, path: dir, readOnly: true });
    }
    const image = o.images[c.name];
    if (!image) throw new RpcError(ErrorCode.INTERNAL, `image of ${c.name} was not loaded`);
    const spec: ContainerSpec = {
      name: c.name,
      image,
      env,
      ports: c.ports.map((p) =>
        p.protocol === "http"
          ? { containerPort: p.containerPort, protocol: "http" as const }
          : {
              containerPort: p.containerPort,
              protocol: p.protocol,
              hostPort: o.hostPorts?.get(hostPortKey(c.name, p.containerPort, p.protocol)) ?? 0,
              ...(o.publishHostIp ? { hostIp: o.publishHostIp } : {}),
            },
      ),
      mounts,
      resources: {
        cpuMillis: Number(c.resources.cpuMillis),
        memoryBytes: Number(c.resources.memoryBytes),
        pids: PIDS_PER_CONTAINER,
      },
    };
    if (c.command.length) spec.command = c.command;
    if (c.args.length) spec.args = c.args;
    if (c.workingDir) spec.workingDir = c.workingDir;
    if (c.healthCheck) {
      const h = c.healthCheck;
      spec.healthCheck = {
        probe:
          h.probe.kind === "http"
            ? { kind: "http", path: h.probe.path, port: h.probe.port }
            : { kind: "exec", argv: h.probe.command },
        intervalMs: Number(h.intervalMs),
        timeoutMs: Number(h.timeoutMs),
        retries: h.retries,
        startPeriodMs: Number(h.startPeriodMs),
      };
    }
    return spec;
  });
  return {
    podId: o.id,
    containers,
    volumes,
    restart: { mode: "on-failure", maxRetries: 5 },
    scaling: {
      minReplicas: pod.replicas.min === 0 ? 0 : 1,
      idleSeconds: Number(pod.replicas.idleSeconds),
      hosts: o.hosts,
    },
  };
}

/** Endpoints from the plan and the engine's published tcp and udp ports. */
export function endpointsOf(
  pod: Pod,
  plan: HttpRoutePlan[],
  published: { container: string; containerPort: number; hostPort: number; protocol?: string }[],
  publicHost: string,
  urlFor: (hostname: string) => string,
): EndpointRecord[] {
  const out: EndpointRecord[] = [];
  for (const c of pod.containers)
    for (const p of c.ports) {
      if (p.protocol === "http") {
        const r = plan.find((x) => x.container === c.name && x.containerPort === p.containerPort);
        const url = r ? urlFor(r.hostname) : "";
        out.push({
          container: c.name,
          containerPort: p.containerPort,
          protocol: "http",
          ...(r ? { hostname: r.hostname } : {}),
          ...(url ? { url } : {}),
        });
      } else {
        // Engines report a udp port's protocol; a published port without one is tcp (status before udp).
        const pub = published.find(
          (x) =>
            x.container === c.name &&
            x.containerPort === p.containerPort &&
            (x.protocol === "udp") === (p.protocol === "udp"),
        );
        const address = pub && `${publicHost.includes(":") ? `[${publicHost}]` : publicHost}:${pub.hostPort}`;
        out.push({
          container: c.name,
          containerPort: p.containerPort,
          protocol: p.protocol,
          ...(pub && address
            ? {
                ...(p.protocol === "udp" ? { udpAddress: address } : { tcpAddress: address }),
                hostPort: pub.hostPort,
              }
            : {}),
        });
      }
    }
  return out;
}
