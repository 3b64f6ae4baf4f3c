import { type CallOptions, callSignedUnary } from "@trustedpods/p2p/browser";
import { ContainerState, PodPhase, StatusRequestSchema, StatusResponseSchema } from "@trustedpods/protocol";
import { type Hex, hexToBytes } from "viem";
import { endpointsFromWire, type PodConnection, type PodEndpoints, signed } from "../connection.js";

/** A pod's state as the provider reports it, in plain JSON-friendly values. */
export interface PodStatus {
  podId: Hex;
  phase: string;
  message: string;
  replicas: number;
  containers: {
    name: string;
    replica: number;
    state: string;
    healthy: boolean;
    restarts: number;
    exitCode: number;
    startedAt: string | null;
    message: string;
  }[];
  endpoints: PodEndpoints;
  billing: PodBilling | null;
}

/** The provider's billing view of a pod; amounts in token base units (decimal strings), times in chain seconds. */
export interface PodBilling {
  /** checked, running, stopped_funds, closed, deleted, removed or settled. */
  state: string;
  token: string;
  ratePerSecond: string;
  deposit: string;
  claimed: string;
  accrued: string;
  remainingSeconds: number;
  /** When the deposit runs out; 0: it does not (closing first, or zero rate). */
  runsOutAt: number;
  closeAt: number;
  noticeSeconds: number;
  /** When a stopped pod and its volumes are removed if nothing changes; 0: not scheduled. */
  removeAt: number;
  /** The chain time the figures were read at. */
  chainTime: number;
  warnings: string[];
  cpuSeconds: number;
  memoryBytes: number;
}

const phaseName = (p: PodPhase) => (PodPhase[p] ?? "UNSPECIFIED").toLowerCase().replace(/_/g, "-");

export async function podStatus(
  conn: PodConnection,
  podId: Hex,
  options: CallOptions = {},
): Promise<PodStatus> {
  const r = await signed("status", () =>
    callSignedUnary(
      conn.node,
      conn.target,
      "status",
      StatusRequestSchema,
      { podId: hexToBytes(podId) },
      StatusResponseSchema,
      { signer: conn.signer, chainId: conn.chainId, provider: conn.provider, podId },
      { timeoutMs: 15_000, ...options },
    ),
  );
  const b = r.billing;
  return {
    podId,
    phase: phaseName(r.phase),
    message: r.message,
    replicas: r.replicas,
    containers: r.containers.map((c) => ({
      name: c.name,
      replica: c.replica,
      state: (ContainerState[c.state] ?? "UNSPECIFIED").toLowerCase(),
      healthy: c.healthy,
      restarts: c.restartCount,
      exitCode: c.exitCode,
      startedAt: c.startedAtMs ? new Date(Number(c.startedAtMs)).toISOString() : null,
      message: c.message,
    })),
    endpoints: endpointsFromWire(r.endpoints),
    billing: b
      ? {
          state: b.state,
          token: b.token,
          ratePerSecond: b.ratePerSecond,
          deposit: b.deposit,
          claimed: b.claimed,
          accrued: b.accrued,
          remainingSeconds: Number(b.remainingSeconds),
          runsOutAt: Number(b.runsOutAt),
          closeAt: Number(b.closeAt),
          noticeSeconds: Number(b.noticeSeconds),
          removeAt: Number(b.removeAt),
          chainTime: Number(b.chainTime),
          warnings: [...b.warnings],
          cpuSeconds: b.cpuSeconds,
          memoryBytes: Number(b.memoryBytes),
        }
      : null,
  };
}
