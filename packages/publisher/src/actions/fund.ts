import {
  accrued,
  type ChainContext,
  type ChannelState,
  getChannel,
  minRestartTopUp,
  topUp,
} from "@trustedpods/chain";
import type { Address } from "viem";
import { onChain } from "../chain-call.js";
import { PublisherError } from "../errors.js";
import type { PodRecord } from "../pods.js";

/** Adds `amount` (token base units) to the pod's channel deposit, approving the token first when needed. */
export async function fundPod(
  ctx: ChainContext,
  record: Pick<PodRecord, "provider" | "podId">,
  publisher: Address,
  amount: bigint,
): Promise<ChannelState> {
  if (amount <= 0n)
    throw new PublisherError("CHAIN_FAILED", "the amount must be above zero", { field: "amount" });
  const key = { publisher, provider: record.provider, podId: record.podId };
  const ch = await onChain("read the channel", () => getChannel(ctx, key));
  if (!ch.exists || ch.finalized || ch.closeAt !== 0n)
    throw new PublisherError(
      "CHANNEL_CLOSED",
      `the channel of pod ${record.podId} is ${ch.finalized ? "settled" : ch.exists ? "closing" : "not open"}: a top-up cannot keep it running`,
    );
  // A top-up that restarts a run-out pod must pay at least the notice period (the contract's TopUpTooSmall).
  const minimum = minRestartTopUp(ch);
  if (amount < minimum && (await onChain("read the channel", () => accrued(ctx, key))) >= ch.deposit)
    throw new PublisherError(
      "TOP_UP_TOO_SMALL",
      `the deposit ran out: a top-up that restarts the pod must pay at least the notice period (${ch.noticeSeconds} s at ${ch.ratePerSecond} base units/s = ${minimum}); ${amount} is too little`,
      { field: "amount", details: { minimum: minimum.toString() } },
    );
  await onChain("top up", () => topUp(ctx, record.provider, record.podId, amount));
  return getChannel(ctx, key);
}
