/** The daemon's records as the wire carries them back to publishers (status, provision and update replies). */
import { fromBinary } from "@bufbuild/protobuf";
import { type Endpoint, PodPhase, wire } from "@trustedpods/protocol";
import type { EndpointRecord, PodPhaseName } from "../state/db.js";

export const PHASE: Record<PodPhaseName, PodPhase> = {
  pending: PodPhase.PENDING,
  running: PodPhase.RUNNING,
  stopped: PodPhase.STOPPED,
  failed: PodPhase.FAILED,
  deleted: PodPhase.DELETED,
};

export function endpointToWire(e: EndpointRecord): Endpoint {
  return {
    container: e.container,
    containerPort: e.containerPort,
    target: e.url
      ? { case: "httpUrl", value: e.url }
      : e.tcpAddress
        ? { case: "tcpAddress", value: e.tcpAddress }
        : e.udpAddress
          ? { case: "udpAddress", value: e.udpAddress }
          : { case: undefined },
  } as Endpoint;
}

/** A stored manifest (the Pod bytes as the publisher sent them) as the wire message. */
export function storedManifest(b: Uint8Array): wire.Pod {
  return fromBinary(wire.PodSchema, b);
}
