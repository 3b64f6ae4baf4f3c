/**
 * `deploy`: the whole publisher side of DESIGN.md's deploy flow, and `updatePod`, which reuses its upload
 * step. Node only (local images come from the Podman store, secret files from disk); exported from
 * "@trustedpods/publisher/node".
 */
import { createHash, createPublicKey, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Libp2p } from "@libp2p/interface";
import {
  type ChainContext,
  ensureAllowance,
  getChannel,
  openChannel,
  type Royalty,
} from "@trustedpods/chain";
import type { ContentStore } from "@trustedpods/ipfs";
import type { ImageSource } from "@trustedpods/oci";
import { callSignedUnary } from "@trustedpods/p2p";
import {
  type Container,
  type Pod,
  ProvisionRequestSchema,
  ProvisionResponseSchema,
  podToWire,
  UpdateRequestSchema,
  UpdateResponseSchema,
  type Volume,
} from "@trustedpods/protocol";
import { type Address, erc20Abi, type Hex, type LocalAccount } from "viem";
import { PublisherError } from "./errors.js";
import { formatAmount, formatDuration, formatRate } from "./format.js";
import { breakdownLines, listingFeesIn, marketplacePlan, priceBreakdown } from "./listings.js";
import type { NetworkClients, ResolvedNetwork, SelectedPolicy } from "./network.js";
import {
  type CheckedQuote,
  changePodRate,
  depositFor,
  describeTerms,
  endpointsFromWire,
  LOW_RUNWAY_SECONDS,
  type PodConnection,
  type PodEndpoints,
  paidSeconds,
  podConnection,
  providerError,
  type QuotedTerms,
  requestQuote,
  waitForConfirmations,
} from "./pod-ops.js";
import type { PodRecord } from "./pods.js";
import { whileProviderLags } from "./provider-lag.js";
import {
  cheapestOffer,
  getOffer,
  listOffers,
  type PricedOffer,
  parseTokenAmount,
  priceOffers,
  type TokenInfo,
  tokenInfo,
} from "./providers.js";
import { chainReleaseCheck, type ReleaseCheck } from "./releases.js";
import { type ProviderAttestation, verifyProvider } from "./verify.js";

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

export interface UploadOptions {
  /** Where images and secrets go: a node the provider can fetch from (see docs/deploy.md). */
  ipfs: ContentStore;
  /** Directory secret file paths are relative to (the manifest's). */
  baseDir?: string;
  /** Opens a local image by name (default: the Podman store, `podman save`). */
  openLocalImage?: (name: string) => Promise<ImageSource & { close?: () => Promise<void> }>;
}

export interface DeployOptions extends UploadOptions {
  pod: Pod;
  /** The manifest file, remembered in the pod record (absolute or relative to the working directory). */
  manifestPath?: string;
  network: ResolvedNetwork;
  /** Connected clients; must carry a wallet for `account`. */
  clients: NetworkClients;
  account: LocalAccount;
  policy: SelectedPolicy;
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
  /** How the caller's user sets `funds`, named in DEPOSIT_TOO_SMALL's fix; default "--funds". */
  fundsFlag?: string;
  /** Close notice for the channel; default: the provider's minimum. */
  noticeSeconds?: number;
  /**
   * The minimum paid run time to assume for a provider whose quote does not carry one (daemons before
   * Quote.min_deposit_seconds send 0); default DEFAULT_MIN_DEPOSIT_SECONDS (3600). A quoted minimum wins.
   */
  minDepositSeconds?: number;
  /** Pod id (bytes32); default: random. */
  podId?: Hex;
  store?: PodRecorder;
  onProgress?: (e: DeployProgress) => void;
  /**
   * How long to wait for the quoted confirmations after the channel's block, and then to keep asking while the
   * provider does not see the channel yet; default 60 s.
   */
  confirmationTimeoutMs?: number;
  /** Deadline for the provision call (pulls included); default 10 minutes. */
  provisionTimeoutMs?: number;
  /**
   * Deadline of each step (DEFAULT_STEP_TIMEOUTS_MS otherwise): a step that takes longer fails with STEP_TIMEOUT
   * naming it, so a deploy never hangs.
   */
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
  /** When the pod uses Marketplace listings: the warning, the price breakdown and what the channel pays. */
  marketplace?: { warning: string; breakdown: string[]; royalties: Royalty[]; fees: bigint };
}

