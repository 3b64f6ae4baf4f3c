/**
 * What a publisher does with a running pod, shared by the CLI and the web app (no Node built-ins here): the
 * deposit arithmetic and its actionable errors, checking a provider's signed quote, the signed `status`,
 * `logs` and `delete` calls, and the channel operations (top up, close and refund) on chain.
 */
import type { Libp2p } from "@libp2p/interface";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import {
  accrued,
  type ChainContext,
  type ChannelKey,
  type ChannelState,
  changeRate,
  channelId,
  getChannel,
  minRestartTopUp,
  paymentsDomain,
  type Quote,
  type Royalty,
  recoverQuoteSigner,
  refund,
  requestClose,
  royaltiesHash,
  specHash,
  topUp,
} from "@trustedpods/chain";
import {
  type CallOptions,
  callSignedServerStream,
  callSignedUnary,
  callUnary,
  errorCodeName,
  RpcError,
} from "@trustedpods/p2p/browser";
import {
  billedUnits,
  ContainerState,
  DeleteRequestSchema,
  DeleteResponseSchema,
  type Endpoint,
  formatTokenAmount,
  type LogEntry,
  LogEntrySchema,
  LogStream,
  LogsRequestSchema,
  type Pod,
  PodPhase,
  podToWire,
  QuoteRequestSchema,
  QuoteResponseSchema,
  StatusRequestSchema,
  StatusResponseSchema,
  type Quote as WireQuote,
} from "@trustedpods/protocol";
import { type Account, type Address, bytesToHex, getAddress, type Hex, hexToBytes, isAddress } from "viem";
import { openedChannels, type Settlement, settlements } from "./channel-events.js";
import { PublisherError } from "./errors.js";
import { formatAmount, formatDuration, formatRate } from "./format.js";
import { shortMessage } from "./network.js";
import type { PodRecord } from "./pods.js";

/**
 * The provider daemon's default `billing.minDepositSeconds`: what a deposit is assumed to need to pay for when
 * the quote does not say (daemons older than Quote.min_deposit_seconds send 0).
 */
export const DEFAULT_MIN_DEPOSIT_SECONDS = 3600;
/** Bounds on the terms a quote may carry (the daemon's own config limits): anything above is malformed. */
const MAX_MIN_DEPOSIT_SECONDS = 10 * 365 * 86400;
const MAX_CONFIRMATIONS = 1000;
/**
 * Extra seconds a default or suggested deposit adds to the provider's minimum: the deposit starts paying when
 * the channel opens, and the provider checks what is left a few blocks later, so a deposit of exactly the
 * minimum would be refused. Named in DEPOSIT_TOO_SMALL's message so the suggested amount is explained.
 */
export const DEPOSIT_MARGIN_SECONDS = 60;
/**
 * What a default deposit pays for (when the provider's minimum is shorter): several hours, so that a first pod
 * does not stop, and lose its volumes, minutes after deploy. Whatever is not used comes back on close.
 */
export const DEFAULT_RUN_SECONDS = 6 * 3600;
/** Less paid time left than this and deploy, status and pods warn that the pod will stop soon. */
export const LOW_RUNWAY_SECONDS = 3600;

/** Endpoints in the shape `tpod deploy --json` prints. */
export interface PodEndpoints {
  http: string[];
  tcp: { container: string; port: number; address: string }[];
  udp: { container: string; port: number; address: string }[];
}

export function endpointsFromWire(list: readonly Endpoint[]): PodEndpoints {
  const out: PodEndpoints = { http: [], tcp: [], udp: [] };
  for (const e of list) {
    if (e.target.case === "httpUrl" && e.target.value) out.http.push(e.target.value);
    else if (e.target.case === "tcpAddress")
      out.tcp.push({ container: e.container, port: e.containerPort, address: e.target.value });
    else if (e.target.case === "udpAddress")
      out.udp.push({ container: e.container, port: e.containerPort, address: e.target.value });
  }
  return out;
}

/**
 * Rounds an amount up to `digits` significant decimal digits of the token, so a suggested deposit reads like
 * "0.37" rather than "0.366000000000000001".
 */
export function roundUpAmount(amount: bigint, digits = 2): bigint {
  if (amount <= 0n) return 0n;
  const len = amount.toString().length;
  if (len <= digits) return amount;
  const unit = 10n ** BigInt(len - digits);
  return ((amount + unit - 1n) / unit) * unit;
}

