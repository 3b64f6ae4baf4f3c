import type { ChainContext } from "@trustedpods/chain";
import { billedUnits, type Pod, type Pricing, PricingError, podPrice } from "@trustedpods/protocol";
import { type Address, getAddress, isAddress } from "viem";
import type { PaymentGate } from "../billing-seam.js";
import { accruedAt } from "./accrual.js";
import { chainPoints, channelAt, listingTermsAt, royaltiesAt } from "./chain-read.js";
import { type ChannelProblem, PaymentRequiredError, UnknownPodError } from "./errors.js";
import { listingsOf } from "./quote.js";
import type { BillingStore, Reserved } from "./store.js";
import type { BillingConfig, BillingLogger, Hex, ProvisionCheck } from "./types.js";

const BYTES32_RE = /^0x[0-9a-fA-F]{64}$/;
const ZERO32 = `0x${"00".repeat(32)}`;
const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";

export interface ChannelGateOptions {
  store: BillingStore;
  /** The provider's context: its wallet's address is the channel's provider. */
  chain: ChainContext;
  /** The chain id channels must live on. */
  chainId: bigint;
  config: BillingConfig;
  /** The provider's pricing token; channels in another token are refused. */
  token?: Address;
  /** The provider's pricing: the rate a channel must pay is the pod's price under it (unless a request names one). */
  pricing?: Pricing;
  /** The string the daemon names a pod by (onProvisioned, onDeleted, PodLifecycle); default the bytes32 hex. */
  podKeyOf?: (podId: Hex) => string;
  logger: BillingLogger;
  /** Called after a pod starts or ends billing (the loop wakes up). */
  onChange?: () => void;
}

/** The units a pod reserves, by the protocol's pricing rules (what its rate was quoted for). */
export function reservedOf(pod: Pod): Reserved {
  const u = billedUnits(pod);
  return { cpuMillis: u.cpu, memoryMiB: u.memory, storageGiB: u.storage, gpu: u.gpu };
}

/**
 * The provision check: reads the channel at `latest - confirmations` and refuses (PaymentRequiredError naming every
 * field at fault) unless it pays this provider for this pod at the quoted rate, with enough deposit and notice,
 * and royalties for exactly the listings the pod runs (nothing else). A passing check is recorded, with the price
 * the channel must keep paying; onProvisioned then starts billing.
 */
export class ChannelGate implements PaymentGate {
  readonly provider: Address;
  private readonly podKeyOf: (podId: Hex) => string;

  constructor(private readonly opts: ChannelGateOptions) {
    const account = opts.chain.walletClient?.account;
    if (!account)
      throw new Error("ChannelGate needs the provider's wallet client (its address is the provider)");
    this.provider = account.address;
    this.podKeyOf = opts.podKeyOf ?? ((id) => id.toLowerCase());
  }

  async checkProvision(req: ProvisionCheck): Promise<void> {
    const early: ChannelProblem[] = [];
    if (!req.channel)
      early.push({
        field: "channel",
        message: `the provision request names no payment channel: open one on chain ${this.opts.chainId} (Payments ${this.opts.chain.addresses.payments}) and reference it`,
      });
    else {
      if (req.channel.chainId !== this.opts.chainId)
        early.push({
          field: "channel.chainId",
          message: `wrong chain: the provider takes payment on chain ${this.opts.chainId}, the channel reference names chain ${req.channel.chainId}`,
        });
      const payments = this.opts.chain.addresses.payments;
      if (req.channel.paymentsContract.toLowerCase() !== payments.toLowerCase())
        early.push({
          field: "channel.paymentsContract",
          message: `wrong Payments contract: the provider uses ${payments}, the channel reference names ${req.channel.paymentsContract}`,
        });
    }
    const { problems, ch, confirmed, expected } = await this.checkChannel(req, early);
    if (problems.length > 0) throw new PaymentRequiredError(problems);

    this.opts.store.putChecked({
      podKey: this.keyOf(req),
      podId: req.podId.toLowerCase() as Hex,
      publisher: getAddress(req.publisher),
      provider: this.provider,
      channelId: ch.id,
      token: ch.token,
      ratePerSecond: ch.ratePerSecond,
      requiredRate: expected,
      reserved: reservedOf(req.pod),
      observed: { ...ch, block: confirmed.number, time: confirmed.time },
    });
  }

  /**
   * An update must keep paying for what runs: the channel (open, still this provider's) must pay at least the
   * updated pod's price, with royalties for exactly its listings. A higher price needs a new quote and the
   * publisher's changeRate first; a lower one may follow the update (the channel then pays more until it does).
   */
  async checkUpdate(req: ProvisionCheck): Promise<void> {
    const { problems } = await this.checkChannel(req, [], true);
    if (problems.length > 0) throw new PaymentRequiredError(problems);
  }

