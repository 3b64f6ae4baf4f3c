import {
  type ChainContext,
  type ChannelKey,
  type ChannelState,
  channelId,
  getChannel,
  refund,
  requestClose,
} from "@trustedpods/chain";
import type { Address, Hex } from "viem";
import { onChain } from "../chain-call.js";
import { openedChannels, type Settlement, settlements } from "../channel-events.js";
import { PublisherError } from "../errors.js";
import { shortMessage } from "../network.js";
import type { PodRecord } from "../pods.js";

export type CloseResult =
  /** requestClose was sent now: accrual stops at closeAt; the refund is possible from then on. */
  (
    | { state: "closing"; closeAt: bigint; refundable: bigint; channel: ChannelState }
    /** Already closing and the notice has not passed yet. */
    | { state: "waiting"; closeAt: bigint; secondsLeft: bigint; channel: ChannelState }
    /** The notice passed: the provider was settled and the rest returned to the publisher now. */
    | { state: "refunded"; refunded: bigint; settlement: Settlement }
    /** Settled before (by an earlier close): nothing left to do. */
    | { state: "settled"; settlement: Settlement }
  ) & {
    /** The channel's token (a settled channel's own state no longer names it). */
    token: Address;
  };

/**
 * A settled channel's figures from its events: the contract deletes a channel's state when it settles, so only
 * ChannelOpened (the token) and ChannelFinalized (claimed, refunded) still say what happened.
 */
async function settledChannel(
  ctx: ChainContext,
  key: ChannelKey,
): Promise<{ settlement: Settlement; token: Address }> {
  const id = channelId(key).toLowerCase() as Hex;
  const [opened, settled] = await onChain("read the channel's events", () =>
    Promise.all([
      openedChannels(ctx, { publisher: key.publisher, provider: key.provider }),
      settlements(ctx, [id]),
    ]),
  );
  const settlement = settled.get(id);
  const o = opened.find((c) => c.channelId === id);
  if (!settlement || !o)
    throw new PublisherError("CHAIN_FAILED", `channel ${id} is settled, but its events cannot be found`);
  return { settlement, token: o.token };
}

/**
 * Closing is two steps on chain: `requestClose` starts the notice period (the provider may still claim what
 * accrues until `closeAt`), and after it `refund` settles the provider and returns the rest. Each call does the
 * next step that is possible now; on a settled channel it reports the settlement.
 */
export async function closePod(
  ctx: ChainContext,
  record: Pick<PodRecord, "provider" | "podId">,
  publisher: Address,
): Promise<CloseResult> {
  const key = { publisher, provider: record.provider, podId: record.podId };
  const ch = await onChain("read the channel", () => getChannel(ctx, key));
  if (ch.finalized) return { state: "settled", ...(await settledChannel(ctx, key)) };
  if (!ch.exists) throw new PublisherError("CHANNEL_CLOSED", `pod ${record.podId} has no channel on chain`);
  if (ch.closeAt === 0n) {
    try {
      await requestClose(ctx, record.provider, record.podId);
    } catch (err) {
      // The provider may close the channel itself at the same moment (its final claim after a delete): then
      // our request reverts and the channel is closing anyway.
      const now = await getChannel(ctx, key).catch(() => ch);
      if (now.closeAt === 0n && !now.finalized)
        throw new PublisherError("CHAIN_FAILED", `request close: ${shortMessage(err)}`, { cause: err });
      return closePod(ctx, record, publisher);
    }
    const after = await getChannel(ctx, key);
    const accruedAtClose = after.accruedBefore + after.ratePerSecond * (after.closeAt - after.since);
    let owed = accruedAtClose;
    if (owed > after.deposit) owed = after.deposit;
    return {
      state: "closing",
      closeAt: after.closeAt,
      refundable: after.deposit - owed,
      channel: after,
      token: ch.token,
    };
  }
  const block = await ctx.publicClient.getBlock();
  if (block.timestamp < ch.closeAt)
    return {
      state: "waiting",
      closeAt: ch.closeAt,
      secondsLeft: ch.closeAt - block.timestamp,
      channel: ch,
      token: ch.token,
    };
  const sent = await onChain("refund", () => refund(ctx, record.provider, record.podId));
  const { settlement } = await settledChannel(ctx, key);
  return { state: "refunded", refunded: sent.result, settlement, token: ch.token };
}
