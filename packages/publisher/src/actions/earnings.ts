// What an account can withdraw from the Payments contract (royalties and provider claims), and withdrawing it.
import { balanceOf, type ChainContext, withdraw } from "@trustedpods/chain";
import { type Address, getAddress, type Hex } from "viem";
import { formatAmount } from "../format.js";
import { type TokenInfo, tokenInfo } from "../providers.js";

export interface Earning {
  token: TokenInfo;
  amount: bigint;
  formatted: string;
}

/**
 * What `account` can withdraw from the Payments contract in each token (developer royalties and provider claims
 * both land in this balance).
 */
export async function loadEarnings(
  ctx: ChainContext,
  account: Address,
  tokens: Address[],
): Promise<Earning[]> {
  const unique = [...new Set(tokens.map((t) => getAddress(t)))];
  return Promise.all(
    unique.map(async (t) => {
      const token = await tokenInfo(ctx.publicClient, t);
      const amount = await balanceOf(ctx, account, t);
      return { token, amount, formatted: formatAmount(amount, token) };
    }),
  );
}

/** Withdraws the whole balance of `token` to the connected account; returns the transaction hash. */
export async function withdrawEarnings(ctx: ChainContext, token: Address): Promise<Hex> {
  const sent = await withdraw(ctx, token);
  return sent.hash;
}