type Step = <T>(step: DeployStep, start: string, fn: () => Promise<T>, done: (r: T) => string) => Promise<T>;

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

function stepper(
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

/** RFC 7638 thumbprint of a P-256 SPKI key: the provider's `encryptionKeyId`, a secret's `keyRef`. */
export function encryptionKeyId(spki: Uint8Array): string {
  const jwk = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" }).export({
    format: "jwk",
  });
  if (jwk.kty !== "EC" || !jwk.crv || !jwk.x || !jwk.y)
    throw new PublisherError("ATTESTATION_REFUSED", "the provider's encryption key is not an EC key", {
      field: "encryptionPublicKey",
    });
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash("sha256").update(canonical).digest("base64url");
}

function uploadError(what: string, err: unknown): PublisherError {
  return new PublisherError("UPLOAD_FAILED", `${what}: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  });
}

/**
 * Uploads every local image to IPFS (once per name) and rewrites the containers to the pushed root CID and
 * manifest digest. Images already on IPFS are kept.
 */
export async function pushLocalImages(
  pod: Pod,
  o: UploadOptions,
): Promise<{ pod: Pod; images: Record<string, string> }> {
  // Loaded on use: Helia and the OCI code are heavy, and every tpod command imports this entry.
  const { pushImage } = await import("@trustedpods/ipfs");
  const open = o.openLocalImage ?? (await import("@trustedpods/oci")).openPodmanImage;
  const pushed = new Map<string, Promise<{ cid: string; digest: string }>>();
  const pushOne = async (name: string) => {
    let src: Awaited<ReturnType<typeof open>>;
    try {
      src = await open(name);
    } catch (err) {
      throw uploadError(`cannot read local image ${name} (build it first, e.g. with buildah)`, err);
    }
    try {
      const { cid, root } = await pushImage(o.ipfs, src);
      return { cid: cid.toString(), digest: root.root.digest };
    } catch (err) {
      throw uploadError(`cannot push image ${name} to IPFS`, err);
    } finally {
      await src.close?.();
    }
  };
  const containers: Container[] = [];
  for (const c of pod.containers) {
    if (c.image.kind !== "local") {
      containers.push(c);
      continue;
    }
    const name = c.image.name;
    if (!pushed.has(name)) pushed.set(name, pushOne(name));
    containers.push({ ...c, image: { kind: "ipfs", ...(await pushed.get(name)!) } });
  }
  const images: Record<string, string> = {};
  for (const [name, p] of pushed) images[name] = (await p).cid;
  return { pod: { ...pod, containers }, images };
}

/** Encrypts every secret file to the provider's attested key and stores it on IPFS. */
export async function uploadSecrets(
  pod: Pod,
  attestation: Pick<ProviderAttestation, "encryptionPublicKey">,
  o: UploadOptions,
): Promise<Pod> {
  const files = pod.volumes.filter((v) => v.kind === "secret" && v.source.kind === "file");
  if (files.length === 0) return pod;
  const key = createPublicKey({
    key: Buffer.from(attestation.encryptionPublicKey),
    format: "der",
    type: "spki",
  });
  const keyRef = encryptionKeyId(attestation.encryptionPublicKey);
  const { encryptSecret, putSecret } = await import("@trustedpods/ipfs");
  const volumes: Volume[] = [];
  for (const v of pod.volumes) {
    if (v.kind !== "secret" || v.source.kind !== "file") {
      volumes.push(v);
      continue;
    }
    const file = resolve(o.baseDir ?? ".", v.source.path);
    let plain: Buffer;
    try {
      plain = await readFile(file);
    } catch (err) {
      throw uploadError(`cannot read secret file ${file}`, err);
    }
    try {
      const cid = await putSecret(o.ipfs, await encryptSecret(plain, key));
      volumes.push({ name: v.name, kind: "secret", source: { kind: "ipfs", cid: cid.toString(), keyRef } });
    } catch (err) {
      throw uploadError(`cannot store secret ${v.name}`, err);
    } finally {
      plain.fill(0);
    }
  }
  return { ...pod, volumes };
}

async function pickProvider(o: DeployOptions, authorized?: readonly Address[]): Promise<PricedOffer> {
  const ctx = o.clients.context;
  if (o.provider) {
    const [offer] = priceOffers([await getOffer(ctx, o.provider)], o.pod);
    if (!offer!.fits)
      throw new PublisherError(
        "NO_PROVIDER_FITS",
        `provider ${o.provider} cannot take the pod: ${offer!.reason}`,
      );
    return offer!;
  }
  // A pod using listings runs only on providers every listing's developer authorized (docs/marketplace.md).
  const allowed = authorized && new Set(authorized.map((a) => a.toLowerCase()));
  const offers = (await listOffers(ctx, {})).filter((x) => !allowed || allowed.has(x.address.toLowerCase()));
  return cheapestOffer(priceOffers(offers, o.pod));
}

function randomPodId(): Hex {
  return `0x${randomBytes(32).toString("hex")}`;
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

/** verifyProvider's `releases` option for a chain context, when the network has a release registry. */
export function releaseCheckOption(
  ctx: ChainContext,
  where: string,
  declared?: Hex,
): { releases?: ReleaseCheck } {
  const check = chainReleaseCheck(ctx, where, declared);
  return check ? { releases: check } : {};
}

/**
 * Deploys a pod: picks a provider, attests it, uploads images and secrets, gets a signed quote, opens the
 * payment channel, provisions, and records the pod. Every step reports its duration through `onProgress`.
 */
export async function deploy(o: DeployOptions): Promise<DeployResult> {
  const timings: DeployResult["timings"] = {};
  const step = stepper(o.onProgress, timings, o.stepTimeoutsMs);
  const ctx = o.clients.context;
  const publisher = o.account.address;
  const podId = (o.podId ?? randomPodId()).toLowerCase() as Hex;

  const market = await marketplacePlan(ctx, o.pod, o.provider);
  if (market) o.onProgress?.({ step: "provider", phase: "start", message: `warning: ${market.warning}` });
  const offer = await step(
    "provider",
    o.provider
      ? `reading provider ${o.provider} from the Registry`
      : market
        ? "choosing the cheapest provider that fits, among those authorized for every listing"
        : "choosing the cheapest provider that fits",
    () => pickProvider(o, market?.providers),
    (r) => `provider ${r.name || r.address} (${r.address})`,
  );
  const token = await tokenInfo(o.clients.publicClient, offer.pricing.token);
  // Malformed funds fail before anything is uploaded. Whether they pay for the provider's minimum is known only
  // from its quote (which needs the uploaded pod): checked below, before any money moves.
  if (o.funds !== undefined) parseFunds(o.funds, token);

  // Attestation and the image upload are independent: run them together. Secrets wait for the attested key.
  const attesting = step(
    "attest",
    `attesting ${offer.address} (policy: ${o.policy.source})`,
    () =>
      verifyProvider({
        node: o.node,
        multiaddrs: offer.multiaddrs,
        policy: o.policy.policy,
        policySource: o.policy.source,
        ...releaseCheckOption(ctx, o.network.name, offer.release),
      }),
    (r) =>
      `attested: ${r.evidence.tee} evidence${r.insecure ? " (insecure-dev: no TEE, allowed by the policy)" : ""}` +
      (r.release ? `, release ${r.release.release.version}` : ""),
  );
  const uploading = step(
    "upload",
    "pushing local images to IPFS",
    () => pushLocalImages(o.pod, o),
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
  const { pod: withImages } = pushed.value;
  const pod = await step(
    "upload",
    "encrypting secrets to the provider's attested key",
    () => uploadSecrets(withImages, attestation, o),
    () => "secrets uploaded",
  );

  const conn = podConnection(
    o.node,
    { ...offer, provider: offer.address, chainId: o.clients.chainId },
    o.account,
    [...offer.multiaddrs],
  );
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
    ...depositArgs(o, token),
    minDepositSeconds: quote.terms.minDepositSeconds,
    ratePerSecond: quote.quote.ratePerSecond,
  });
  const paid = paidSeconds(deposit, quote.quote.ratePerSecond);
  const warnings =
    paid !== undefined && paid < BigInt(LOW_RUNWAY_SECONDS)
      ? [
          `this deposit pays for only ${formatDuration(paid)}: then the provider stops the pod, and deletes it with its volumes once the notice period passes without a top-up (\`tpod fund\` adds time)`,
        ]
      : [];
  for (const w of warnings) o.onProgress?.({ step: "quote", phase: "start", message: `warning: ${w}` });
  const noticeSeconds = Math.max(o.noticeSeconds ?? 0, quote.quote.minNoticeSeconds);
  // The channel carries exactly the royalty list the provider signed; it must be the listings' terms as we read
  // them on chain (an extra listing would charge us its fixed fee).
  checkQuotedRoyalties(quote.royalties, market?.royalties ?? []);
  const fees = market ? listingFeesIn(market, token.address) : 0n;
  const breakdown = market
    ? breakdownLines(priceBreakdown(offer.address, quote.quote.ratePerSecond, market), (a) =>
        formatAmount(a, token),
      )
    : [];
  for (const line of breakdown) o.onProgress?.({ step: "quote", phase: "start", message: `price: ${line}` });

  const channel = await step(
    "channel",
    `opening the payment channel with ${formatAmount(deposit, token)}`,
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
        throw provisionError(err, channel.channelId);
      }
    },
    () => "pod running",
  );
  async function provisionOnce() {
    return await callSignedUnary(
      o.node,
      conn.target,
      "provision",
      ProvisionRequestSchema,
      {
        podId: Buffer.from(podId.slice(2), "hex"),
        pod: podToWire(pod),
        channel: { chainId: BigInt(o.clients.chainId), paymentsContract: ctx.addresses.payments },
      },
      ProvisionResponseSchema,
      { signer: o.account, chainId: o.clients.chainId, provider: offer.address, podId },
      { timeoutMs: o.provisionTimeoutMs ?? 600_000 },
    );
  }
  const endpoints = endpointsFromWire(res.endpoints);
  const now = new Date().toISOString();
  const record: PodRecord = {
    podId,
    ...(o.pod.name ? { name: o.pod.name } : {}),
    provider: offer.address,
    peerId: attestation.peerId,
    multiaddrs: [...offer.multiaddrs],
    chainId: o.clients.chainId,
    network: o.network.name,
    channel: channel.channelId,
    publisher,
    manifest: resolve(o.manifestPath ?? `${o.pod.name}.yaml`),
    createdAt: now,
  };
  await o.store?.add(record);
  return {
    podId,
    provider: offer.address,
    channel: channel.channelId,
    endpoints,
    ratePerSecond: quote.quote.ratePerSecond,
    deposit,
    noticeSeconds,
    terms: quote.terms,
    ...(paid !== undefined ? { paidSeconds: paid, runsOutAt: openedAt + paid } : {}),
    warnings,
    token,
    timings,
    record,
    ...(market
      ? { marketplace: { warning: market.warning, breakdown, royalties: market.royalties, fees } }
      : {}),
  };
}

