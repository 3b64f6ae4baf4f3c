/**
 * Admission: every check a pod passes before the provider pulls, decrypts or starts anything for it, in one
 * place so quote, provision and update refuse the same pods for the same reasons (and in the same order: the
 * first failing check names the field). Nothing here has side effects; the payment gate is asked last.
 */
import path from "node:path";
import { RpcError, type SignedCallContext } from "@trustedpods/p2p";
import { ErrorCode, type Pod, podFromWire, WireError, type wire } from "@trustedpods/protocol";
import { bytesToHex, type Hex } from "viem";
import type { PaymentGate, ProvisionPaymentRequest } from "../billing-seam.js";
import { checkHostPortRange, type HostPortRange, hostPortsInUse } from "../provision/port-range.js";
import { enginePodId } from "../provision/translate.js";
import type { PodPhaseName, StateDb, StoredPod } from "../state/db.js";

const ENGINE_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
const MIN_MEMORY = 6 * 1024 * 1024;

/** What admission reads: the pod table, the gate and the provider's limits. */
export interface AdmissionDeps {
  state: Pick<StateDb, "getPod" | "hostnamesInUse" | "countActivePods" | "listPods">;
  gate: Pick<PaymentGate, "checkProvision" | "checkUpdate" | "onUpdated">;
  chainId: number;
  baseDomain: string;
  maxPods: number;
  /** engine.hostPortRange: a pod whose tcp and udp ports do not fit into what it has left is refused. */
  hostPortRange?: HostPortRange;
}

/** A pod admitted for provision or update: its engine id, its bytes32 pod id and the decoded pod. */
export type Admitted = ProvisionPaymentRequest & { id: string };

function invalid(field: string, message: string): RpcError {
  return new RpcError(ErrorCode.INVALID_ARGUMENT, message, { details: { field } });
}

/** A pod as the wire sent it, decoded and validated; WireError becomes INVALID_ARGUMENT naming the field. */
export function decodePod(msg: wire.Pod | undefined): Pod {
  if (!msg) throw new RpcError(ErrorCode.INVALID_ARGUMENT, "pod is missing", { details: { field: "pod" } });
  try {
    return podFromWire(msg);
  } catch (err) {
    if (err instanceof WireError) {
      const first = err.issues[0];
      throw new RpcError(ErrorCode.INVALID_ARGUMENT, `invalid pod: ${err.message}`, {
        details: { field: first ? first.path.join(".") : "pod", reason: "invalid-pod" },
      });
    }
    throw err;
  }
}

/** Checks what this provider's engine cannot run although the manifest is valid (names, sizes, image kinds). */
export function checkRunnable(pod: Pod): void {
  // A pod is priced (and its channel claimed) for max replicas, and the engines run one container set per pod:
  // more than one replica would be paid for and not run. Refused at quote, provision and update, before any
  // money moves.
  if (pod.replicas.max > 1)
    throw new RpcError(
      ErrorCode.FAILED_PRECONDITION,
      `this provider runs one replica per pod, and the pod asks for up to ${pod.replicas.max} (spec.replicas.max): a pod is priced for its max replicas, so it would pay for replicas that do not run; set replicas to at most 1`,
      { details: { field: "spec.replicas.max", reason: "replicas-unsupported" } },
    );
  pod.containers.forEach((c, i) => {
    if (!ENGINE_NAME_RE.test(c.name))
      throw invalid(`spec.containers[${i}].name`, `container name "${c.name}" is longer than 32 characters`);
    if (c.resources.memoryBytes < BigInt(MIN_MEMORY))
      throw invalid(`spec.containers[${i}].resources.memory`, "memory must be at least 6Mi on this provider");
    if (c.resources.gpu > 0n)
      throw new RpcError(ErrorCode.FAILED_PRECONDITION, "this provider has no GPUs", {
        details: { field: `spec.containers[${i}].resources.gpu` },
      });
    if (c.image.kind === "local")
      throw invalid(
        `spec.containers[${i}].image`,
        `image "${c.image.name}" is a local name: upload it to IPFS before provisioning`,
      );
    c.volumeMounts.forEach((m, j) => {
      const v = pod.volumes.find((x) => x.name === m.name);
      if (v?.kind === "secret" && path.posix.dirname(m.mountPath) === "/")
        throw invalid(
          `spec.containers[${i}].volumeMounts[${j}].mountPath`,
          "a secret file must be mounted below a directory, not in /",
        );
    });
  });
  pod.volumes.forEach((v, i) => {
    if (!ENGINE_NAME_RE.test(v.name))
      throw invalid(`spec.volumes[${i}].name`, `volume name "${v.name}" is longer than 32 characters`);
  });
}

/** The wire pod decoded and runnable here: what quote, provision and update all start with. */
export function admitPod(msg: wire.Pod | undefined): Pod {
  const pod = decodePod(msg);
  checkRunnable(pod);
  return pod;
}

function bytes32(b: Uint8Array, field: string): Hex {
  if (b.length !== 32)
    throw new RpcError(ErrorCode.INVALID_ARGUMENT, `${field} must be 32 bytes`, { details: { field } });
  return bytesToHex(b);
}

/** The body's pod id must be the one signed in the envelope; the pod is the signer's own. */
export function podKey(bodyPodId: Uint8Array, c: SignedCallContext): { id: string; podId: Hex } {
  const podId = bytes32(bodyPodId, "pod_id");
  if (podId.toLowerCase() !== c.request.podId.toLowerCase())
    throw new RpcError(ErrorCode.INVALID_ARGUMENT, "pod_id differs from the signed request's pod id", {
      details: { field: "pod_id" },
    });
  return { id: enginePodId(c.request.publisher, podId), podId };
}

