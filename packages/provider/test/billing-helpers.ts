// Shared by the billing tests: dev chain parties, a typed Pod, quotes and channels, time control on anvil.
import { create } from "@bufbuild/protobuf";
import {
  type ChainContext,
  ensureAllowance,
  openChannel,
  type Royalty,
  signQuoteFor,
} from "@trustedpods/chain";
import type { DevChain } from "@trustedpods/chain/node";
import { type ChannelRef, ChannelRefSchema, type Pod, type Pricing } from "@trustedpods/protocol";
import { type Address, erc20Abi, type Hex, keccak256, type LocalAccount, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { quotePod } from "../src/index.js";

let seq = 0;
export const newPodId = (): Hex => keccak256(toHex(`billing-${process.pid}-${seq++}-${Math.random()}`));

export function accountOf(chain: DevChain, i: number): LocalAccount {
  return privateKeyToAccount(chain.accounts[i]!.privateKey);
}

export interface Parties {
  chain: DevChain;
  provider: ChainContext;
  publisher: ChainContext;
  developer: ChainContext;
  providerAddr: Address;
  publisherAddr: Address;
  developerAddr: Address;
  token: Address;
}

export async function parties(chain: DevChain, confirmations = 1): Promise<Parties> {
  const p: Parties = {
    chain,
    provider: chain.context(1, confirmations),
    publisher: chain.context(2, confirmations),
    developer: chain.context(3, confirmations),
    providerAddr: chain.accounts[1]!.address,
    publisherAddr: chain.accounts[2]!.address,
    developerAddr: chain.accounts[3]!.address,
    token: chain.contracts.token,
  };
  await ensureAllowance(p.publisher, p.token, 2n ** 200n);
  return p;
}

/** A one-container pod: 100 millicores, 128 MiB, 1 GiB; optionally running a marketplace listing. */
export function typedPod(listingId?: bigint): Pod {
  return {
    name: "web",
    containers: [
      {
        name: "web",
        image: listingId !== undefined ? { kind: "listing", listingId } : { kind: "local", name: "busybox" },
        command: [],
        args: [],
        env: [],
        ports: [],
        volumeMounts: [],
        resources: { cpuMillis: 100n, memoryBytes: 128n << 20n, storageBytes: 1n << 30n, gpu: 0n },
      },
    ],
    volumes: [],
    replicas: { min: 1, max: 1, idleSeconds: 0n },
  };
}

/** 100 millicores x 1 + 128 MiB x 2 + 1 GiB x 3 = 359 wei/s for typedPod(). */
export function pricing(token: Address): Pricing {
  return { token, prices: { cpu: 1n, memory: 2n, storage: 3n } };
}

export async function chainNow(chain: DevChain): Promise<bigint> {
  return (await chain.publicClient.getBlock()).timestamp;
}

export async function increaseTime(chain: DevChain, seconds: number | bigint): Promise<void> {
  await chain.publicClient.request({
    method: "evm_increaseTime" as never,
    params: [toHex(seconds)] as never,
  });
  await mine(chain);
}

export async function mine(chain: DevChain, blocks = 1): Promise<void> {
  for (let i = 0; i < blocks; i++)
    await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
}

export async function setNextTimestamp(chain: DevChain, t: bigint): Promise<void> {
  await chain.publicClient.request({
    method: "evm_setNextBlockTimestamp" as never,
    params: [toHex(t)] as never,
  });
}

export function channelRef(chain: DevChain): ChannelRef {
  return create(ChannelRefSchema, {
    chainId: BigInt(chain.chainId),
    paymentsContract: chain.contracts.payments,
  });
}

export interface OpenOptions {
  /** The rate the channel is opened with (default: the quoted price). */
  rate?: bigint;
  deposit?: bigint;
  notice?: number;
  royalties?: Royalty[];
  pod?: Pod;
}

/**
 * The publisher opens a channel for a fresh pod id with a provider-signed quote; by default at the price the
 * provider's pricing gives the pod (what the daemon's quote handler would sign).
 */
export async function openFor(p: Parties, opts: OpenOptions = {}) {
  const podId = newPodId();
  const pod = opts.pod ?? typedPod();
  const signed = await quotePod(p.provider, {
    pod,
    pricing: pricing(p.token),
    signer: accountOf(p.chain, 1),
    provider: p.providerAddr,
    publisher: p.publisherAddr,
    podId,
    minNoticeSeconds: 0,
    royalties: opts.royalties ?? [],
    now: await chainNow(p.chain),
    ttlSeconds: 3600n,
  });
  const quotedRate = signed.quote.ratePerSecond;
  let { quote, signature } = signed;
  if (opts.rate !== undefined && opts.rate !== quotedRate) {
    // A publisher that got another rate signed (another pod, an older price) and opens with it.
    quote = { ...quote, ratePerSecond: opts.rate };
    signature = await signQuoteFor(p.provider, accountOf(p.chain, 1), quote);
  }
  const sent = await openChannel(p.publisher, {
    quote,
    quoteSignature: signature,
    podId,
    deposit: opts.deposit ?? quotedRate * 100_000n,
    noticeSeconds: opts.notice ?? 3600,
    royalties: opts.royalties ?? [],
    approve: false,
  });
  const block = await p.chain.publicClient.getBlock({ blockNumber: sent.receipt.blockNumber });
  return { podId, pod, quotedRate, channelId: sent.channelId, openedAt: block.timestamp };
}

export async function tokenBalance(chain: DevChain, token: Address, who: Address): Promise<bigint> {
  return chain.publicClient.readContract({
    address: token,
    abi: erc20Abi,
    functionName: "balanceOf",
    args: [who],
  });
}

/** Polls `fn` until it returns something truthy; throws naming `what` after `timeoutMs`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Logs are collected so tests can assert on warnings. */
export function memoryLogger() {
  const lines: { level: string; msg: string; obj: object }[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, msg, obj });
  return { lines, logger: { info: at("info"), warn: at("warn"), error: at("error") } };
}