export interface DepositCheck {
  ratePerSecond: bigint;
  /** The funds offered, in token base units; undefined: the default (DEFAULT_RUN_SECONDS, at least the minimum plus the margin). */
  funds?: bigint;
  /** The provider's minimum paid run time (the quote's terms); default DEFAULT_MIN_DEPOSIT_SECONDS. */
  minDepositSeconds?: number;
  decimals: number;
  symbol?: string;
  /** How the caller sets the funds, named in the error's fix (default the CLI's `--funds`). */
  fundsFlag?: string;
}

/** Whole seconds a deposit pays for at a rate (undefined at rate 0: it never runs out). */
export function paidSeconds(deposit: bigint, ratePerSecond: bigint): bigint | undefined {
  return ratePerSecond > 0n ? deposit / ratePerSecond : undefined;
}

/**
 * The deposit to open the channel with: the funds given, or by default what pays for DEFAULT_RUN_SECONDS (at
 * least the minimum run time plus the margin), rounded up to two significant digits. Funds that do not pay for
 * the minimum plus the margin fail with DEPOSIT_TOO_SMALL naming the minimum, the margin and why, and the
 * amount that would do (rounded up).
 */
export function depositFor(c: DepositCheck): bigint {
  const min = BigInt(c.minDepositSeconds ?? DEFAULT_MIN_DEPOSIT_SECONDS);
  const margin = BigInt(DEPOSIT_MARGIN_SECONDS);
  const needSeconds = min + margin;
  const need = c.ratePerSecond * needSeconds;
  if (c.funds === undefined) {
    const run = needSeconds > BigInt(DEFAULT_RUN_SECONDS) ? needSeconds : BigInt(DEFAULT_RUN_SECONDS);
    return roundUpAmount(c.ratePerSecond * run);
  }
  if (c.funds < need) {
    const unit = { symbol: c.symbol ?? "", decimals: c.decimals };
    const offered = c.ratePerSecond === 0n ? 0n : c.funds / c.ratePerSecond;
    const minAmount = c.ratePerSecond * min;
    const suggested = roundUpAmount(need);
    const text = formatTokenAmount(suggested, c.decimals);
    const minText = formatTokenAmount(minAmount, c.decimals);
    const flag = c.fundsFlag ?? "--funds";
    throw new PublisherError(
      "DEPOSIT_TOO_SMALL",
      `deposit too small: the provider wants ${min} s paid in advance (${formatAmount(minAmount, unit)}), and deploy adds a ${margin} s margin because the deposit starts paying when the channel opens, a few blocks before the provider checks it: ${needSeconds} s at ${formatRate(c.ratePerSecond, unit)} is ${formatAmount(need, unit)}. You offered ${offered} s (${formatAmount(c.funds, unit)}); use ${flag} ${text} (${needSeconds} s, rounded up) or more. Without ${flag}, deploy pays for ${formatDuration(DEFAULT_RUN_SECONDS)}.`,
      {
        field: "funds",
        details: {
          minSeconds: min.toString(),
          marginSeconds: margin.toString(),
          needSeconds: needSeconds.toString(),
          minAmount: minAmount.toString(),
          minAmountFormatted: minText,
          needAmount: need.toString(),
          offeredSeconds: offered.toString(),
          suggested: suggested.toString(),
          suggestedFormatted: text,
          ratePerSecond: c.ratePerSecond.toString(),
        },
      },
    );
  }
  return c.funds;
}

/** The provider's billing terms a deploy plans with, from its quote. */
export interface QuotedTerms {
  /** Shortest paid run time a new channel's deposit must cover (the fallback when the quote said 0). */
  minDepositSeconds: number;
  /** Blocks on top of the channel's block the provider waits for before it accepts the channel. */
  confirmations: number;
  /** Shortest close notice the provider accepts (signed in the quote). */
  minNoticeSeconds: number;
  /** False when the quote carried no minimum (an older daemon) and `minDepositSeconds` is the fallback. */
  quoted: boolean;
}

/**
 * The terms of a checked wire quote. A provider that sends no minimum (0, daemons before the field) gets
 * `fallbackMinDepositSeconds` (default DEFAULT_MIN_DEPOSIT_SECONDS). Values beyond the daemon's own config
 * bounds are a malformed quote.
 */
