import { callSignedUnary } from "@trustedpods/p2p/browser";
import { DeleteRequestSchema, DeleteResponseSchema } from "@trustedpods/protocol";
import { type Hex, hexToBytes } from "viem";
import { type PodConnection, signed } from "../connection.js";
import { PublisherError } from "../errors.js";

/** Asks the provider to remove the pod (containers, volumes, secrets, images, routes). */
export async function deletePodOnProvider(conn: PodConnection, podId: Hex): Promise<void> {
  await signed("delete", () =>
    callSignedUnary(
      conn.node,
      conn.target,
      "delete",
      DeleteRequestSchema,
      { podId: hexToBytes(podId) },
      DeleteResponseSchema,
      { signer: conn.signer, chainId: conn.chainId, provider: conn.provider, podId },
      { timeoutMs: 120_000 },
    ),
  );
}

/** True when the provider answered that it has no such pod (it removed it already, or never had it). */
export function isNotFoundOnProvider(err: unknown): boolean {
  return (
    err instanceof PublisherError &&
    err.code === "PROVIDER_REFUSED" &&
    err.details?.providerCode === "NOT_FOUND"
  );
}
