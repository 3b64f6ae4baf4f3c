import {
  accrued,
  type ChainContext,
  type ChannelKey,
  type ChannelState,
  getChannel,
} from "@trustedpods/chain";
import { onChain } from "../chain-call.js";

/** What a channel has left to run on at the chain's head. */
export interface ChannelRunway {
  channel: ChannelState;
  /** What accrued so far, at most the deposit. */
  spent: bigint;
  /** deposit − spent. */
  remaining: bigint;
  /** Whole seconds `remaining` pays for at the channel's rate (absent at rate 0). */
  secondsLeft?: bigint;
}

export async function channelRunway(ctx: ChainContext, key: ChannelKey): Promise<ChannelRunway> {
  const [channel, earned] = await onChain("read the channel", () =>
    Promise.all([getChannel(ctx, key), accrued(ctx, key)]),
  );
  // biome-ignore lint/complexity/useMathMinMax: bigint
  const spent = earned > channel.deposit ? channel.deposit : earned;
  const remaining = channel.deposit - spent;
  return {
    channel,
    spent,
    remaining,
    ...(channel.ratePerSecond > 0n ? { secondsLeft: remaining / channel.ratePerSecond } : {}),
  };
}