export function quotedTerms(
  w: Pick<WireQuote, "minDepositSeconds" | "confirmations" | "minNoticeSeconds">,
  fallbackMinDepositSeconds = DEFAULT_MIN_DEPOSIT_SECONDS,
): QuotedTerms {
  if (w.minDepositSeconds > BigInt(MAX_MIN_DEPOSIT_SECONDS))
    throw new PublisherError(
      "QUOTE_INVALID",
      `the provider's quote asks for a minimum run time of ${w.minDepositSeconds} s (more than 10 years)`,
      { field: "minDepositSeconds" },
    );
  if (w.confirmations > MAX_CONFIRMATIONS)
    throw new PublisherError(
      "QUOTE_INVALID",
      `the provider's quote asks for ${w.confirmations} confirmations (at most ${MAX_CONFIRMATIONS})`,
      { field: "confirmations" },
    );
  const quoted = w.minDepositSeconds > 0n;
  return {
    minDepositSeconds: quoted ? Number(w.minDepositSeconds) : fallbackMinDepositSeconds,
    confirmations: w.confirmations,
    minNoticeSeconds: Number(w.minNoticeSeconds),
    quoted,
  };
}

/** One line for progress output: the terms and what the default deposit pays for. */
export function describeTerms(t: QuotedTerms, ratePerSecond: bigint, format: (a: bigint) => string): string {
  const min = `minimum paid time ${t.minDepositSeconds} s (${format(ratePerSecond * BigInt(t.minDepositSeconds))})${t.quoted ? "" : " assumed: the provider's quote does not say"}`;
  return `${min}, notice ≥ ${t.minNoticeSeconds} s, ${t.confirmations} confirmation${t.confirmations === 1 ? "" : "s"}`;
}

/**
 * Waits until the chain holds `confirmations` blocks on top of `block` (the provider reads the channel at
 * head − confirmations), or until `deadlineMs` (epoch ms): then returns false and the provider's own refusal,
 * which names the confirmations, decides. Polls the head: a devnet mines only on transactions.
 */
export async function waitForConfirmations(
  client: { getBlockNumber(args?: { cacheTime?: number }): Promise<bigint> },
  block: bigint,
  confirmations: number,
  deadlineMs: number,
): Promise<boolean> {
  const target = block + BigInt(confirmations);
  for (let attempt = 0; ; attempt++) {
    if ((await client.getBlockNumber({ cacheTime: 0 })) >= target) return true;
    if (Date.now() > deadlineMs) return false;
    await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
  }
}

/** Where and as whom a publisher talks to one provider about one pod. */
export interface PodConnection {
  node: Libp2p;
  /** The provider's multiaddrs (each ending in /p2p/PEER). */
  target: Multiaddr[];
  provider: Address;
  chainId: number;
  signer: Account & { signTypedData: NonNullable<Account["signTypedData"]> };
}

export function podConnection(
  node: Libp2p,
  record: Pick<PodRecord, "provider" | "multiaddrs" | "chainId">,
  signer: PodConnection["signer"],
  multiaddrs?: string[],
): PodConnection {
  const addrs = multiaddrs ?? record.multiaddrs ?? [];
  if (addrs.length === 0)
    throw new PublisherError("PROVIDER_UNREACHABLE", `no address known for provider ${record.provider}`);
  return {
    node,
    target: addrs.map((a) => multiaddr(a)),
    provider: record.provider,
    chainId: record.chainId,
    signer,
  };
}

/** A provider refusal as the SDK's error, keeping the wire code and field. */
export function providerError(op: string, err: unknown): unknown {
  if (err instanceof PublisherError) return err;
  if (err instanceof RpcError) {
    const code = errorCodeName(err.code);
    return new PublisherError("PROVIDER_REFUSED", `${op}: the provider refused (${code}): ${err.message}`, {
      cause: err,
      ...(err.details.field ? { field: err.details.field } : {}),
      details: { providerCode: code, ...err.details },
    });
  }
  return new PublisherError("PROVIDER_UNREACHABLE", `${op}: ${shortMessage(err)}`, { cause: err });
}

async function signed<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw providerError(op, err);
  }
}

const idBytes = (podId: Hex) => hexToBytes(podId);

