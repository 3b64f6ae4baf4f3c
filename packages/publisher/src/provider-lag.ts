// A provider reads the chain some blocks below the head (its `confirmations`): right after a channel is opened
// or its rate changed, it may not see the change yet and refuses with PAYMENT_REQUIRED on the field it checked.
// It refuses before doing anything, so asking again is safe. Browser-safe (the web app deploys too).
import { RpcError } from "@trustedpods/p2p/browser";
import { ErrorCode } from "@trustedpods/protocol";

/** 100 ms, 200 ms, 400 ms, then every second: a new block usually shows up fast on a devnet. */
function backoff(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
}

/** Whether `err` is the provider saying it does not see `field` on chain yet. */
export function isProviderLag(err: unknown, field: string): boolean {
  return err instanceof RpcError && err.code === ErrorCode.PAYMENT_REQUIRED && err.details.field === field;
}

/**
 * Calls `fn` again while the provider refuses because it does not see `field` on chain yet, until `deadline`
 * (ms since the epoch); any other error, or the last refusal, is thrown as it came.
 */
export async function whileProviderLags<T>(
  field: string,
  deadline: number,
  fn: () => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isProviderLag(err, field) || Date.now() > deadline) throw err;
      await backoff(attempt);
    }
  }
}