  /** The update runs: from now on the channel must pay the updated spec's price (the loop checks every tick). */
  onUpdated(req: ProvisionCheck): void {
    const key = this.keyOf(req);
    if (this.opts.store.getPod(key))
      this.opts.store.updateReserved(key, reservedOf(req.pod), this.expectedRate(req));
  }

  private keyOf(req: ProvisionCheck): string {
    return req.id ?? this.podKeyOf(req.podId.toLowerCase() as Hex);
  }

  private expectedRate(req: ProvisionCheck): bigint {
    if (req.quotedRatePerSecond !== undefined) return req.quotedRatePerSecond;
    if (!this.opts.pricing)
      throw new Error("ChannelGate needs the provider's pricing (or a quoted rate per request)");
    try {
      return podPrice(req.pod, this.opts.pricing).perSecond;
    } catch (err) {
      if (err instanceof PricingError)
        throw new PaymentRequiredError([{ field: "pod", message: err.message }]);
      throw err;
    }
  }

  private async checkChannel(req: ProvisionCheck, early: ChannelProblem[], update = false) {
    const { config } = this.opts;
    if (!BYTES32_RE.test(req.podId) || req.podId === ZERO32)
      early.push({
        field: "podId",
        message: `pod id ${req.podId} is not a non-zero bytes32 (0x and 64 hex digits)`,
      });
    if (!isAddress(req.publisher, { strict: false }))
      early.push({ field: "publisher", message: `publisher ${req.publisher} is not an address` });
    if (early.length > 0) throw new PaymentRequiredError(early);
    const expected = this.expectedRate(req);

    const publisher = getAddress(req.publisher);
    const podId = req.podId.toLowerCase() as Hex;
    const key = { publisher, provider: this.provider, podId };
    // Reads at a confirmed block: a channel that a reorg could still remove does not start anything.
    const { confirmed } = await chainPoints(this.opts.chain, config.confirmations);
    const ch = await channelAt(this.opts.chain, key, confirmed.number);
    const at = `at block ${confirmed.number} (${config.confirmations} confirmations)`;
    if (!ch.exists) {
      throw new PaymentRequiredError([
        ch.finalized
          ? {
              field: "channel",
              message: `the channel of publisher ${publisher} to provider ${this.provider} for pod ${podId} was closed and settled; a pod id is never reused: choose a new pod id and open a new channel`,
            }
          : {
              field: "channel",
              message: `no payment channel from publisher ${publisher} to provider ${this.provider} for pod ${podId} ${at}: open it with the provider's quote (or wait for ${config.confirmations} confirmations)`,
            },
      ]);
    }
    const problems: ChannelProblem[] = [];
    if (ch.closeAt !== 0n)
      problems.push({
        field: "closeAt",
        message: `the channel is closing (accrual stops at ${ch.closeAt}): open a new channel for a new pod id`,
      });
    if (this.opts.token && ch.token.toLowerCase() !== this.opts.token.toLowerCase())
      problems.push({
        field: "token",
        message: `wrong token: the provider is paid in ${this.opts.token}, the channel holds ${ch.token}`,
      });
    if (update ? ch.ratePerSecond < expected : ch.ratePerSecond !== expected)
      problems.push({
        field: "ratePerSecond",
        message: update
          ? `rate too low: the updated pod costs ${expected} wei/s, the channel pays ${ch.ratePerSecond} wei/s: get a new quote and change the channel's rate (changeRate) first`
          : `rate mismatch: the provider quoted ${expected} wei/s for this pod, the channel pays ${ch.ratePerSecond} wei/s: open the channel with the quoted rate`,
      });
    if (ch.noticeSeconds < config.minNoticeSeconds)
      problems.push({
        field: "noticeSeconds",
        message: `notice too short: the provider needs at least ${config.minNoticeSeconds} s of notice, the channel has ${ch.noticeSeconds} s`,
      });
    if (!update) {
      const need = expected * config.minRunSeconds;
      const used = accruedAt(ch, confirmed.time);
      const left = ch.deposit > used ? ch.deposit - used : 0n;
      if (left < need) {
        const holds =
          used === 0n
            ? `the channel holds ${ch.deposit} wei`
            : `the channel has ${left} wei left (deposit ${ch.deposit} wei, ${used} wei already accrued)`;
        problems.push({
          field: "deposit",
          message: `deposit too small: the provider wants at least ${config.minRunSeconds} s at ${expected} wei/s = ${need} wei, ${holds}: top up the channel`,
        });
      }
    }
    problems.push(...(await this.royaltyProblems(req.pod, ch.id, confirmed.number)));
    return { problems, ch, confirmed, expected };
  }

