/** `status`: the signer's pod as the daemon records it, its containers as the engine sees them, its billing. Signed. */
import type { SignedCallContext } from "@trustedpods/p2p";
import {
  ContainerState,
  type PodBilling,
  PodPhase,
  StatusRequestSchema,
  StatusResponseSchema,
} from "@trustedpods/protocol";
import type { ContainerStatus, Engine } from "../engine/types.js";
import type { StateDb } from "../state/db.js";
import { decodePod, ownedPod, podKey } from "./admission.js";
import { shortCall } from "./limits.js";
import { signed } from "./serve.js";
import { endpointToWire, PHASE, storedManifest } from "./to-wire.js";

export interface StatusDeps {
  state: Pick<StateDb, "getPod">;
  engine: Pick<Engine, "status">;
  /** The pod's billing summary (undefined with a test gate, or before billing knew the pod). */
  billingOf: (id: string) => PodBilling | undefined;
}

function containerToWire(ct: ContainerStatus) {
  const state =
    ct.state === "running"
      ? ContainerState.RUNNING
      : ct.state === "exited" || ct.state === "dead"
        ? ContainerState.EXITED
        : ContainerState.WAITING;
  return {
    name: ct.name,
    state,
    healthy: ct.health !== "unhealthy" && ct.state === "running",
    restartCount: ct.restarts,
    exitCode: ct.exitCode ?? 0,
    startedAtMs: BigInt(ct.startedAt?.getTime() ?? 0),
    message: ct.health === "none" ? "" : `health: ${ct.health}`,
  };
}

export async function status(d: StatusDeps, r: { podId: Uint8Array }, c: SignedCallContext) {
  const { id } = podKey(r.podId, c);
  const rec = ownedPod(d.state, id);
  let phase = PHASE[rec.phase];
  let containers: ReturnType<typeof containerToWire>[] = [];
  let replicas = 0;
  if (rec.phase === "running" || rec.phase === "stopped") {
    const st = await d.engine.status(id).catch(() => undefined);
    containers = (st?.containers ?? []).map(containerToWire);
    replicas = st?.running ? 1 : 0;
    if (rec.phase === "running" && !st?.running) {
      const pod = decodePod(storedManifest(rec.manifest));
      if (pod.replicas.min === 0) phase = PodPhase.SCALED_TO_ZERO;
    }
  }
  return {
    podId: r.podId,
    phase,
    message: rec.message,
    containers,
    endpoints: rec.endpoints.map(endpointToWire),
    replicas,
    billing: d.billingOf(id),
  };
}

export const statusProtocol = signed("status", StatusRequestSchema, StatusResponseSchema, status, shortCall);
