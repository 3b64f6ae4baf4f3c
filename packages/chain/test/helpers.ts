import {
  type Address,
  createWalletClient,
  erc20Abi,
  type Hex,
  http,
  keccak256,
  type LocalAccount,
  toHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { expect } from "vitest";
import {
  authorizeProvider,
  type ChainContext,
  ChainError,
  createListing,
  openChannel,
  type Quote,
  type Royalty,
  royaltiesHash,
  signQuoteFor,
  specHash,
} from "../src/index.js";
import type { DevChain } from "../src/node.js";

export const ZERO = "0x0000000000000000000000000000000000000000" as Address;
let podSeq = 0;
/** A fresh random-looking pod id per call. */
export const newPod = (): Hex => keccak256(toHex(`pod-${process.pid}-${podSeq++}-${Math.random()}`));

export async function increaseTime(chain: DevChain, seconds: number): Promise<void> {
  await chain.publicClient.request({
    method: "evm_increaseTime" as never,
    params: [toHex(seconds)] as never,
  });
  await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
}

export async function nowSeconds(chain: DevChain): Promise<bigint> {
  return (await chain.publicClient.getBlock()).timestamp;
}

/** Fixes the next block's timestamp so accrual can be asserted exactly. */
export async function setNextTimestamp(chain: DevChain, t: bigint): Promise<void> {
  await chain.publicClient.request({
    method: "evm_setNextBlockTimestamp" as never,
    params: [toHex(t)] as never,
  });
}

export function accountOf(chain: DevChain, i: number): LocalAccount {
  return privateKeyToAccount(chain.accounts[i]!.privateKey);
}

export function walletFor(chain: DevChain, i: number) {
  return createWalletClient({
    chain: { ...foundry, id: chain.chainId },
    transport: http(chain.rpcUrl),
    account: accountOf(chain, i),
  });
}

export async function tokenBalance(chain: DevChain, token: Address, who: Address): Promise<bigint> {
  return chain.publicClient.readContract({
    address: token,
    abi: erc20Abi,
    functionName: "balanceOf",
    args: [who],
  });
}

/** Asserts that `p` rejects with a decoded ChainError of the given contract error name. */
export async function expectChainError(p: Promise<unknown>, errorName: string): Promise<ChainError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ChainError);
    expect((err as ChainError).errorName).toBe(errorName);
    return err as ChainError;
  }
  throw new Error(`expected ${errorName}, but the call succeeded`);
}

export interface Parties {
  chain: DevChain;
  provider: ChainContext;
  publisher: ChainContext;
  providerAddr: Address;
  publisherAddr: Address;
  token: Address;
}

export function parties(chain: DevChain): Parties {
  return {
    chain,
    provider: chain.context(1),
    publisher: chain.context(2),
    providerAddr: chain.accounts[1]!.address,
    publisherAddr: chain.accounts[2]!.address,
    token: chain.contracts.token,
  };
}

export async function makeQuote(p: Parties, overrides: Partial<Quote> = {}, signerIndex = 1) {
  const quote: Quote = {
    provider: p.providerAddr,
    publisher: p.publisherAddr,
    podId: ("0x" + "00".repeat(32)) as Hex,
    token: p.token,
    ratePerSecond: 1000n,
    minNoticeSeconds: 0,
    expiry: (await nowSeconds(p.chain)) + 86_400n,
    specHash: specHash({ cpu: 100n, memory: 64n, storage: 0n, gpu: 0n }),
    royaltiesHash: royaltiesHash([]),
    ...overrides,
  };
  const signature = await signQuoteFor(p.provider, accountOf(p.chain, signerIndex), quote);
  return { quote, signature };
}

export async function openDefault(
  p: Parties,
  opts: {
    deposit?: bigint;
    notice?: number;
    royalties?: Royalty[];
    rate?: bigint;
    token?: Address;
    fees?: bigint;
  } = {},
) {
  const podId = newPod();
  const { quote, signature } = await makeQuote(p, {
    podId,
    ...(opts.rate !== undefined ? { ratePerSecond: opts.rate } : {}),
    ...(opts.token ? { token: opts.token } : {}),
    royaltiesHash: royaltiesHash(opts.royalties ?? []),
  });
  const sent = await openChannel(p.publisher, {
    quote,
    quoteSignature: signature,
    podId,
    deposit: opts.deposit ?? 1_000_000n,
    noticeSeconds: opts.notice ?? 60,
    royalties: opts.royalties ?? [],
    ...(opts.fees ? { fees: opts.fees } : {}),
  });
  return { podId, quote, sent, key: { publisher: p.publisherAddr, provider: p.providerAddr, podId } };
}

/** A Marketplace listing by account `devIndex` at `bps`, authorizing the provider: the royalty entry a pod running it pays. */
export async function listingRoyalty(p: Parties, devIndex: number, bps: number): Promise<Royalty> {
  const dev = p.chain.context(devIndex);
  const { listingId } = await createListing(dev, {
    manifestDigest: keccak256(toHex(`listing-${Math.random()}`)),
    metadataCid: "bafylisting",
    royaltyBps: bps,
  });
  await authorizeProvider(dev, listingId, p.providerAddr, "bafywrappedkey");
  return { recipient: p.chain.accounts[devIndex]!.address, bps, listingId };
}
