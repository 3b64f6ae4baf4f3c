/**
 * `deployPod`: the one deploy flow of DESIGN.md, shared by `tpod deploy` (Node) and the web app (browser). What
 * differs between them is injected as a DeployEnvironment: how images and secrets are uploaded, where progress
 * goes, where the pod record is stored and what to tell the user when the channel is open but the pod is not.
 * Everything else (provider choice among those authorized for the pod's listings, attestation, signed quote,
 * royalties checked against the listings on chain, deposit, fees, channel, confirmations, signed provision) is
 * written once here. Browser-safe: no Node built-ins.
 */
import type { Libp2p } from "@libp2p/interface";
import type { Policy } from "@trustedpods/attestation";
import { type ChainContext, ensureAllowance, openChannel, type Royalty } from "@trustedpods/chain";
import { callSignedUnary } from "@trustedpods/p2p/browser";
import { type Pod, ProvisionRequestSchema, ProvisionResponseSchema, podToWire } from "@trustedpods/protocol";
import { type Address, bytesToHex, erc20Abi, type Hex, hexToBytes } from "viem";
import {
  endpointsFromWire,
  type PodConnection,
  type PodEndpoints,
  podConnection,
  providerError,
  waitForConfirmations,
} from "../connection.js";
import { depositFor, describeTerms, LOW_RUNWAY_SECONDS, paidSeconds, type QuotedTerms } from "../deposit.js";
import { PublisherError } from "../errors.js";
import { formatAmount, formatDuration, formatRate } from "../format.js";
import { breakdownLines, listingFeesIn, marketplacePlan, priceBreakdown } from "../listings.js";
import type { NetworkClients } from "../network.js";
import type { PodRecord } from "../pods.js";
import { whileProviderLags } from "../provider-lag.js";
import {
  cheapestOffer,
  getOffer,
  listOffers,
  type PricedOffer,
  parseTokenAmount,
  priceOffers,
  type TokenInfo,
  tokenInfo,
} from "../providers.js";
import { chainReleaseCheck, type ReleaseCheck } from "../releases.js";
import { type ProviderAttestation, verifyProvider } from "../verify.js";
import { requestQuote } from "./quote.js";

export type DeployStep = "provider" | "attest" | "upload" | "quote" | "channel" | "provision";

/** One progress event: a step started, or finished after `ms` milliseconds, with a human line. */
export interface DeployProgress {
  step: DeployStep;
  phase: "start" | "done";
  ms?: number;
  message: string;
  /** Step-specific values (price, CIDs, transaction hash). */
  data?: Record<string, string>;
}

/** Saves deployed pods (PodStore from "/node" satisfies it). */
export interface PodRecorder {
  add(record: PodRecord): Promise<unknown>;
}

/** The parts of a deploy that depend on where it runs (a terminal with a Podman store and files, or a browser). */
export interface DeployEnvironment {
  /** Rewrites the pod's images to IPFS references (pushing local images); `images` names what was pushed. */
  uploadImages(pod: Pod): Promise<{ pod: Pod; images: Record<string, string> }>;
  /** Encrypts the pod's secrets to the provider's attested key and stores them; returns the rewritten pod. */
  uploadSecrets(pod: Pod, attestation: ProviderAttestation): Promise<Pod>;
  /** Where the pod record goes (the CLI's pods.json); absent: the chain's ChannelOpened event is the record. */
  store?: PodRecorder;
  onProgress?: (e: DeployProgress) => void;
  /**
   * What the user can do when the channel is open but the provision failed, appended to the error
   * (default: the CLI's `tpod fund` / `tpod close`).
   */
  openChannelHint?: string;
  /** How the user sets `funds`, named in DEPOSIT_TOO_SMALL's fix; default "--funds". */
  fundsFlag?: string;
  /** How the user adds time to a short deposit, named in the low-runway warning (the CLI's `tpod fund`). */
  topUpHint?: string;
}