/** The signer's pod; another publisher's pod is simply not found (pods are looked up by signer and pod id). */
export function ownedPod(state: Pick<StateDb, "getPod">, id: string): StoredPod {
  const rec = state.getPod(id);
  if (!rec) throw new RpcError(ErrorCode.NOT_FOUND, "no such pod", { details: { field: "pod_id" } });
  return rec;
}

/**
 * Requested hostnames must be one label under the gateway's base domain (a pod cannot claim someone else's
 * domain on this provider) and not used by another pod.
 */
export function checkHostnames(d: Pick<AdmissionDeps, "state" | "baseDomain">, id: string, pod: Pod): void {
  const used = d.state.hostnamesInUse(id);
  const suffix = `.${d.baseDomain}`;
  for (const c of pod.containers)
    for (const p of c.ports) {
      if (p.hostname && (!p.hostname.endsWith(suffix) || p.hostname.slice(0, -suffix.length).includes(".")))
        throw new RpcError(
          ErrorCode.INVALID_ARGUMENT,
          `hostname ${p.hostname} must be NAME${suffix} on this provider`,
          { details: { field: "hostname" } },
        );
      if (p.hostname && used.has(p.hostname))
        throw new RpcError(ErrorCode.ALREADY_EXISTS, `hostname ${p.hostname} is used by another pod`, {
          details: { field: "hostname" },
        });
    }
}

function checkChannelChain(
  d: Pick<AdmissionDeps, "chainId">,
  channel: { chainId: bigint } | undefined,
): void {
  if (channel && channel.chainId !== BigInt(d.chainId))
    throw new RpcError(
      ErrorCode.INVALID_ARGUMENT,
      `channel is on chain ${channel.chainId}, not ${d.chainId}`,
      {
        details: { field: "channel.chain_id" },
      },
    );
}

/** The pods a provider holds and how many it accepts. */
interface Capacity {
  state: Pick<StateDb, "getPod" | "countActivePods">;
  maxPods: number;
}

function checkCapacity(d: Capacity): void {
  if (d.state.countActivePods() >= d.maxPods)
    throw new RpcError(
      ErrorCode.RESOURCE_EXHAUSTED,
      `this provider runs as many pods as it accepts (${d.maxPods} pods); choose another provider or try later`,
      { details: { reason: "max-pods" } },
    );
}

const HOLDS_A_PLACE: readonly PodPhaseName[] = ["pending", "running", "stopped"];

/** Room for a pod at quote time: a new pod needs a free place, one the provider holds (an update) does not. */
function checkRoomFor(d: Capacity, held: StoredPod | undefined): void {
  if (held && HOLDS_A_PLACE.includes(held.phase)) return;
  checkCapacity(d);
}

/**
 * What a quote checks of pod `id` (the engine id of the publisher's pod) before it prices it: everything
 * provision and update would refuse without reading the chain (room, hostnames, host ports), so that no
 * publisher opens a channel and locks a deposit for a pod that provision then refuses.
 */
export function checkQuotable(
  d: Pick<AdmissionDeps, "state" | "maxPods" | "baseDomain" | "hostPortRange">,
  id: string,
  pod: Pod,
): void {
  const held = d.state.getPod(id);
  checkRoomFor(d, held);
  checkHostnames(d, id, pod);
  const holds = held !== undefined && HOLDS_A_PLACE.includes(held.phase);
  checkHostPorts(d, id, pod, holds ? held.endpoints : []);
}

/** The pod's new tcp and udp ports fit into the host port range (its recorded ones, on update, it keeps). */
function checkHostPorts(
  d: Pick<AdmissionDeps, "state" | "hostPortRange">,
  id: string,
  pod: Pod,
  recorded: StoredPod["endpoints"],
): void {
  if (d.hostPortRange) checkHostPortRange(d.hostPortRange, pod, hostPortsInUse(d.state, id), recorded);
}

/**
 * A new pod: signed for this pod id, runnable here, its channel on this chain, room for it, its hostnames free,
 * and (last, the only check that reads the chain) paid for. Nothing is pulled, decrypted or started before.
 */
export async function admitProvision(
  d: AdmissionDeps,
  r: { podId: Uint8Array; pod?: wire.Pod; channel?: { chainId: bigint; paymentsContract: string } },
  c: SignedCallContext,
): Promise<Admitted> {
  const { id, podId } = podKey(r.podId, c);
  const pod = admitPod(r.pod);
  checkChannelChain(d, r.channel);
  checkCapacity(d);
  checkHostnames(d, id, pod);
  checkHostPorts(d, id, pod, []);
  const channel = r.channel
    ? { chainId: r.channel.chainId, paymentsContract: r.channel.paymentsContract }
    : undefined;
  const req = { id, publisher: c.request.publisher, podId, pod, channel };
  await d.gate.checkProvision(req);
  return req;
}

/** A new spec for the signer's pod: runnable here, its hostnames free, and still paid for by its channel. */
export async function admitUpdate(
  d: AdmissionDeps,
  r: { podId: Uint8Array; pod?: wire.Pod },
  c: SignedCallContext,
): Promise<Admitted> {
  const { id, podId } = podKey(r.podId, c);
  const pod = admitPod(r.pod);
  const rec = ownedPod(d.state, id);
  checkHostnames(d, id, pod);
  checkHostPorts(d, id, pod, rec.endpoints);
  const req = { id, publisher: c.request.publisher, podId, pod, channel: undefined };
  await d.gate.checkUpdate?.(req);
  return req;
}
