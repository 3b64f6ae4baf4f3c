/** `provision`: admit a new pod (checks, then payment), then pull, decrypt and start it. Signed. */
import { toBinary } from "@bufbuild/protobuf";
import type { SignedCallContext } from "@trustedpods/p2p";
import { ProvisionRequestSchema, ProvisionResponseSchema, wire } from "@trustedpods/protocol";
import type { PodManager } from "../pods.js";
import { type AdmissionDeps, admitProvision } from "./admission.js";
import { longCall } from "./limits.js";
import { signed } from "./serve.js";
import { endpointToWire } from "./to-wire.js";

export interface ProvisionDeps extends AdmissionDeps {
  pods: Pick<PodManager, "provision">;
}

type ProvisionRequest = {
  podId: Uint8Array;
  pod?: wire.Pod;
  channel?: { chainId: bigint; paymentsContract: string };
};

export async function provision(d: ProvisionDeps, r: ProvisionRequest, c: SignedCallContext) {
  // Payment is part of admission: nothing is pulled, decrypted or started for a pod nobody pays for.
  const { id, podId, pod, channel } = await admitProvision(d, r, c);
  const endpoints = await d.pods.provision(
    {
      id,
      publisher: c.request.publisher,
      podId,
      manifest: toBinary(wire.PodSchema, r.pod!),
      pod,
      channel: channel
        ? { chainId: channel.chainId.toString(), paymentsContract: channel.paymentsContract }
        : null,
    },
    c.signal,
  );
  return { podId: r.podId, endpoints: endpoints.map(endpointToWire) };
}

export const provisionProtocol = signed(
  "provision",
  ProvisionRequestSchema,
  ProvisionResponseSchema,
  provision,
  longCall,
);
