import type {
  Abi,
  Account,
  Address,
  Chain,
  Hash,
  PublicClient,
  TransactionReceipt,
  Transport,
  WalletClient,
} from "viem";
import { explainError } from "./errors.js";
import { waitForTransaction } from "./events.js";

/** Where the Trusted Pods contracts live on one chain. */
export interface ContractAddresses {
  registry: Address;
  payments: Address;
  marketplace: Address;
  /** The release registry (Releases.sol), on networks that have one. */
  releases?: Address;
}

/**
 * What every helper needs: a public client to read and wait, a wallet client (local key or browser wallet) to
 * send, the contract addresses, and how many confirmations a write waits for (1 = mined).
 */
export interface ChainContext {
  publicClient: PublicClient;
  walletClient?: WalletClient<Transport, Chain | undefined, Account>;
  addresses: ContractAddresses;
  confirmations?: number;
}

/** A mined transaction with the value the call returned in simulation. */
export interface Sent<T = unknown> {
  hash: Hash;
  receipt: TransactionReceipt;
  result: T;
}

/** Raised when a helper that sends a transaction gets a context without a wallet. */
export class NoWalletError extends Error {
  override readonly name = "NoWalletError";
  readonly code = "NO_WALLET";
}

export function requireWallet(ctx: ChainContext): WalletClient<Transport, Chain | undefined, Account> {
  if (!ctx.walletClient?.account)
    throw new NoWalletError("this action sends a transaction: pass a wallet client");
  return ctx.walletClient;
}

/** The sender's address (throws without a wallet). */
export function senderOf(ctx: ChainContext): Address {
  return requireWallet(ctx).account.address;
}

/**
 * Gas every transaction gets over its estimate. An estimate is made at one block and the transaction mined at a
 * later one, and most of our calls store `block.timestamp` or accrue by it: rewriting a slot with the value it
 * already holds (estimated in the same second) costs 100 gas, with a new one 2,900, and an exact estimate then
 * runs out of gas (seen: Registry.update reverted in CI). Unused gas is not charged.
 */
export const DEFAULT_GAS_HEADROOM = 10_000n;

/** The gas limit for an estimate: the headroom on top, or a tenth of the estimate when that is more. */
export function gasLimit(estimate: bigint, headroom: bigint = DEFAULT_GAS_HEADROOM): bigint {
  const tenth = estimate / 10n;
  return estimate + (headroom > tenth ? headroom : tenth);
}

/**
 * Simulates (so a revert comes back as a decoded ChainError before anything is signed), sends, and waits for the
 * configured confirmations. The gas limit is the estimate plus `gasHeadroom` (default DEFAULT_GAS_HEADROOM);
 * a call whose costlier branch depends on the time it is mined at passes what that branch needs more.
 */
export async function send<T = unknown>(
  ctx: ChainContext,
  call: { address: Address; abi: Abi; functionName: string; args: readonly unknown[] },
  opts: { gasHeadroom?: bigint } = {},
): Promise<Sent<T>> {
  const wallet = requireWallet(ctx);
  try {
    const target = {
      ...call,
      account: wallet.account,
      chain: wallet.chain,
      // Simulate against the block the transaction will land in (its timestamp decides what accrued).
      blockTag: "pending",
    } as const;
    const sim = (await ctx.publicClient.simulateContract(target as never)) as { request: object; result: T };
    const request = {
      ...sim.request,
      gas: gasLimit(await ctx.publicClient.estimateContractGas(target as never), opts.gasHeadroom),
    };
    const hash = await wallet.writeContract(request as never);
    const receipt = await waitForTransaction(ctx.publicClient, hash, ctx.confirmations ?? 1);
    return { hash, receipt, result: sim.result };
  } catch (err) {
    throw explainError(err);
  }
}

/** Reads a view function, decoding reverts into ChainError. */
export async function read<T>(
  ctx: ChainContext,
  call: { address: Address; abi: Abi; functionName: string; args: readonly unknown[] },
): Promise<T> {
  try {
    return (await ctx.publicClient.readContract(call as never)) as T;
  } catch (err) {
    throw explainError(err);
  }
}
