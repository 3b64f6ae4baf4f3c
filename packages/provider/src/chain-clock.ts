/**
 * The chain's notion of "now", for deadlines the chain itself checks (a quote's expiry is compared with
 * block.timestamp in Payments.open). A chain can run ahead of this host's wall clock (an L2 sequencer, a devnet
 * whose time was advanced); signing from the wall clock then made every quote arrive already expired.
 */
import type { ChainContext } from "@trustedpods/chain";

export interface ChainClock {
  /** Seconds since the epoch: the later of the wall clock and the latest block's timestamp. */
  now(): Promise<bigint>;
}

const wallSeconds = () => BigInt(Math.floor(Date.now() / 1000));

/**
 * Reads the latest block at most once per `refreshMs` (quotes are unsigned requests anyone may send; one RPC
 * each would let them drive the provider's RPC quota) and keeps the offset to the wall clock between reads.
 * When the chain cannot be read the wall clock is used: a quote is then at worst as before, never later.
 */
export function chainClock(chain: () => Promise<ChainContext>, refreshMs = 30_000): ChainClock {
  let offset = 0n;
  let readAt = -Infinity;
  let pending: Promise<void> | undefined;
  const refresh = async () => {
    try {
      const block = await (await chain()).publicClient.getBlock({ blockTag: "latest" });
      offset = block.timestamp - wallSeconds();
    } catch {
      // Keep the last offset; the next quote after refreshMs tries again.
    }
    readAt = Date.now();
  };
  return {
    async now() {
      if (Date.now() - readAt >= refreshMs) {
        pending ??= refresh().finally(() => {
          pending = undefined;
        });
        await pending;
      }
      const wall = wallSeconds();
      return offset > 0n ? wall + offset : wall;
    },
  };
}