function parseFunds(funds: bigint | string, token: TokenInfo): bigint {
  if (typeof funds === "bigint") return funds;
  try {
    return parseTokenAmount(funds, token.decimals);
  } catch (err) {
    throw new PublisherError("INVALID_AMOUNT", `funds: ${(err as Error).message}`, { field: "funds" });
  }
}

function depositArgs(o: DeployOptions, token: TokenInfo) {
  return {
    ...(o.funds === undefined ? {} : { funds: parseFunds(o.funds, token) }),
    ...(o.fundsFlag === undefined ? {} : { fundsFlag: o.fundsFlag }),
    decimals: token.decimals,
    symbol: token.symbol,
  };
}

function provisionError(err: unknown, channel: Hex): unknown {
  const e = providerError("provision", err);
  if (e instanceof PublisherError)
    return new PublisherError(
      e.code,
      `${e.message} (the payment channel ${channel} is open: \`tpod fund\` adds to it, \`tpod close\` returns the deposit after the notice)`,
      { cause: err, ...(e.field ? { field: e.field } : {}), ...(e.details ? { details: e.details } : {}) },
    );
  return e;
}

export interface UpdateOptions extends UploadOptions {
  /** The pod: from the local record, or found on chain with its provider's addresses from the Registry. */
  record: Pick<PodRecord, "podId" | "provider" | "multiaddrs" | "chainId"> &
    Partial<Pick<PodRecord, "network">>;
  pod: Pod;
  clients: NetworkClients;
  account: LocalAccount;
  policy: SelectedPolicy;
  node: Libp2p;
  onProgress?: (e: DeployProgress) => void;
  /** How long to keep asking while the provider waits for the new rate's confirmations; default 60 s. */
  confirmationTimeoutMs?: number;
}