/** A provider's quote in the contract's shape, with what it was bound to and its unsigned billing terms. */
export interface CheckedQuote {
  quote: Quote;
  signature: Hex;
  wire: WireQuote;
  terms: QuotedTerms;
  /** The royalty list the quote signed: the channel must be opened with exactly this list. */
  royalties: Royalty[];
}

/** Listings a pod runs, ascending (the order of the royalty list a quote signs). */
export function podListings(pod: Pod): bigint[] {
  const ids = new Set<bigint>();
  for (const c of pod.containers) if (c.image.kind === "listing") ids.add(c.image.listingId);
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Asks the provider for a signed quote bound to this publisher and pod, and checks it: signed by the provider
 * in our Payments contract's domain, for our chain, publisher and pod id, echoing our nonce, not expired, pricing
 * exactly our pod's resources (spec hash), with one royalty entry per listing the pod runs and nothing else.
 */
export async function requestQuote(
  conn: PodConnection,
  o: {
    pod: Pod;
    podId: Hex;
    publisher: Address;
    payments: Address;
    options?: CallOptions;
    /** The minimum paid run time to assume when the quote carries none (older daemons). */
    fallbackMinDepositSeconds?: number;
  },
): Promise<CheckedQuote> {
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  const res = await signed("quote", () =>
    callUnary(
      conn.node,
      conn.target,
      "quote",
      QuoteRequestSchema,
      { pod: podToWire(o.pod), nonce, publisher: hexToBytes(o.publisher), podId: idBytes(o.podId) },
      QuoteResponseSchema,
      o.options ?? {},
    ),
  );
  const w = res.quote;
  const bad = (m: string): never => {
    throw new PublisherError("QUOTE_INVALID", `the provider's quote ${m}`);
  };
  if (!w) return bad("is missing");
  if (!isAddress(w.provider) || getAddress(w.provider) !== getAddress(conn.provider))
    bad(`names provider ${w.provider}, not ${conn.provider}`);
  if (Number(w.chainId) !== conn.chainId) bad(`is for chain ${w.chainId}, not ${conn.chainId}`);
  if (!isAddress(w.paymentsContract) || getAddress(w.paymentsContract) !== getAddress(o.payments))
    bad(`is for Payments contract ${w.paymentsContract}, not ${o.payments}`);
  if (bytesToHex(w.publisher).toLowerCase() !== o.publisher.toLowerCase())
    bad("is bound to another publisher");
  if (bytesToHex(w.podId) !== o.podId.toLowerCase()) bad("is bound to another pod id");
  if (bytesToHex(w.nonce) !== bytesToHex(nonce)) bad("does not echo our nonce (a replayed quote)");
  if (!/^\d{1,78}$/.test(w.pricePerSecond)) bad(`has a malformed price "${w.pricePerSecond}"`);
  if (!w.pricing || !isAddress(w.pricing.token)) bad("has no pricing token");
  if (w.expiresAt <= BigInt(Math.floor(Date.now() / 1000))) bad("has already expired");
  if (w.signature.length !== 65) bad("signature is not 65 bytes");
  const spec = specHash(billedUnits(o.pod));
  if (bytesToHex(w.specHash) !== spec) bad("prices other resources than this pod's (spec hash differs)");
  const royalties: Royalty[] = w.royalties.map((r) => {
    if (!isAddress(r.recipient)) bad(`has a royalty to "${r.recipient}", not an address`);
    return { recipient: getAddress(r.recipient), bps: r.bps, listingId: r.listingId };
  });
  const runs = podListings(o.pod);
  // An entry for a listing the pod does not run would make us pay that listing's fixed fee for nothing.
  if (royalties.map((r) => r.listingId).join(",") !== runs.join(","))
    bad(
      `asks for royalties to listings [${royalties.map((r) => r.listingId).join(", ")}], but the pod runs [${runs.join(", ")}]`,
    );
  if (bytesToHex(w.royaltiesHash) !== royaltiesHash(royalties))
    bad("royalties hash does not match its royalties");
  const quote: Quote = {
    provider: getAddress(w.provider),
    publisher: getAddress(o.publisher),
    podId: o.podId.toLowerCase() as Hex,
    token: getAddress(w.pricing!.token),
    ratePerSecond: BigInt(w.pricePerSecond),
    minNoticeSeconds: Number(w.minNoticeSeconds),
    expiry: w.expiresAt,
    specHash: spec,
    royaltiesHash: royaltiesHash(royalties),
  };
  const signature = bytesToHex(w.signature);
  const signer = await recoverQuoteSigner(paymentsDomain(conn.chainId, o.payments), quote, signature).catch(
    () => bad("signature does not recover"),
  );
  if (getAddress(signer) !== quote.provider) bad(`is signed by ${signer}, not by the provider`);
  return { quote, signature, wire: w, terms: quotedTerms(w, o.fallbackMinDepositSeconds), royalties };
}

/** A pod's state as the provider reports it, in plain JSON-friendly values. */
export interface PodStatus {
  podId: Hex;
  phase: string;
  message: string;
  replicas: number;
  containers: {
    name: string;
    replica: number;
    state: string;
    healthy: boolean;
    restarts: number;
    exitCode: number;
    startedAt: string | null;
    message: string;
  }[];
  endpoints: PodEndpoints;
  billing: PodBilling | null;
}

/** The provider's billing view of a pod; amounts in token base units (decimal strings), times in chain seconds. */
export interface PodBilling {
  /** checked, running, stopped_funds, closed, deleted, removed or settled. */
  state: string;
  token: string;
  ratePerSecond: string;
  deposit: string;
  claimed: string;
  accrued: string;
  remainingSeconds: number;
  /** When the deposit runs out; 0: it does not (closing first, or zero rate). */
  runsOutAt: number;
  closeAt: number;
  noticeSeconds: number;
  /** When a stopped pod and its volumes are removed if nothing changes; 0: not scheduled. */
  removeAt: number;
  /** The chain time the figures were read at. */
  chainTime: number;
  warnings: string[];
  cpuSeconds: number;
  memoryBytes: number;
}

const phaseName = (p: PodPhase) => (PodPhase[p] ?? "UNSPECIFIED").toLowerCase().replace(/_/g, "-");

export async function podStatus(
  conn: PodConnection,
  podId: Hex,
  options: CallOptions = {},
): Promise<PodStatus> {
  const r = await signed("status", () =>
    callSignedUnary(
      conn.node,
      conn.target,
      "status",
      StatusRequestSchema,
      { podId: idBytes(podId) },
      StatusResponseSchema,
      { signer: conn.signer, chainId: conn.chainId, provider: conn.provider, podId },
      { timeoutMs: 15_000, ...options },
    ),
  );
  const b = r.billing;
  return {
    podId,
    phase: phaseName(r.phase),
    message: r.message,
    replicas: r.replicas,
    containers: r.containers.map((c) => ({
      name: c.name,
      replica: c.replica,
      state: (ContainerState[c.state] ?? "UNSPECIFIED").toLowerCase(),
      healthy: c.healthy,
      restarts: c.restartCount,
      exitCode: c.exitCode,
      startedAt: c.startedAtMs ? new Date(Number(c.startedAtMs)).toISOString() : null,
      message: c.message,
    })),
    endpoints: endpointsFromWire(r.endpoints),
    billing: b
      ? {
          state: b.state,
          token: b.token,
          ratePerSecond: b.ratePerSecond,
          deposit: b.deposit,
          claimed: b.claimed,
          accrued: b.accrued,
          remainingSeconds: Number(b.remainingSeconds),
          runsOutAt: Number(b.runsOutAt),
          closeAt: Number(b.closeAt),
          noticeSeconds: Number(b.noticeSeconds),
          removeAt: Number(b.removeAt),
          chainTime: Number(b.chainTime),
          warnings: [...b.warnings],
          cpuSeconds: b.cpuSeconds,
          memoryBytes: Number(b.memoryBytes),
        }
      : null,
  };
}

export interface LogLine {
  container: string;
  replica: number;
  time: string;
  stream: "stdout" | "stderr";
  line: string;
}

function logLine(e: LogEntry): LogLine {
  return {
    container: e.container,
    replica: e.replica,
    time: new Date(Number(e.timestampMs)).toISOString(),
    stream: e.stream === LogStream.STDERR ? "stderr" : "stdout",
    line: e.line,
  };
}

/** The pod's logs (a signed server stream); with `follow` it runs until `signal` aborts. */
export async function* podLogs(
  conn: PodConnection,
  podId: Hex,
  o: { follow?: boolean; container?: string; tail?: number; sinceMs?: number; signal?: AbortSignal } = {},
): AsyncGenerator<LogLine> {
  try {
    for await (const e of callSignedServerStream(
      conn.node,
      conn.target,
      "logs",
      LogsRequestSchema,
      {
        podId: idBytes(podId),
        container: o.container ?? "",
        follow: o.follow ?? false,
        tail: o.tail ?? 0,
        sinceMs: BigInt(o.sinceMs ?? 0),
      },
      LogEntrySchema,
      { signer: conn.signer, chainId: conn.chainId, provider: conn.provider, podId },
      o.signal ? { signal: o.signal } : {},
    ))
      yield logLine(e);
  } catch (err) {
    if (o.signal?.aborted) return;
    throw providerError("logs", err);
  }
}

/** Asks the provider to remove the pod (containers, volumes, secrets, images, routes). */
export async function deletePodOnProvider(conn: PodConnection, podId: Hex): Promise<void> {
  await signed("delete", () =>
    callSignedUnary(
      conn.node,
      conn.target,
      "delete",
      DeleteRequestSchema,
      { podId: idBytes(podId) },
      DeleteResponseSchema,
      { signer: conn.signer, chainId: conn.chainId, provider: conn.provider, podId },
      { timeoutMs: 120_000 },
    ),
  );
}

async function onChain<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PublisherError) throw err;
    throw new PublisherError("CHAIN_FAILED", `${op}: ${shortMessage(err)}`, { cause: err });
  }
}