export interface DeployPodOptions {
  pod: Pod;
  /** The network's name, for the pod record and release messages. */
  networkName: string;
  /** Connected clients; must carry a wallet for `signer`. */
  clients: NetworkClients;
  /** Signs provider requests (a local account, or a browser wallet's account). */
  signer: PodConnection["signer"];
  policy: Policy;
  /** Where the policy came from, for messages. */
  policySource?: string;
  /** The publisher's libp2p node (no listen addresses needed). */
  node: Libp2p;
  /** A registered provider to use instead of the cheapest that fits. */
  provider?: Address;
  /**
   * Deposit: token base units, or a decimal amount of tokens ("0.36", parsed exactly in the provider's token
   * decimals); default: the quoted minimum run time plus a margin. Less than the quoted minimum is refused
   * (DEPOSIT_TOO_SMALL) before the channel is opened.
   */
  funds?: bigint | string;
  /** Close notice for the channel; default: the provider's minimum. */
  noticeSeconds?: number;
  /** The minimum paid run time to assume for a provider whose quote does not carry one. */
  minDepositSeconds?: number;
  /** Pod id (bytes32); default: random. */
  podId?: Hex;
  /** The manifest the pod came from, remembered in the record. */
  manifest?: string;
  /** How long to wait for the channel's confirmations and then for a lagging provider; default 60 s. */
  confirmationTimeoutMs?: number;
  /** Deadline for the provision call (pulls included); default 10 minutes. */
  provisionTimeoutMs?: number;
  /** Deadline of each step (DEFAULT_STEP_TIMEOUTS_MS otherwise): a step that takes longer fails with STEP_TIMEOUT. */
  stepTimeoutsMs?: Partial<Record<DeployStep, number>>;
}

/**
 * How long each deploy step may take before it fails with STEP_TIMEOUT. Generous: they bound a hang, not a slow
 * network. The provision step holds the wait for confirmations (1 min) and the provision call (10 min).
 */
export const DEFAULT_STEP_TIMEOUTS_MS: Readonly<Record<DeployStep, number>> = Object.freeze({
  provider: 60_000,
  attest: 2 * 60_000,
  upload: 30 * 60_000,
  quote: 2 * 60_000,
  channel: 5 * 60_000,
  provision: 12 * 60_000,
});

export interface DeployResult {
  podId: Hex;
  provider: Address;
  channel: Hex;
  endpoints: PodEndpoints;
  ratePerSecond: bigint;
  deposit: bigint;
  /** The channel's close notice (seconds). */
  noticeSeconds: number;
  /** The provider's terms the deposit and the wait before provisioning were planned with (from its quote). */
  terms: QuotedTerms;
  /** Seconds the deposit pays for at the rate (undefined at rate 0). */
  paidSeconds?: bigint;
  /** Chain time (seconds) the deposit runs out, unless topped up: the channel's block time + paidSeconds. */
  runsOutAt?: bigint;
  /** Things the user should know, e.g. a deposit that runs out within LOW_RUNWAY_SECONDS. */
  warnings: string[];
  token: TokenInfo;
  /** Milliseconds per step. */
  timings: Partial<Record<DeployStep, number>>;
  record: PodRecord;
  /** Local image names → the CIDs they were pushed as. */
  images: Record<string, string>;
  /** When the pod uses Marketplace listings: the warning, the price breakdown and what the channel pays. */
  marketplace?: { warning: string; breakdown: string[]; royalties: Royalty[]; fees: bigint };
}

export type Step = <T>(
  step: DeployStep,
  start: string,
  fn: () => Promise<T>,
  done: (r: T) => string,
) => Promise<T>;

