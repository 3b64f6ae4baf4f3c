/** `delete`: remove the signer's pod (billing settles through the gate's onDeleted). Signed. */
import type { SignedCallContext } from "@trustedpods/p2p";
import { DeleteRequestSchema, DeleteResponseSchema } from "@trustedpods/protocol";
import type { PodManager } from "../pods.js";
import type { StateDb } from "../state/db.js";
import { ownedPod, podKey } from "./admission.js";
import { shortCall } from "./limits.js";
import { signed } from "./serve.js";

export interface DeleteDeps {
  state: Pick<StateDb, "getPod">;
  pods: Pick<PodManager, "delete">;
}

export async function deletePod(d: DeleteDeps, r: { podId: Uint8Array }, c: SignedCallContext) {
  const { id } = podKey(r.podId, c);
  ownedPod(d.state, id);
  await d.pods.delete(id);
  return { volumesKeptUntil: 0n };
}

export const deleteProtocol = signed(
  "delete",
  DeleteRequestSchema,
  DeleteResponseSchema,
  deletePod,
  shortCall,
);