/** What a channel has left to run on at the chain's head. */
export interface ChannelRunway {
  channel: ChannelState;
  /** What accrued so far, at most the deposit. */
  spent: bigint;
  /** deposit − spent. */
  remaining: bigint;
  /** Whole seconds `remaining` pays for at the channel's rate (absent at rate 0). */
  secondsLeft?: bigint;
}

export async function channelRunway(ctx: ChainContext, key: ChannelKey): Promise<ChannelRunway> {
  const [channel, earned] = await onChain("read the channel", () =>
    Promise.all([getChannel(ctx, key), accrued(ctx, key)]),
  );
  // biome-ignore lint/complexity/useMathMinMax: bigint
  const spent = earned > channel.deposit ? channel.deposit : earned;
  const remaining = channel.deposit - spent;
  return {
    channel,
    spent,
    remaining,
    ...(channel.ratePerSecond > 0n ? { secondsLeft: remaining / channel.ratePerSecond } : {}),
  };
}

/** Adds `amount` (token base units) to the pod's channel deposit, approving the token first when needed. */
export async function fundPod(
  ctx: ChainContext,
  record: Pick<PodRecord, "provider" | "podId">,
  publisher: Address,
  amount: bigint,
): Promise<ChannelState> {
  if (amount <= 0n)
    throw new PublisherError("CHAIN_FAILED", "the amount must be above zero", { field: "amount" });
  const key = { publisher, provider: record.provider, podId: record.podId };
  const ch = await onChain("read the channel", () => getChannel(ctx, key));
  if (!ch.exists || ch.finalized || ch.closeAt !== 0n)
    throw new PublisherError(
      "CHANNEL_CLOSED",
      `the channel of pod ${record.podId} is ${ch.finalized ? "settled" : ch.exists ? "closing" : "not open"}: a top-up cannot keep it running`,
    );
  // A top-up that restarts a run-out pod must pay at least the notice period (the contract's TopUpTooSmall).
  const minimum = minRestartTopUp(ch);
  if (amount < minimum && (await onChain("read the channel", () => accrued(ctx, key))) >= ch.deposit)
    throw new PublisherError(
      "TOP_UP_TOO_SMALL",
      `the deposit ran out: a top-up that restarts the pod must pay at least the notice period (${ch.noticeSeconds} s at ${ch.ratePerSecond} base units/s = ${minimum}); ${amount} is too little`,
      { field: "amount", details: { minimum: minimum.toString() } },
    );
  await onChain("top up", () => topUp(ctx, record.provider, record.podId, amount));
  return getChannel(ctx, key);
}

