/**
 * When to claim and how many channels per transaction: a pure function of what each channel owes, the gas price
 * and the provider's token price, so the billing loop never spends more on a claim's gas than the claim collects.
 *
 * Gas is paid in the chain's native currency and claims collect the channel's ERC-20 token: comparing them needs
 * the operator's price of the token (`tokenUnitsPerEther`: token base units one ether buys). Without it gas is not
 * priced and every due channel is claimed, batched (the behaviour of a chain where gas is free, e.g. a devnet).
 */

/**
 * Gas of claim transactions, upper bounds from bench/gas (steady batch of 50: ~27,800 + ~12,900 per channel; a
 * royalty ~5,500 warm; a first claim pays a zero balance's 17,100 more), so a plan never under-counts its gas.
 */
export const CLAIM_GAS = {
  /** The transaction itself, calldata framing and the provider's balance write (a first one from zero). */
  batchBase: 45_000n,
  /** One more channel: its two storage slots, the claimed write, the Claimed event, 128 bytes of calldata. */
  batchEntry: 13_500n,
  /** One more royalty recipient on a channel: its balance write and RoyaltyPaid event. */
  royalty: 10_000n,
  /** A lone `claim` (what a batch of one is sent as), including a first claim's zero balance. */
  single: 57_000n,
} as const;

export interface ClaimCandidate {
  /** The daemon's pod key (opaque to the policy). */
  podKey: string;
  /** Token base units the claim would collect now (cap - claimed). */
  owed: bigint;
  /** Accrual rate of the channel while the pod runs (token base units per second); 0 when it no longer accrues. */
  ratePerSecond: bigint;
  /** Royalty recipients the channel pays on every claim (each costs gas). */
  royalties: number;
  /** The pod stopped or is going away: nothing more accrues, so waiting gains nothing. */
  final: boolean;
}

export interface ClaimPolicyInput {
  candidates: readonly ClaimCandidate[];
  /** Wei per gas the claim transaction will pay (the current gas price). */
  gasPrice: bigint;
  /** Token base units one ether (10^18 wei) is worth; undefined: gas is not priced. */
  tokenUnitsPerEther: bigint | undefined;
  /** A claim must collect at least this many times its gas (≥ 1; 1 = break even). */
  minReturn: bigint;
  /** Most channels per transaction (bounded by the block gas limit). */
  maxBatch: number;
}

export interface ClaimPlan<C extends ClaimCandidate = ClaimCandidate> {
  /** Transactions to send now, each a list of channels (a list of one is sent as a plain claim). */
  batches: C[][];
  /** Channels left for a later tick because claiming them now would not pay for the gas. */
  deferred: C[];
  /**
   * Seconds until the deferred channels (at their rates) owe enough for a batch of all of them to pay its gas
   * `minReturn` times: the claim cadence. undefined when nothing is deferred or nothing accrues.
   */
  nextClaimInSeconds: bigint | undefined;
}

const WEI_PER_ETHER = 10n ** 18n;

/** The token value of `gas` at `gasPrice`, rounded up (so the comparison never favours sending). */
export function gasCostInToken(
  gas: bigint,
  gasPrice: bigint,
  tokenUnitsPerEther: bigint | undefined,
): bigint {
  if (tokenUnitsPerEther === undefined) return 0n;
  const num = gas * gasPrice * tokenUnitsPerEther;
  return (num + WEI_PER_ETHER - 1n) / WEI_PER_ETHER;
}

const entryGas = (c: ClaimCandidate) => CLAIM_GAS.batchEntry + BigInt(c.royalties) * CLAIM_GAS.royalty;

/** Gas of one transaction claiming `list`. */
export function claimGas(list: readonly ClaimCandidate[]): bigint {
  if (list.length === 1) return CLAIM_GAS.single + BigInt(list[0]!.royalties) * CLAIM_GAS.royalty;
  return list.reduce<bigint>((g, c) => g + entryGas(c), CLAIM_GAS.batchBase);
}

/**
 * Plans this tick's claims. A channel is claimed only when what it owes covers its own share of the gas
 * (`minReturn` times; once for a final claim, which cannot grow), largest first, in batches of at most `maxBatch`;
 * a batch is sent only when its total covers its whole gas the same way. Everything else waits: accrual keeps
 * growing in the channel and the contract pays it at any later claim or at the publisher's refund.
 */
export function planClaims<C extends ClaimCandidate>(input: ClaimPolicyInput): ClaimPlan<C> {
  const { gasPrice, tokenUnitsPerEther, maxBatch } = input;
  const minReturn = input.minReturn < 1n ? 1n : input.minReturn;
  const cost = (gas: bigint) => gasCostInToken(gas, gasPrice, tokenUnitsPerEther);
  const needed = (c: ClaimCandidate, gas: bigint) => cost(gas) * (c.final ? 1n : minReturn);
  const sorted = [...(input.candidates as readonly C[])]
    .filter((c) => c.owed > 0n)
    .sort((a, b) => (a.owed === b.owed ? 0 : a.owed > b.owed ? -1 : 1));
  const worth: C[] = [];
  const deferred: C[] = [];
  for (const c of sorted) (c.owed >= needed(c, entryGas(c)) ? worth : deferred).push(c);

  const batches: C[][] = [];
  const size = Math.max(1, maxBatch);
  for (let i = 0; i < worth.length; i += size) {
    const batch = worth.slice(i, i + size);
    const total = batch.reduce((s, c) => s + c.owed, 0n);
    const allFinal = batch.every((c) => c.final);
    if (total >= cost(claimGas(batch)) * (allFinal ? 1n : minReturn)) batches.push(batch);
    else deferred.push(...batch);
  }
  return { batches, deferred, nextClaimInSeconds: cadence(deferred, cost, minReturn) };
}

/** Seconds until a batch of `deferred` pays `minReturn` times its gas at the channels' rates. */
function cadence(
  deferred: readonly ClaimCandidate[],
  cost: (gas: bigint) => bigint,
  minReturn: bigint,
): bigint | undefined {
  if (deferred.length === 0) return undefined;
  const rate = deferred.reduce((s, c) => s + c.ratePerSecond, 0n);
  if (rate === 0n) return undefined;
  const target = cost(claimGas(deferred)) * minReturn;
  const owed = deferred.reduce((s, c) => s + c.owed, 0n);
  if (owed >= target) return 0n;
  return (target - owed + rate - 1n) / rate;
}