/** Settles as `work` does, or rejects with `timeout()` after `ms`; the timer never outlives the work. */
export async function withDeadline<T>(work: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a step that ran out of time may have left behind, and what to do about it. */
const AFTER_TIMEOUT: Partial<Record<DeployStep, string>> = {
  channel:
    "; the channel transaction may still be mined: `tpod pods` lists it from the chain and `tpod close` returns its deposit",
  provision:
    "; the payment channel is open: `tpod status` asks the provider about the pod, `tpod delete` removes it and closes the channel",
};

const CLI_OPEN_CHANNEL_HINT = "`tpod fund` adds to it, `tpod close` returns the deposit after the notice";

/** Runs deploy steps: progress before and after, the time each took, and a deadline per step. */
export function stepper(
  onProgress: ((e: DeployProgress) => void) | undefined,
  timings: Partial<Record<DeployStep, number>>,
  timeouts: Partial<Record<DeployStep, number>> = {},
): Step {
  return async (step, start, fn, done) => {
    onProgress?.({ step, phase: "start", message: start });
    const t0 = performance.now();
    const ms = timeouts[step] ?? DEFAULT_STEP_TIMEOUTS_MS[step];
    const r = await withDeadline(
      fn(),
      ms,
      () =>
        new PublisherError(
          "STEP_TIMEOUT",
          `deploy step "${step}" (${start}) did not finish within ${formatDuration(Math.ceil(ms / 1000))}${AFTER_TIMEOUT[step] ?? ""}`,
          { field: step, details: { step, timeoutMs: String(ms) } },
        ),
    );
    const took = Math.round(performance.now() - t0);
    timings[step] = (timings[step] ?? 0) + took;
    onProgress?.({ step, phase: "done", ms: took, message: done(r) });
    return r;
  };
}

/** verifyProvider's `releases` option for a chain context, when the network has a release registry. */
export function releaseCheckOption(
  ctx: ChainContext,
  where: string,
  declared?: Hex,
): { releases?: ReleaseCheck } {
  const check = chainReleaseCheck(ctx, where, declared);
  return check ? { releases: check } : {};
}

async function pickProvider(
  ctx: ChainContext,
  pod: Pod,
  chosen: Address | undefined,
  authorized?: readonly Address[],
): Promise<PricedOffer> {
  if (chosen) {
    const [offer] = priceOffers([await getOffer(ctx, chosen)], pod);
    if (!offer!.fits)
      throw new PublisherError(
        "NO_PROVIDER_FITS",
        `provider ${chosen} cannot take the pod: ${offer!.reason}`,
      );
    return offer!;
  }
  // A pod using listings runs only on providers every listing's developer authorized (docs/marketplace.md).
  const allowed = authorized && new Set(authorized.map((a) => a.toLowerCase()));
  const offers = (await listOffers(ctx, {})).filter((x) => !allowed || allowed.has(x.address.toLowerCase()));
  return cheapestOffer(priceOffers(offers, pod));
}

function randomPodId(): Hex {
  return bytesToHex(crypto.getRandomValues(new Uint8Array(32)));
}

async function checkBalance(
  ctx: ChainContext,
  token: TokenInfo,
  owner: Address,
  deposit: bigint,
): Promise<void> {
  const balance = await ctx.publicClient.readContract({
    address: token.address,
    abi: erc20Abi,
    functionName: "balanceOf",
    args: [owner],
  });
  if (balance < deposit)
    throw new PublisherError(
      "INSUFFICIENT_FUNDS",
      `not enough ${token.symbol}: the deposit is ${formatAmount(deposit, token)}, ${owner} holds ${formatAmount(balance, token)}`,
      { field: "funds" },
    );
}

/** Funds as token base units: a bigint as is, a decimal string in the token's decimals; blank is "not given". */
function parseFunds(funds: bigint | string | undefined, token: TokenInfo): bigint | undefined {
  if (funds === undefined || typeof funds === "bigint") return funds;
  if (funds.trim() === "") return undefined;
  try {
    return parseTokenAmount(funds, token.decimals);
  } catch (err) {
    throw new PublisherError("INVALID_AMOUNT", `funds: ${(err as Error).message}`, { field: "funds" });
  }
}

/** The quote's royalty list must be exactly the listings' terms the publisher read on chain. */
export function checkQuotedRoyalties(quoted: readonly Royalty[], expected: readonly Royalty[]): void {
  const show = (l: readonly Royalty[]) =>
    `[${l.map((r) => `listing ${r.listingId}: ${r.bps} bps to ${r.recipient}`).join(", ")}]`;
  const same =
    quoted.length === expected.length &&
    quoted.every(
      (r, i) =>
        r.listingId === expected[i]!.listingId &&
        r.bps === expected[i]!.bps &&
        r.recipient.toLowerCase() === expected[i]!.recipient.toLowerCase(),
    );
  if (!same)
    throw new PublisherError(
      "QUOTE_INVALID",
      `the provider's quote asks for royalties ${show(quoted)}, but the pod's listings' terms on chain are ${show(expected)}`,
    );
}

function provisionError(err: unknown, channel: Hex, hint: string): unknown {
  const e = providerError("provision", err);
  if (e instanceof PublisherError)
    return new PublisherError(e.code, `${e.message} (the payment channel ${channel} is open: ${hint})`, {
      cause: err,
      ...(e.field ? { field: e.field } : {}),
      details: { ...(e.details ?? {}), channel },
    });
  return e;
}

/**
 * Deploys a pod: picks a provider (among those authorized for the pod's listings), attests it, uploads images
 * and secrets, gets a signed quote whose royalties must be the listings' terms on chain, opens the payment
 * channel with those royalties and the listings' fixed fees, provisions, and records the pod. Every step reports
 * its duration through `env.onProgress`; no money moves before the quote, the deposit and the balance are checked.
 */
export async function deployPod(o: DeployPodOptions, env: DeployEnvironment): Promise<DeployResult> {
  const timings: DeployResult["timings"] = {};
  const say = env.onProgress;
  const step = stepper(say, timings, o.stepTimeoutsMs);
  const ctx = o.clients.context;
  const publisher = o.signer.address;
  const podId = (o.podId ?? randomPodId()).toLowerCase() as Hex;

  const market = await marketplacePlan(ctx, o.pod, o.provider);
  if (market) say?.({ step: "provider", phase: "start", message: `warning: ${market.warning}` });
  const offer = await step(
    "provider",
    o.provider
      ? `reading provider ${o.provider} from the Registry`
      : market
        ? "choosing the cheapest provider that fits, among those authorized for every listing"
        : "choosing the cheapest provider that fits",
    () => pickProvider(ctx, o.pod, o.provider, market?.providers),
    (r) => `provider ${r.name || r.address} (${r.address})`,
  );
  const token = await tokenInfo(o.clients.publicClient, offer.pricing.token);
  // Malformed funds fail before anything is uploaded. Whether they pay for the provider's minimum is known only
  // from its quote (which needs the uploaded pod): checked below, before any money moves.
  const funds = parseFunds(o.funds, token);

  // Attestation and the image upload are independent: run them together. Secrets wait for the attested key.
  const attesting = step(
    "attest",
    `attesting ${offer.name || offer.address}${o.policySource ? ` (policy: ${o.policySource})` : ""}`,
    () =>
      verifyProvider({
        node: o.node,
        multiaddrs: offer.multiaddrs,
        policy: o.policy,
        ...(o.policySource ? { policySource: o.policySource } : {}),
        ...releaseCheckOption(ctx, o.networkName, offer.release),
      }),
    (r) =>
      `attested: ${r.evidence.tee} evidence${r.insecure ? " (insecure-dev: no TEE, allowed by the policy)" : ""}` +
      (r.release ? `, release ${r.release.release.version}` : ""),
  );
  const uploading = step(
    "upload",
    "pushing local images to IPFS",
    () => env.uploadImages(o.pod),
    (r) =>
      Object.keys(r.images).length
        ? `pushed ${Object.entries(r.images)
            .map(([n, c]) => `${n} → ${c}`)
            .join(", ")}`
        : "no local images",
  );
  // Both settle before either error is thrown: a refused attestation must not leave the upload writing into an
  // IPFS repo the caller is about to close and remove (its cleanup error would then hide the refusal).
  const [attested, pushed] = await Promise.allSettled([attesting, uploading]);
  if (attested.status === "rejected") throw attested.reason;
  if (pushed.status === "rejected") throw pushed.reason;
  const attestation = attested.value;
  const pod = await step(
    "upload",
    "encrypting secrets to the provider's attested key",
    () => env.uploadSecrets(pushed.value.pod, attestation),
    () => "secrets uploaded",
  );

  const conn = podConnection(o.node, { provider: offer.address, chainId: o.clients.chainId }, o.signer, [
    ...offer.multiaddrs,
  ]);
  const quote = await step(
    "quote",
    "asking for a signed quote",
    () =>
      requestQuote(conn, {
        pod,
        podId,
        publisher,
        payments: ctx.addresses.payments,
        ...(o.minDepositSeconds === undefined ? {} : { fallbackMinDepositSeconds: o.minDepositSeconds }),
      }),
    (q) =>
      `price ${formatRate(q.quote.ratePerSecond, token)}, ${describeTerms(q.terms, q.quote.ratePerSecond, (a) => formatAmount(a, token))}`,
  );
  if (quote.quote.token !== offer.pricing.token)
    throw new PublisherError(
      "QUOTE_INVALID",
      `the quote is in token ${quote.quote.token}, the Registry says ${offer.pricing.token}`,
    );
  // Refused here, before the approval and the channel: a deposit the provider would refuse moves no money.
  const deposit = depositFor({
    ...(funds === undefined ? {} : { funds }),
    ...(env.fundsFlag === undefined ? {} : { fundsFlag: env.fundsFlag }),
    decimals: token.decimals,
    symbol: token.symbol,
    minDepositSeconds: quote.terms.minDepositSeconds,
    ratePerSecond: quote.quote.ratePerSecond,
  });
  const paid = paidSeconds(deposit, quote.quote.ratePerSecond);
  const warnings =
    paid !== undefined && paid < BigInt(LOW_RUNWAY_SECONDS)
      ? [
          `this deposit pays for only ${formatDuration(paid)}: then the provider stops the pod, and deletes it with its volumes once the notice period passes without a top-up${env.topUpHint ? ` (${env.topUpHint})` : ""}`,
        ]
      : [];
  for (const w of warnings) say?.({ step: "quote", phase: "start", message: `warning: ${w}` });
  const noticeSeconds = Math.max(o.noticeSeconds ?? 0, quote.quote.minNoticeSeconds);
  // The channel carries exactly the royalty list the provider signed; it must be the listings' terms as we read
  // them on chain (an extra listing would charge us its fixed fee, a missing one gets the pod refused).
  checkQuotedRoyalties(quote.royalties, market?.royalties ?? []);
  const fees = market ? listingFeesIn(market, token.address) : 0n;
  const breakdown = market
    ? breakdownLines(priceBreakdown(offer.address, quote.quote.ratePerSecond, market), (a) =>
        formatAmount(a, token),
      )
    : [];
  for (const line of breakdown) say?.({ step: "quote", phase: "start", message: `price: ${line}` });

  const channel = await step(
    "channel",
    `opening the payment channel with ${formatAmount(deposit, token)}${fees > 0n ? ` (+ ${formatAmount(fees, token)} listing fees)` : ""}`,
    async () => {
      await checkBalance(ctx, token, publisher, deposit + fees);
      try {
        await ensureAllowance(ctx, token.address, deposit + fees);
        return await openChannel(ctx, {
          quote: quote.quote,
          quoteSignature: quote.signature,
          podId,
          deposit,
          noticeSeconds,
          royalties: quote.royalties,
          fees,
          approve: false,
        });
      } catch (err) {
        throw new PublisherError(
          "CHAIN_FAILED",
          `cannot open the payment channel: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    },
    (r) => `channel ${r.channelId} (tx ${r.hash})`,
  );
  const openedAt = (await ctx.publicClient.getBlock({ blockNumber: channel.receipt.blockNumber })).timestamp;

  const confirmations = quote.terms.confirmations;
  const provisionOnce = () =>
    callSignedUnary(
      o.node,
      conn.target,
      "provision",
      ProvisionRequestSchema,
      {
        podId: hexToBytes(podId),
        pod: podToWire(pod),
        channel: { chainId: BigInt(o.clients.chainId), paymentsContract: ctx.addresses.payments },
      },
      ProvisionResponseSchema,
      { signer: o.signer, chainId: o.clients.chainId, provider: offer.address, podId },
      { timeoutMs: o.provisionTimeoutMs ?? 600_000 },
    );
  const res = await step(
    "provision",
    confirmations > 0
      ? `waiting for ${confirmations} confirmation${confirmations === 1 ? "" : "s"} of the channel, then provisioning`
      : "provisioning",
    async () => {
      const deadline = Date.now() + (o.confirmationTimeoutMs ?? 60_000);
      // The provider reads the channel `confirmations` blocks below the head: asking earlier only races it.
      if (confirmations > 0)
        await waitForConfirmations(ctx.publicClient, channel.receipt.blockNumber, confirmations, deadline);
      // Should the provider still not see it (a reorg, an older daemon that did not say), it says so.
      try {
        return await whileProviderLags("channel", deadline, provisionOnce);
      } catch (err) {
        throw provisionError(err, channel.channelId, env.openChannelHint ?? CLI_OPEN_CHANNEL_HINT);
      }
    },
    () => "pod running",
  );
  const record: PodRecord = {
    podId,
    ...(o.pod.name ? { name: o.pod.name } : {}),
    provider: offer.address,
    peerId: attestation.peerId,
    multiaddrs: [...offer.multiaddrs],
    chainId: o.clients.chainId,
    network: o.networkName,
    channel: channel.channelId,
    publisher,
    manifest: o.manifest ?? `${o.pod.name}.yaml`,
    createdAt: new Date().toISOString(),
  };
  await env.store?.add(record);
  return {
    podId,
    provider: offer.address,
    channel: channel.channelId,
    endpoints: endpointsFromWire(res.endpoints),
    ratePerSecond: quote.quote.ratePerSecond,
    deposit,
    noticeSeconds,
    terms: quote.terms,
    ...(paid !== undefined ? { paidSeconds: paid, runsOutAt: openedAt + paid } : {}),
    warnings,
    token,
    timings,
    record,
    images: pushed.value.images,
    ...(market
      ? { marketplace: { warning: market.warning, breakdown, royalties: market.royalties, fees } }
      : {}),
  };
}