/**
 * Switches the pod's channel to the rate of a new quote (after an update that changes the price); returns the
 * block the change was mined in (the provider sees it `q.terms.confirmations` blocks later).
 */
export async function changePodRate(ctx: ChainContext, q: CheckedQuote, podId: Hex): Promise<bigint> {
  const sent = await onChain("change the rate", () => changeRate(ctx, q.quote, q.signature, podId));
  return sent.receipt.blockNumber;
}

export type CloseResult =
  /** requestClose was sent now: accrual stops at closeAt; the refund is possible from then on. */
  (
    | { state: "closing"; closeAt: bigint; refundable: bigint; channel: ChannelState }
    /** Already closing and the notice has not passed yet. */
    | { state: "waiting"; closeAt: bigint; secondsLeft: bigint; channel: ChannelState }
    /** The notice passed: the provider was settled and the rest returned to the publisher now. */
    | { state: "refunded"; refunded: bigint; settlement: Settlement }
    /** Settled before (by an earlier close): nothing left to do. */
    | { state: "settled"; settlement: Settlement }
  ) & {
    /** The channel's token (a settled channel's own state no longer names it). */
    token: Address;
  };

/**
 * A settled channel's figures from its events: the contract deletes a channel's state when it settles, so only
 * ChannelOpened (the token) and ChannelFinalized (claimed, refunded) still say what happened.
 */
