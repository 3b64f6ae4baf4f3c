// Error messages a user can act on, for the web app (the CLI prints PublisherError messages as they are).
// Browser-safe.
import { PublisherError } from "./errors.js";
import { shortMessage } from "./network.js";

/**
 * One sentence a user can act on, for any error the app meets: SDK errors keep their own message (written to be
 * acted on); wallet refusals, reverts and network failures get a hint.
 */
export function explainError(err: unknown): string {
  if (err instanceof PublisherError) {
    const said = err.message.replace(/\.+$/, "");
    switch (err.code) {
      case "PROVIDER_UNREACHABLE":
        return `${said}. The provider may be offline, or its address may not accept browser (WebSocket) connections.`;
      case "PROVIDER_REFUSED":
        if (/\(NOT_FOUND\)/.test(said))
          return "The provider does not run this pod (it was never provisioned there, or it was deleted). Its channel can still be closed to get the rest of the deposit back.";
        // The provider's words say why (a missing entrypoint, an image that does not load): the fix is the publisher's.
        if (/\((ENGINE_FAILED|IMAGE_FAILED)\)/.test(said))
          return `${said}. The pod is not running: fix the image or the manifest and deploy again.`;
        if (/\(GATEWAY_FAILED\)/.test(said))
          return `${said}. The provider could not route the pod: try again, or choose another provider.`;
        return `${said}.`;
      case "NETWORK_UNREACHABLE":
        return `${said}. Check that the chain is running (on the devnet: \`tpod devnet up\`) and reload.`;
      default:
        return err.message;
    }
  }
  const e = err as { code?: unknown; message?: unknown; shortMessage?: unknown; name?: unknown };
  if (e && (e.code === 4001 || e.name === "UserRejectedRequestError"))
    return "You rejected the request in your wallet. Nothing was sent; try again when ready.";
  const msg = shortMessage(err);
  if (/insufficient funds/i.test(msg))
    return `Your account cannot pay for this transaction's gas: ${msg}. Fund the account and retry.`;
  if (/Failed to fetch|NetworkError|fetch failed/i.test(msg))
    return `The network request failed (${msg}). Check your connection and that the chain's RPC URL answers.`;
  return msg || "Something failed without a message; reload the page and retry.";
}
