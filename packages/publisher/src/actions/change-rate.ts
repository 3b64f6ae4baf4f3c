import { type ChainContext, changeRate } from "@trustedpods/chain";
import type { Hex } from "viem";
import { onChain } from "../chain-call.js";
import type { CheckedQuote } from "./quote.js";

/**
 * Switches the pod's channel to the rate of a new quote (after an update that changes the price); returns the
 * block the change was mined in (the provider sees it `q.terms.confirmations` blocks later).
 */
export async function changePodRate(ctx: ChainContext, q: CheckedQuote, podId: Hex): Promise<bigint> {
  const sent = await onChain("change the rate", () => changeRate(ctx, q.quote, q.signature, podId));
  return sent.receipt.blockNumber;
}
