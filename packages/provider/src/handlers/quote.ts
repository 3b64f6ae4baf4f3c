/**
 * `quote`: the provider's signed price for one pod of one publisher, with the royalties its channel must pay.
 * Unsigned (anyone may ask), so it reads nothing but the chain's listing terms and the pod table, and changes
 * nothing.
 */
import { createHash } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { type ChainContext, paymentsDomain } from "@trustedpods/chain";
import { RpcError } from "@trustedpods/p2p";
import {
  ErrorCode,
  PricingError,
  podPrice,
  podToWire,
  pricingToWire,
  QuoteRequestSchema,
  QuoteResponseSchema,
  wire,
} from "@trustedpods/protocol";
import { bytesToHex, getAddress, hexToBytes, type LocalAccount } from "viem";
import { listingsOf, quoteTerms, royaltiesForPod, signPodQuote } from "../billing/quote.js";
import type { BillingConfig } from "../billing/types.js";
import type { ChainClock } from "../chain-clock.js";
import type { ProviderConfig } from "../config.js";
import { enginePodId } from "../provision/translate.js";
import { type AdmissionDeps, admitPod, checkQuotable } from "./admission.js";
import { shortCall } from "./limits.js";
import { unary } from "./serve.js";

export interface QuoteDeps {
  account: LocalAccount;
  chainId: number;
  config: Pick<ProviderConfig, "pricing" | "chain" | "billing">;
  /** The billing module's terms when the daemon runs it (the gate that will check the channel). */
  billing: () => Pick<BillingConfig, "minRunSeconds" | "confirmations"> | undefined;
  /** The chain, for the listing terms of marketplace pods (read only when the pod runs a listing). */
  chain: () => Promise<ChainContext>;
  /** The chain's time: Payments.open compares the quote's expiry with it, not with this host's clock. */
  clock: ChainClock;
  /**
   * The pods this provider holds, its limit and its domain: a pod is quoted only when provision would admit it
   * (room for a new pod, its hostnames free, its tcp and udp ports within engine.hostPortRange), so no publisher
   * opens a channel for a pod that will be refused.
   */
  admission: Pick<AdmissionDeps, "state" | "maxPods" | "baseDomain" | "hostPortRange">;
}

/** SHA-256 of the pod's canonical wire encoding (re-encoded from the validated typed pod). */
export function podHash(pod: wire.Pod): Uint8Array {
  return createHash("sha256").update(toBinary(wire.PodSchema, pod)).digest();
}

type QuoteRequest = { pod?: wire.Pod; nonce: Uint8Array; publisher: Uint8Array; podId: Uint8Array };

function checkQuoteRequest(r: QuoteRequest): void {
  if (r.nonce.length < 16 || r.nonce.length > 32)
    throw new RpcError(ErrorCode.INVALID_ARGUMENT, "nonce must be 16 to 32 bytes", {
      details: { field: "nonce" },
    });
  // A quote for "any" publisher or pod could be replayed onto a pod it did not price: both are required.
  if (r.publisher.length !== 20 || r.publisher.every((b) => b === 0))
    throw new RpcError(ErrorCode.INVALID_ARGUMENT, "publisher must be a non-zero 20-byte address", {
      details: { field: "publisher" },
    });
  if (r.podId.length !== 32 || r.podId.every((b) => b === 0))
    throw new RpcError(ErrorCode.INVALID_ARGUMENT, "pod_id must be a non-zero 32-byte id", {
      details: { field: "pod_id" },
    });
}

function priceOf(pod: ReturnType<typeof admitPod>, pricing: ProviderConfig["pricing"]) {
  try {
    return podPrice(pod, pricing);
  } catch (err) {
    if (err instanceof PricingError)
      throw new RpcError(ErrorCode.FAILED_PRECONDITION, err.message, {
        details: { field: "resources", reason: err.code },
      });
    throw err;
  }
}

export async function quote(d: QuoteDeps, r: QuoteRequest) {
  checkQuoteRequest(r);
  const { config, account } = d;
  const pod = admitPod(r.pod);
  checkQuotable(d.admission, enginePodId(getAddress(bytesToHex(r.publisher)), bytesToHex(r.podId)), pod);
  const price = priceOf(pod, config.pricing);
  // The channel must pay royalties for exactly the listings this pod runs, at their terms: the quote signs
  // that list, so a channel with any other cannot open with it.
  const royalties = listingsOf(pod).length
    ? await royaltiesForPod(await d.chain(), pod, account.address)
    : [];
  const signed = await signPodQuote(account, paymentsDomain(d.chainId, config.chain.payments), {
    pod,
    price,
    royalties,
    provider: account.address,
    publisher: getAddress(bytesToHex(r.publisher)),
    podId: bytesToHex(r.podId),
    token: getAddress(config.pricing.token),
    minNoticeSeconds: config.billing.minNoticeSeconds,
    expiry: (await d.clock.now()) + BigInt(config.billing.quoteTtlSeconds),
  });
  const q = signed.quote;
  const billed = Object.fromEntries(price.lines.map((l) => [l.resource, l.units]));
  return {
    quote: {
      provider: account.address,
      chainId: BigInt(d.chainId),
      pricing: pricingToWire(config.pricing),
      billed: {
        cpuMillis: billed.cpu ?? 0n,
        memoryBytes: (billed.memory ?? 0n) << 20n,
        storageBytes: (billed.storage ?? 0n) << 30n,
        gpuCount: billed.gpu ?? 0n,
      },
      pricePerSecond: q.ratePerSecond.toString(),
      minNoticeSeconds: BigInt(q.minNoticeSeconds),
      expiresAt: q.expiry,
      podHash: podHash(podToWire(pod)),
      nonce: r.nonce,
      signature: hexToBytes(signed.signature),
      publisher: r.publisher,
      podId: r.podId,
      paymentsContract: config.chain.payments,
      // Unsigned terms (see pricing.proto): what this daemon's payment gate will check at provision.
      ...quoteTerms(d.billing(), config),
      specHash: hexToBytes(q.specHash),
      royalties: royalties.map((x) => ({ recipient: x.recipient, bps: x.bps, listingId: x.listingId })),
      royaltiesHash: hexToBytes(q.royaltiesHash),
    },
  };
}

export const quoteProtocol = unary("quote", QuoteRequestSchema, QuoteResponseSchema, quote, shortCall);