export interface UpdateResult {
  endpoints: PodEndpoints;
  /** The channel's rate after the update. */
  ratePerSecond: bigint;
  rateChanged: boolean;
  timings: Partial<Record<DeployStep, number>>;
}

/**
 * Replaces a running pod's manifest: attests the provider again (secrets are encrypted to its current key),
 * uploads changed images and secrets, asks for a new quote, changes the channel's rate when the price changed,
 * and sends the signed `update` (persistent volumes are kept).
 */
export async function updatePod(o: UpdateOptions): Promise<UpdateResult> {
  const timings: UpdateResult["timings"] = {};
  const step = stepper(o.onProgress, timings);
  const ctx = o.clients.context;
  const conn: PodConnection = podConnection(o.node, o.record, o.account);
  const attestation = await step(
    "attest",
    `attesting ${o.record.provider} (policy: ${o.policy.source})`,
    () =>
      verifyProvider({
        node: o.node,
        multiaddrs: o.record.multiaddrs ?? [],
        policy: o.policy.policy,
        policySource: o.policy.source,
        ...releaseCheckOption(ctx, o.record.network ?? "this network"),
      }),
    (r) => `attested: ${r.evidence.tee} evidence${r.release ? `, release ${r.release.release.version}` : ""}`,
  );
  const pod = await step(
    "upload",
    "pushing local images and secrets",
    async () => uploadSecrets((await pushLocalImages(o.pod, o)).pod, attestation, o),
    () => "uploaded",
  );
  const key = { publisher: o.account.address, provider: o.record.provider, podId: o.record.podId };
  const ch = await getChannel(ctx, key);
  if (!ch.exists || ch.finalized || ch.closeAt !== 0n)
    throw new PublisherError("CHANNEL_CLOSED", `the channel of pod ${o.record.podId} is closing or closed`);
  const token = await tokenInfo(o.clients.publicClient, ch.token);
  const quote: CheckedQuote = await step(
    "quote",
    "asking for a signed quote",
    () =>
      requestQuote(conn, {
        pod,
        podId: o.record.podId,
        publisher: o.account.address,
        payments: ctx.addresses.payments,
      }),
    (q) => `price ${formatRate(q.quote.ratePerSecond, token)}`,
  );
  const rateChanged = quote.quote.ratePerSecond !== ch.ratePerSecond;
  // The provider serves only while the channel pays at least the running spec's price: a higher price is paid
  // before the update, a lower one after it (the provider accepts an update the channel overpays).
  const rateUp = quote.quote.ratePerSecond > ch.ratePerSecond;
  const changeRateStep = () =>
    step(
      "channel",
      `changing the channel's rate from ${formatRate(ch.ratePerSecond, token)} to ${formatRate(quote.quote.ratePerSecond, token)}`,
      () => changePodRate(ctx, quote, o.record.podId),
      () => "rate changed",
    );
  const changedAt = rateUp ? await changeRateStep() : undefined;
  const res = await step(
    "provision",
    "updating the pod",
    async () => {
      const deadline = Date.now() + (o.confirmationTimeoutMs ?? 60_000);
      // The provider reads the rate `confirmations` blocks below the head: asking earlier only races it.
      if (changedAt !== undefined && quote.terms.confirmations > 0)
        await waitForConfirmations(ctx.publicClient, changedAt, quote.terms.confirmations, deadline);
      // Should it still see the old rate (an older daemon that did not say), ask again until the deadline.
      const updateOnce = () =>
        callSignedUnary(
          o.node,
          conn.target,
          "update",
          UpdateRequestSchema,
          { podId: Buffer.from(o.record.podId.slice(2), "hex"), pod: podToWire(pod) },
          UpdateResponseSchema,
          { signer: o.account, chainId: conn.chainId, provider: conn.provider, podId: o.record.podId },
          { timeoutMs: 600_000 },
        );
      try {
        return rateUp ? await whileProviderLags("ratePerSecond", deadline, updateOnce) : await updateOnce();
      } catch (err) {
        throw providerError("update", err);
      }
    },
    () => "pod updated",
  );
  if (rateChanged && !rateUp) await changeRateStep();
  return {
    endpoints: endpointsFromWire(res.endpoints),
    ratePerSecond: quote.quote.ratePerSecond,
    rateChanged,
    timings,
  };
}

/** The quote's royalty list must be exactly the listings' terms the publisher read on chain. */
function checkQuotedRoyalties(quoted: readonly Royalty[], expected: readonly Royalty[]): void {
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