async function settledChannel(
  ctx: ChainContext,
  key: ChannelKey,
): Promise<{ settlement: Settlement; token: Address }> {
  const id = channelId(key).toLowerCase() as Hex;
  const [opened, settled] = await onChain("read the channel's events", () =>
    Promise.all([
      openedChannels(ctx, { publisher: key.publisher, provider: key.provider }),
      settlements(ctx, [id]),
    ]),
  );
  const settlement = settled.get(id);
  const o = opened.find((c) => c.channelId === id);
  if (!settlement || !o)
    throw new PublisherError("CHAIN_FAILED", `channel ${id} is settled, but its events cannot be found`);
  return { settlement, token: o.token };
}

/**
 * Closing is two steps on chain: `requestClose` starts the notice period (the provider may still claim what
 * accrues until `closeAt`), and after it `refund` settles the provider and returns the rest. Each call does the
 * next step that is possible now; on a settled channel it reports the settlement.
 */
export async function closePod(
  ctx: ChainContext,
  record: Pick<PodRecord, "provider" | "podId">,
  publisher: Address,
): Promise<CloseResult> {
  const key = { publisher, provider: record.provider, podId: record.podId };
  const ch = await onChain("read the channel", () => getChannel(ctx, key));
  if (ch.finalized) return { state: "settled", ...(await settledChannel(ctx, key)) };
  if (!ch.exists) throw new PublisherError("CHANNEL_CLOSED", `pod ${record.podId} has no channel on chain`);
  if (ch.closeAt === 0n) {
    try {
      await requestClose(ctx, record.provider, record.podId);
    } catch (err) {
      // The provider may close the channel itself at the same moment (its final claim after a delete): then
      // our request reverts and the channel is closing anyway.
      const now = await getChannel(ctx, key).catch(() => ch);
      if (now.closeAt === 0n && !now.finalized)
        throw new PublisherError("CHAIN_FAILED", `request close: ${shortMessage(err)}`, { cause: err });
      return closePod(ctx, record, publisher);
    }
    const after = await getChannel(ctx, key);
    const accruedAtClose = after.accruedBefore + after.ratePerSecond * (after.closeAt - after.since);
    let owed = accruedAtClose;
    if (owed > after.deposit) owed = after.deposit;
    return {
      state: "closing",
      closeAt: after.closeAt,
      refundable: after.deposit - owed,
      channel: after,
      token: ch.token,
    };
  }
  const block = await ctx.publicClient.getBlock();
  if (block.timestamp < ch.closeAt)
    return {
      state: "waiting",
      closeAt: ch.closeAt,
      secondsLeft: ch.closeAt - block.timestamp,
      channel: ch,
      token: ch.token,
    };
  const sent = await onChain("refund", () => refund(ctx, record.provider, record.podId));
  const { settlement } = await settledChannel(ctx, key);
  return { state: "refunded", refunded: sent.result, settlement, token: ch.token };
}

/** True when the provider answered that it has no such pod (it removed it already, or never had it). */
export function isNotFoundOnProvider(err: unknown): boolean {
  return (
    err instanceof PublisherError &&
    err.code === "PROVIDER_REFUSED" &&
    err.details?.providerCode === "NOT_FOUND"
  );
}
