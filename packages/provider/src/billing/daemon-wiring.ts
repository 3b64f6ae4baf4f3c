/**
 * Billing inside the provider daemon: builds the Billing instance from the daemon's config, database, account and
 * engine, drives pods through the daemon's PodManager (so its state and crash recovery agree with billing), and
 * converts the status summary to the wire.
 */
import { create } from "@bufbuild/protobuf";
import type { ChainContext } from "@trustedpods/chain";
import { type PodBilling, PodBillingSchema } from "@trustedpods/protocol";
import type { Registry } from "prom-client";
import {
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  getAddress,
  http,
  type LocalAccount,
  type PublicClient,
} from "viem";
import type { ProviderConfig } from "../config.js";
import type { Engine } from "../engine/types.js";
import type { PodStopReason } from "../gateway/types.js";
import type { PodManager } from "../pods.js";
import { Billing } from "./billing.js";
import { asChainFailure } from "./chain-read.js";
import type { BillingStatus } from "./status.js";
import type { BillingConfig, BillingLogger, PodLifecycle } from "./types.js";

const ZERO: Address = "0x0000000000000000000000000000000000000000";
const paymentsMarketplaceAbi = [
  {
    type: "function",
    name: "marketplace",
    stateMutability: "view",
    inputs: [],
    outputs: [{ name: "", type: "address" }],
  },
] as const;

/** PodLifecycle on the daemon's PodManager: billing's stops and removals are recorded as the daemon's phases. */
export class DaemonPodLifecycle implements PodLifecycle {
  constructor(private readonly pods: () => PodManager) {}
  stop(id: string, reason: PodStopReason, detail?: string): Promise<void> {
    return this.pods().suspend(id, reason, detail);
  }
  start(id: string): Promise<void> {
    return this.pods().resume(id);
  }
  remove(id: string): Promise<void> {
    return this.pods().evict(
      id,
      "removed by billing: the channel's notice period ended unpaid, or it closed",
    );
  }
}

export interface DaemonBillingOptions {
  config: ProviderConfig;
  chainId: number;
  account: LocalAccount;
  /** The daemon's state database (billing adds its billing_* tables). */
  db: import("node:sqlite").DatabaseSync;
  engine: Engine;
  registry: Registry;
  logger: BillingLogger;
  /** The daemon's PodManager (resolved lazily: it is built after the gate it takes). */
  pods: () => PodManager;
  /** Overrides of the loop's timing and thresholds (tests; the config file sets the payment terms). */
  overrides?: Partial<BillingConfig>;
}

/** The provider's ChainContext from its config: its account signs claims and provider closes. */
export async function providerChainContext(
  config: ProviderConfig,
  chainId: number,
  account: LocalAccount,
): Promise<ChainContext> {
  const chain: Chain = {
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [config.chain.rpcUrl] } },
  };
  // One attempt per call: the billing loop has its own backoff, and a hung RPC must not stall a tick forever.
  const transport = http(config.chain.rpcUrl, { retryCount: 0, timeout: 20_000 });
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 1000 }) as PublicClient;
  const walletClient = createWalletClient({ chain, transport, account });
  let marketplace = config.chain.marketplace;
  if (!marketplace) {
    try {
      marketplace = getAddress(
        await publicClient.readContract({
          address: config.chain.payments,
          abi: paymentsMarketplaceAbi,
          functionName: "marketplace",
        }),
      );
    } catch (err) {
      throw asChainFailure(err, `read the Marketplace address from Payments ${config.chain.payments}`);
    }
  }
  return {
    publicClient,
    walletClient,
    addresses: { payments: config.chain.payments, marketplace, registry: config.chain.registry ?? ZERO },
    confirmations: Math.max(1, config.chain.confirmations),
  };
}

/** Billing as the daemon runs it: terms from the config file (billing.*, chain.confirmations, pricing). */
export async function createDaemonBilling(o: DaemonBillingOptions): Promise<Billing> {
  const chain = await providerChainContext(o.config, o.chainId, o.account);
  return new Billing({
    db: o.db,
    chain,
    chainId: BigInt(o.chainId),
    lifecycle: new DaemonPodLifecycle(o.pods),
    usage: o.engine,
    registry: o.registry,
    logger: o.logger,
    pricing: o.config.pricing,
    token: getAddress(o.config.pricing.token),
    config: {
      confirmations: o.config.chain.confirmations,
      minRunSeconds: BigInt(o.config.billing.minDepositSeconds),
      minNoticeSeconds: BigInt(o.config.billing.minNoticeSeconds),
      tokenUnitsPerEther: o.config.billing.tokenUnitsPerEther,
      minClaimIntervalSeconds: BigInt(o.config.billing.minClaimIntervalSeconds ?? 0),
      ...o.overrides,
    },
  });
}

/** The status summary as the StatusResponse carries it. */
export function billingToWire(s: BillingStatus): PodBilling {
  return create(PodBillingSchema, {
    state: s.state,
    token: s.token,
    ratePerSecond: s.ratePerSecond.toString(),
    deposit: s.deposit.toString(),
    claimed: s.claimed.toString(),
    accrued: s.accrued.toString(),
    remainingSeconds: s.remainingSeconds > 2n ** 63n ? 2n ** 63n : s.remainingSeconds,
    runsOutAt: s.runsOutAt ?? 0n,
    closeAt: s.closeAt,
    noticeSeconds: s.noticeSeconds,
    removeAt: s.removeAt ?? 0n,
    chainTime: s.chainTime ?? 0n,
    warnings: s.warnings,
    reserved: {
      cpuMillis: s.reserved.cpuMillis,
      memoryBytes: s.reserved.memoryMiB << 20n,
      storageBytes: s.reserved.storageGiB << 30n,
      gpuCount: s.reserved.gpu,
    },
    reservedSeconds: s.reserved.seconds,
    cpuSeconds: s.usage.cpuSeconds,
    memoryBytes: BigInt(Math.round(s.usage.memoryBytes)),
    memoryMaxBytes: BigInt(Math.round(s.usage.memoryMaxBytes)),
    networkRxBytes: BigInt(Math.round(s.usage.rxBytes)),
    networkTxBytes: BigInt(Math.round(s.usage.txBytes)),
  });
}
