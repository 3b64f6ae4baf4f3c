import { PublisherError } from "./errors.js";
import { shortMessage } from "./network.js";

export async function onChain<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PublisherError) throw err;
    throw new PublisherError("CHAIN_FAILED", `${op}: ${shortMessage(err)}`, { cause: err });
  }
}
