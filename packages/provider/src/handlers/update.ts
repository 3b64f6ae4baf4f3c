/** `update`: admit a new spec for the signer's pod (checks, then the channel still pays), then apply it. Signed. */
import { toBinary } from "@bufbuild/protobuf";
import type { SignedCallContext } from "@trustedpods/p2p";
import { UpdateRequestSchema, UpdateResponseSchema, wire } from "@trustedpods/protocol";
import type { PodManager } from "../pods.js";
import { type AdmissionDeps, admitUpdate } from "./admission.js";
import { longCall } from "./limits.js";
import { signed } from "./serve.js";
import { endpointToWire } from "./to-wire.js";

export interface UpdateDeps extends AdmissionDeps {
  pods: Pick<PodManager, "update">;
}

export async function update(d: UpdateDeps, r: { podId: Uint8Array; pod?: wire.Pod }, c: SignedCallContext) {
  const req = await admitUpdate(d, r, c);
  const endpoints = await d.pods.update(req.id, toBinary(wire.PodSchema, r.pod!), req.pod, c.signal);
  // From now on the channel must pay the updated spec's price (the billing loop checks it every tick).
  await d.gate.onUpdated?.(req);
  return { endpoints: endpoints.map(endpointToWire) };
}

export const updateProtocol = signed("update", UpdateRequestSchema, UpdateResponseSchema, update, longCall);