  /**
   * The channel's royalties must be exactly one entry per listing the pod runs, paying its developer: an entry
   * for anything else (a share with no listing, a listing the pod does not run) takes the provider's pay.
   */
  private async royaltyProblems(pod: Pod, id: Hex, block: bigint): Promise<ChannelProblem[]> {
    const problems: ChannelProblem[] = [];
    const entries = await royaltiesAt(this.opts.chain, id, block);
    const runs = listingsOf(pod);
    for (const listingId of runs) {
      const t = await listingTermsAt(this.opts.chain, listingId, this.provider, block);
      const field = `royalties[listing ${listingId}]`;
      if (t.developer === ZERO_ADDRESS) {
        problems.push({
          field,
          message: `listing ${listingId} does not exist: check the pod's image listing id`,
        });
        continue;
      }
      const entry = entries.find((r) => r.listingId === listingId);
      if (!entry)
        problems.push({
          field,
          message: `royalty missing: the pod runs listing ${listingId}, whose developer ${t.developer} requires ${t.royaltyBps} bps, and the channel has no royalty entry for it: open the channel with {recipient: ${t.developer}, bps: ${t.royaltyBps}, listingId: ${listingId}}`,
        });
      else if (entry.recipient.toLowerCase() !== t.developer.toLowerCase())
        problems.push({
          field,
          message: `royalty for listing ${listingId} pays ${entry.recipient}, but the listing's developer is ${t.developer}`,
        });
      if (!t.authorized)
        problems.push({
          field: `listings[${listingId}]`,
          message: `this provider (${this.provider}) is not authorized for listing ${listingId}: pick a provider the developer authorized`,
        });
    }
    entries.forEach((r, i) => {
      if (runs.includes(r.listingId)) return;
      const what =
        r.listingId === 0n ? "with no listing" : `for listing ${r.listingId}, which the pod does not run`;
      problems.push({
        field: `royalties[${i}]`,
        message: `royalty not for this pod: entry ${i} gives ${r.recipient} ${r.bps} bps of every claim ${what}; a channel pays royalties only for the listings the pod runs: open a new channel with the royalty list of the provider's quote`,
      });
    });
    return problems;
  }

  async onProvisioned(provisioned: string | { id: string }): Promise<void> {
    const podKey = typeof provisioned === "string" ? provisioned : provisioned.id;
    const { store } = this.opts;
    const pod = store.getPod(podKey);
    if (!pod)
      throw new UnknownPodError(
        `billing knows no checked channel for pod ${podKey}: call checkProvision first`,
      );
    if (pod.state !== "checked") return; // idempotent
    const start = await this.chainTimeOrNull();
    // The channel accrued from its anchor while the provider waited for confirmations, pulled and started the pod:
    // that time was not served, so the loop waives it (before its first claim).
    const since = pod.observed?.since;
    const waiver = start !== null && since !== undefined && start > since ? { since, until: start } : null;
    store.transaction(() => {
      store.updatePod(podKey, { state: "running", lastError: null, waiver });
      store.openReservation(podKey, start);
    });
    this.opts.logger.info({ pod: podKey, rate: pod.ratePerSecond.toString() }, "billing started");
    this.opts.onChange?.();
  }

  async onDeleted(podKey: string): Promise<void> {
    const { store } = this.opts;
    const pod = store.getPod(podKey);
    if (!pod) return;
    if (pod.state === "checked") {
      store.updatePod(podKey, { state: "settled" });
      return;
    }
    if (pod.state !== "running" && pod.state !== "stopped_funds") return;
    const now = await this.chainTimeOrNull();
    store.transaction(() => {
      if (now !== null) store.closeReservation(podKey, now);
      // stoppedAt null: the loop fills it in from its next chain read.
      store.updatePod(podKey, {
        state: "deleted",
        stoppedAt: pod.state === "stopped_funds" ? pod.stoppedAt : now,
      });
    });
    this.opts.logger.info(
      { pod: podKey },
      "pod deleted by its publisher: billing stops, volumes kept for the notice",
    );
    this.opts.onChange?.();
  }

  /** Chain time now, or null when the chain is unreachable (the loop fills it in later). */
  private async chainTimeOrNull(): Promise<bigint | null> {
    try {
      return (await chainPoints(this.opts.chain, 0)).head.time;
    } catch {
      return null;
    }
  }
}
