import type { Abi, Address, Hash, Log, PublicClient, TransactionReceipt } from "viem";
import { parseEventLogs } from "viem";

/** Raised when a transaction reverted on chain or a wait ran out of time. */
export class TransactionError extends Error {
  override readonly name = "TransactionError";
  constructor(
    message: string,
    readonly code: "TX_REVERTED" | "TX_TIMEOUT" | "EVENT_TIMEOUT",
    readonly hash?: Hash,
  ) {
    super(message);
  }
}

/** Waits until `hash` is mined with `confirmations` blocks on top (1 = just mined); throws if it reverted. */
export async function waitForTransaction(
  client: PublicClient,
  hash: Hash,
  confirmations = 1,
  timeoutMs = 120_000,
): Promise<TransactionReceipt> {
  let receipt: TransactionReceipt;
  try {
    receipt = await client.waitForTransactionReceipt({
      hash,
      confirmations,
      timeout: timeoutMs,
      pollingInterval: 250,
    });
  } catch (err) {
    throw new TransactionError(
      `transaction ${hash} not confirmed within ${timeoutMs} ms: ${(err as Error).message}`,
      "TX_TIMEOUT",
      hash,
    );
  }
  if (receipt.status !== "success")
    throw new TransactionError(`transaction ${hash} reverted`, "TX_REVERTED", hash);
  return receipt;
}

/** Decodes the logs of `abi` in a receipt (other contracts' logs are ignored). */
export function eventsOf<const A extends Abi>(abi: A, receipt: TransactionReceipt, address?: Address) {
  const logs = address
    ? receipt.logs.filter((l) => l.address.toLowerCase() === address.toLowerCase())
    : receipt.logs;
  return parseEventLogs({ abi, logs });
}

export interface WaitForEventOptions {
  address: Address;
  abi: Abi;
  eventName: string;
  /** Indexed argument filter, e.g. { channelId }. */
  args?: Record<string, unknown>;
  fromBlock?: bigint;
  /** Blocks on top of the event's block before it counts (1 = mined). */
  confirmations?: number;
  timeoutMs?: number;
  pollingIntervalMs?: number;
}

/**
 * Resolves with the first matching event once it has `confirmations` confirmations. Polls getLogs, which works
 * with any HTTP RPC (no filters or websockets needed).
 */
export async function waitForEvent(client: PublicClient, opts: WaitForEventOptions): Promise<Log> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const confirmations = BigInt(Math.max(1, opts.confirmations ?? 1));
  const fromBlock = opts.fromBlock ?? 0n;
  for (;;) {
    const logs = await client.getContractEvents({
      address: opts.address,
      abi: opts.abi,
      eventName: opts.eventName,
      args: opts.args,
      fromBlock,
      toBlock: "latest",
    } as never);
    const head = await client.getBlockNumber();
    const found = (logs as Log[]).find(
      (l) => l.blockNumber !== null && head - l.blockNumber + 1n >= confirmations,
    );
    if (found) return found;
    if (Date.now() > deadline) {
      throw new TransactionError(
        `no confirmed ${opts.eventName} event within ${opts.timeoutMs ?? 120_000} ms`,
        "EVENT_TIMEOUT",
      );
    }
    await new Promise((r) => setTimeout(r, opts.pollingIntervalMs ?? 500));
  }
}
