import { dirname, resolve } from "node:path";
import { getChannel } from "@trustedpods/chain";
import {
  ambiguous,
  type CloseResult,
  channelRunway,
  closePod,
  deletePodOnProvider,
  formatAmount,
  formatChainTime,
  formatDuration,
  formatRate,
  fundPod,
  getOffer,
  isNotFoundOnProvider,
  LOW_RUNWAY_SECONDS,
  matchPods,
  type OpenedChannel,
  openedChannels,
  PerProviderLimit,
  type PodBilling,
  type PodConnection,
  type PodRecord,
  type PodStatus,
  PublisherError,
  podConnection,
  podLogs,
  podStatus,
  type Settlement,
  settlements,
  type TokenInfo,
  tokenInfo,
} from "@trustedpods/publisher";
import { updatePod } from "@trustedpods/publisher/node";
import type { Address, Hex } from "viem";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import { parseImageTransfer, type SessionFlags, type UploadFlags } from "../options/deploy.js";
import { formatTable, printJson, shortHex } from "../output.js";
import {
  checkAmountSyntax,
  devnetMiner,
  failJson,
  loadPod,
  openSession,
  openUploadNode,
  parseAmountFlag,
  progressPrinter,
  type Session,
} from "./deploy.js";

/**
 * A pod of this publisher: from the local record ($TPOD_HOME/pods.json), or found on chain through the
 * ChannelOpened events of the publisher's key (deployed from the web app, or from another machine).
 */
interface PodRef {
  podId: Hex;
  provider: Address;
  chainId: number;
  channel: Hex;
  /** Who opened the channel (the key that signs for the pod). */
  publisher: Address;
  name?: string;
  /** The provider's addresses at deploy time; absent for pods found on chain (the Registry has them). */
  multiaddrs?: string[];
  /** The local record, when this machine deployed the pod. */
  record?: PodRecord;
}

function fromRecord(r: PodRecord, me: Address): PodRef {
  return {
    podId: r.podId,
    provider: r.provider,
    chainId: r.chainId,
    channel: r.channel,
    publisher: r.publisher ?? me,
    ...(r.name ? { name: r.name } : {}),
    ...(r.multiaddrs ? { multiaddrs: r.multiaddrs } : {}),
    record: r,
  };
}

function fromChain(o: OpenedChannel, chainId: number): PodRef {
  return { podId: o.podId, provider: o.provider, chainId, channel: o.channelId, publisher: o.publisher };
}

/** Channels on chain a reference names: a full pod or channel id, or a unique prefix of either (6+ hex digits). */
function matchChannels(channels: OpenedChannel[], ref: string): OpenedChannel[] {
  const r = ref.toLowerCase();
  const exact = channels.filter((c) => c.podId === r || c.channelId === r);
  if (exact.length > 0 || !/^0x[0-9a-f]{6,63}$/.test(r)) return exact;
  return channels.filter((c) => c.podId.startsWith(r) || c.channelId.startsWith(r));
}

/**
 * The pod a reference names: in the local record first (an open pod before a closed one), then among the
 * channels the publisher's key opened on chain, so commands work for pods deployed elsewhere too.
 */
async function resolvePod(s: Session, ref: string): Promise<PodRef> {
  const me = s.account.address;
  const pods = await s.store.list({ chainId: s.clients.chainId });
  for (const set of [pods.filter((p) => !p.closedAt), pods]) {
    const m = matchPods(set, ref);
    if (m.length === 1) return fromRecord(m[0]!, me);
    if (m.length > 1)
      throw ambiguous(
        ref,
        m.map((p) => p.podId),
      );
  }
  const found = matchChannels(await openedChannels(s.clients.context, { publisher: me }), ref);
  if (found.length === 1) return fromChain(found[0]!, s.clients.chainId);
  if (found.length > 1)
    throw ambiguous(
      ref,
      found.map((c) => c.podId),
    );
  throw new PublisherError(
    "POD_RECORD",
    `no pod ${ref} in the local record, nor among the channels ${me} opened on chain (a pod id, channel id, unique prefix of either, or a name from the local record)`,
  );
}

/** A connection to the pod's provider: at its recorded addresses, or those the Registry lists now. */
async function connect(s: Session, p: PodRef): Promise<PodConnection> {
  const addrs = p.multiaddrs?.length
    ? p.multiaddrs
    : [...(await getOffer(s.clients.context, p.provider)).multiaddrs];
  return podConnection(s.node, p, s.account.account, addrs);
}

/** Runs a command body with a session, turning SDK errors into CLI errors (JSON on stdout with --json). */
async function withSession<T>(
  io: CommandContext["io"],
  flags: SessionFlags,
  fn: (s: Session) => Promise<T>,
  o: { p2p?: boolean } = {},
): Promise<T> {
  const s = await openSession(flags, o);
  try {
    return await fn(s);
  } catch (err) {
    throw failJson(io, flags.json, err);
  } finally {
    await s.close();
  }
}

/** `tpod fund REF AMOUNT`, the fix every low-funds warning names. */
const fundHint = (ref: string) => `\`tpod fund ${ref} AMOUNT\` adds time`;

/** What the provider's billing says, for people: amounts in tokens, chain times as dates, a warning when low. */
function billingLines(b: PodBilling, token: TokenInfo, ref: string): string[] {
  const amt = (v: string) => formatAmount(BigInt(v), token);
  const out = [
    `  billing ${b.state}: deposit ${amt(b.deposit)}, claimed ${amt(b.claimed)}, accrued ${amt(b.accrued)}, at ${formatRate(BigInt(b.ratePerSecond), token)}`,
  ];
  if (b.state === "running" && b.runsOutAt > 0) {
    const low = b.remainingSeconds < LOW_RUNWAY_SECONDS;
    out.push(
      `  ${low ? "warning: " : ""}the deposit runs out in ${formatDuration(b.remainingSeconds)} (at ${formatChainTime(b.runsOutAt)})${low ? `: then the provider stops the pod, and deletes it with its volumes after the ${b.noticeSeconds} s notice unless topped up; ${fundHint(ref)}` : ""}`,
    );
  } else if (b.state === "stopped_funds") {
    out.push(
      `  warning: the deposit ran out${b.runsOutAt > 0 ? ` at ${formatChainTime(b.runsOutAt)}` : ""}: the pod is stopped${b.removeAt > 0 ? `, and it and its volumes are deleted at ${formatChainTime(b.removeAt)}` : ""} unless topped up; ${fundHint(ref)}`,
    );
  }
  for (const w of b.warnings) out.push(`  provider: ${w}`);
  return out;
}

function statusLines(st: PodStatus): string[] {
  const out = [`phase ${st.phase}${st.message ? `: ${st.message}` : ""}`];
  for (const c of st.containers)
    out.push(
      `  ${c.name}#${c.replica} ${c.state}${c.healthy ? " healthy" : ""} restarts ${c.restarts}${c.exitCode ? ` exit ${c.exitCode}` : ""}`,
    );
  for (const u of st.endpoints.http) out.push(`  http ${u}`);
  for (const t of st.endpoints.tcp) out.push(`  tcp  ${t.container}:${t.port} → ${t.address}`);
  for (const u of st.endpoints.udp) out.push(`  udp  ${u.container}:${u.port} → ${u.address}`);
  return out;
}

/** A close result for --json: base units, and a settled channel's real figures from its events. */
function closeJson(r: CloseResult): Record<string, unknown> {
  switch (r.state) {
    case "closing":
      return {
        state: r.state,
        token: r.token,
        closeAt: r.closeAt,
        refundable: r.refundable,
        deposit: r.channel.deposit,
        claimed: r.channel.claimed,
      };
    case "waiting":
      return {
        state: r.state,
        token: r.token,
        closeAt: r.closeAt,
        secondsLeft: r.secondsLeft,
        deposit: r.channel.deposit,
        claimed: r.channel.claimed,
      };
    default:
      return {
        state: r.state,
        token: r.token,
        refunded: r.settlement.refunded,
        deposit: r.settlement.deposit,
        claimed: r.settlement.claimed,
      };
  }
}

/** What a close did or found, for people. */
function closeLine(r: CloseResult, token: TokenInfo, ref: string): string {
  const amt = (v: bigint) => formatAmount(v, token);
  switch (r.state) {
    case "closing":
      return `close requested: the provider can claim until ${formatChainTime(r.closeAt)} (chain time ${r.closeAt}); run \`tpod close ${ref}\` again after that to get back about ${amt(r.refundable)}`;
    case "waiting":
      return `still in the notice period: ${formatDuration(r.secondsLeft)} left (until ${formatChainTime(r.closeAt)}); run \`tpod close ${ref}\` again then`;
    case "refunded":
      return `channel settled: ${amt(r.settlement.refunded)} returned to you; the provider got ${amt(r.settlement.claimed)} of the ${amt(r.settlement.deposit)} deposit`;
    default:
      return `channel already settled: ${amt(r.settlement.refunded)} was returned to you; the provider got ${amt(r.settlement.claimed)} of the ${amt(r.settlement.deposit)} deposit`;
  }
}

async function markClosed(s: Session, p: PodRef, r: CloseResult): Promise<void> {
  if (p.record && (r.state === "refunded" || r.state === "settled") && !p.record.closedAt)
    await s.store.update(p.podId, p.chainId, { closedAt: new Date().toISOString() });
}

interface PodRow {
  podId: Hex;
  name: string | null;
  provider: Address;
  channel: Hex;
  /** The provider's phase (with status), "gone" when it no longer has the pod, "unreachable", or "-". */
  phase: string;
  channelState: "open" | "closing" | "settled" | "none";
  token: Address | null;
  deposit: bigint;
  remaining: bigint;
  secondsLeft: bigint | null;
  runsOutAt: bigint | null;
  lowRunway: boolean;
  /** In the local record (deployed from this machine), or found on chain only. */
  recorded: boolean;
  createdAt: string | null;
  error?: string;
}

async function podRow(
  s: Session,
  p: PodRef,
  settled: Settlement | undefined,
  now: bigint,
  o: { status: boolean; limit: PerProviderLimit; token?: Address },
): Promise<PodRow> {
  const base = {
    podId: p.podId,
    name: p.name ?? null,
    provider: p.provider,
    channel: p.channel,
    recorded: Boolean(p.record),
    createdAt: p.record?.createdAt ?? null,
  };
  let money: Pick<
    PodRow,
    "channelState" | "token" | "deposit" | "remaining" | "secondsLeft" | "runsOutAt" | "lowRunway"
  >;
  if (settled)
    money = {
      channelState: "settled",
      token: o.token ?? null,
      deposit: settled.deposit,
      remaining: 0n,
      secondsLeft: null,
      runsOutAt: null,
      lowRunway: false,
    };
  else {
    const rw = await channelRunway(s.clients.context, {
      publisher: p.publisher,
      provider: p.provider,
      podId: p.podId,
    });
    const ch = rw.channel;
    const state = !ch.exists ? (ch.finalized ? "settled" : "none") : ch.closeAt !== 0n ? "closing" : "open";
    const left = state === "open" ? (rw.secondsLeft ?? null) : null;
    money = {
      channelState: state,
      token: ch.exists ? ch.token : (o.token ?? null),
      deposit: ch.deposit,
      remaining: rw.remaining,
      secondsLeft: left,
      runsOutAt: left === null ? null : now + left,
      lowRunway: left !== null && left < BigInt(LOW_RUNWAY_SECONDS),
    };
  }
  let phase = "-";
  let error: string | undefined;
  if (o.status && money.channelState !== "settled" && money.channelState !== "none") {
    try {
      phase = await o.limit.run(
        p.provider,
        async () => (await podStatus(await connect(s, p), p.podId, { timeoutMs: 5000 })).phase,
      );
    } catch (err) {
      phase = isNotFoundOnProvider(err) ? "gone" : "unreachable";
      error = (err as Error).message;
    }
  }
  return { ...base, phase, ...money, ...(error ? { error } : {}) };
}

/** `tpod pods` */
export async function podsList({ io }: CommandContext, opts: SessionFlags & { status: boolean }) {
  return withSession(io, opts, async (s) => {
    const me = s.account.address;
    const ctx = s.clients.context;
    const [local, onChain, head] = await Promise.all([
      s.store.list({ chainId: s.clients.chainId }),
      openedChannels(ctx, { publisher: me }),
      ctx.publicClient.getBlock(),
    ]);
    // One row per channel: the chain's list of this key's pods, with what the local record adds (names).
    const refs = new Map<Hex, PodRef>();
    const tokens = new Map<Hex, Address>();
    for (const o of onChain) {
      refs.set(o.channelId, fromChain(o, s.clients.chainId));
      tokens.set(o.channelId, o.token);
    }
    for (const r of local) refs.set(r.channel, fromRecord(r, me));
    const settled = await settlements(ctx, [...refs.keys()]);
    const limit = new PerProviderLimit();
    const rows = await Promise.all(
      [...refs.values()].map((p) => {
        const token = tokens.get(p.channel);
        return podRow(s, p, settled.get(p.channel), head.timestamp, {
          status: opts.status,
          limit,
          ...(token ? { token } : {}),
        });
      }),
    );
    if (opts.json) return printJson(io, rows);
    if (rows.length === 0) return io.out("no pods on this network");
    const table = formatTable(
      ["POD", "NAME", "STATUS", "CHANNEL", "LEFT", "PROVIDER"],
      rows.map((r) => [
        r.podId.slice(0, 10),
        r.name ?? "-",
        r.phase,
        r.channelState,
        r.secondsLeft === null ? "-" : `${formatDuration(r.secondsLeft)}${r.lowRunway ? " !" : ""}`,
        shortHex(r.provider),
      ]),
      [10, 24, 12, 8, 14, 11],
    );
    for (const line of table) io.out(line);
    if (rows.some((r) => r.lowRunway))
      io.out(
        `! runs out within ${formatDuration(LOW_RUNWAY_SECONDS)}: the provider then stops the pod, and deletes it with its volumes after the notice period; ${fundHint("POD")}`,
      );
    if (rows.some((r) => !r.recorded))
      io.out("pods without a name were found on chain (deployed from the web app or another machine)");
  });
}

/** `tpod status POD` */
export async function podStatusAction({ io }: CommandContext, ref: string, opts: SessionFlags) {
  return withSession(io, opts, async (s) => {
    const p = await resolvePod(s, ref);
    const st = await podStatus(await connect(s, p), p.podId);
    const b = st.billing;
    if (opts.json)
      return printJson(io, {
        ...st,
        name: p.name ?? null,
        provider: p.provider,
        channel: p.channel,
        lowRunway: b !== null && b.state === "running" && b.remainingSeconds < LOW_RUNWAY_SECONDS,
      });
    io.out(`pod ${p.podId} (${p.name ?? "-"}) on ${p.provider}`);
    for (const l of statusLines(st)) io.out(l);
    if (b)
      for (const l of billingLines(b, await tokenInfo(s.clients.publicClient, b.token as Address), ref))
        io.out(l);
  });
}

/** `tpod logs POD` */
export async function podLogsAction(
  { io }: CommandContext,
  ref: string,
  opts: SessionFlags & { follow?: boolean; container?: string; tail?: string },
) {
  if (opts.tail !== undefined && !/^\d{1,6}$/.test(opts.tail))
    throw new CliError(`--tail must be a number of lines, got ${opts.tail}`, ExitCode.usage);
  return withSession(io, opts, async (s) => {
    const p = await resolvePod(s, ref);
    const conn = await connect(s, p);
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once("SIGINT", stop);
    try {
      for await (const l of podLogs(conn, p.podId, {
        follow: opts.follow ?? false,
        ...(opts.container ? { container: opts.container } : {}),
        ...(opts.tail ? { tail: Number(opts.tail) } : {}),
        signal: ac.signal,
      })) {
        if (opts.json) io.out(JSON.stringify(l));
        else io.out(`${l.time} ${l.container}${l.stream === "stderr" ? " (stderr)" : ""} ${l.line}`);
      }
    } finally {
      process.off("SIGINT", stop);
    }
  });
}

/** `tpod update POD MANIFEST` */
export async function podUpdate(
  { io }: CommandContext,
  ref: string,
  manifest: string,
  opts: SessionFlags & UploadFlags,
) {
  const bulk = parseImageTransfer(opts.imageTransfer);
  const pod = loadPod(manifest);
  return withSession(io, opts, async (s) => {
    const p = await resolvePod(s, ref);
    const multiaddrs = (await connect(s, p)).target.map(String);
    const upload = await openUploadNode(s.network, opts.ipfsPeer, bulk, (m) => io.err(`warning: ${m}`));
    try {
      const res = await updatePod({
        record: { ...p, multiaddrs },
        pod,
        clients: s.clients,
        account: s.account.account,
        policy: s.policy,
        node: s.node,
        ipfs: upload.node,
        baseDir: dirname(resolve(manifest)),
        onProgress: devnetMiner(s, progressPrinter(io)),
      });
      if (p.record) await s.store.update(p.podId, p.chainId, { manifest: resolve(manifest) });
      if (opts.json) printJson(io, { podId: p.podId, ...res, timings: undefined });
      else {
        const token = await tokenInfo(s.clients.publicClient, (await getChannel(s.clients.context, p)).token);
        io.out(
          `pod ${p.podId} updated${res.rateChanged ? `; new rate ${formatRate(res.ratePerSecond, token)}` : ""}`,
        );
        for (const u of res.endpoints.http) io.out(`http  ${u}`);
        for (const t of res.endpoints.tcp) io.out(`tcp   ${t.container}:${t.port} → ${t.address}`);
        for (const u of res.endpoints.udp) io.out(`udp   ${u.container}:${u.port} → ${u.address}`);
      }
    } finally {
      await upload.close();
    }
  });
}

/** `tpod fund POD AMOUNT` */
export async function podFund({ io }: CommandContext, ref: string, amount: string, opts: SessionFlags) {
  checkAmountSyntax(amount, "AMOUNT");
  return withSession(
    io,
    opts,
    async (s) => {
      const p = await resolvePod(s, ref);
      const key = { publisher: p.publisher, provider: p.provider, podId: p.podId };
      const before = await getChannel(s.clients.context, key);
      const token = await tokenInfo(s.clients.publicClient, before.token);
      const value = parseAmountFlag(amount, token.decimals, "AMOUNT");
      await fundPod(s.clients.context, p, s.account.address, value);
      // What the publisher wants to know next: how long the pod now runs on what is left.
      const { channel: ch, remaining, secondsLeft } = await channelRunway(s.clients.context, key);
      if (opts.json)
        printJson(io, {
          podId: p.podId,
          added: value,
          deposit: ch.deposit,
          claimed: ch.claimed,
          remaining,
          ...(secondsLeft !== undefined ? { secondsLeft } : {}),
        });
      else
        io.out(
          `added ${formatAmount(value, token)}: deposit ${formatAmount(ch.deposit, token)}, claimed ${formatAmount(ch.claimed, token)}` +
            (secondsLeft !== undefined
              ? `; ${formatAmount(remaining, token)} left pays for ${formatDuration(secondsLeft)} more`
              : ""),
        );
    },
    { p2p: false },
  );
}

/** `tpod close POD`: from the local record or from the chain alone (pod id or channel id). */
export async function podClose({ io }: CommandContext, ref: string, opts: SessionFlags) {
  return withSession(
    io,
    opts,
    async (s) => {
      const p = await resolvePod(s, ref);
      const res = await closePod(s.clients.context, p, s.account.address);
      await markClosed(s, p, res);
      if (opts.json) printJson(io, { podId: p.podId, ...closeJson(res) });
      else io.out(closeLine(res, await tokenInfo(s.clients.publicClient, res.token), ref));
    },
    { p2p: false },
  );
}

/**
 * `tpod delete POD`: removes the pod on its provider, then closes the channel. Idempotent: a provider that no
 * longer has the pod (it removed it already) is no reason to leave the channel, and the deposit, open.
 */
export async function podDelete({ io }: CommandContext, ref: string, opts: SessionFlags) {
  return withSession(io, opts, async (s) => {
    const p = await resolvePod(s, ref);
    let alreadyGone = false;
    try {
      await deletePodOnProvider(await connect(s, p), p.podId);
    } catch (err) {
      if (!(err instanceof PublisherError)) throw err;
      if (!isNotFoundOnProvider(err))
        throw new PublisherError(
          err.code,
          `${err.message} (nothing was changed: the channel is still open; \`tpod close ${ref}\` closes it without the provider)`,
          {
            cause: err,
            ...(err.field ? { field: err.field } : {}),
            ...(err.details ? { details: err.details } : {}),
          },
        );
      alreadyGone = true;
    }
    const res = await closePod(s.clients.context, p, s.account.address);
    await markClosed(s, p, res);
    if (opts.json) return printJson(io, { podId: p.podId, deleted: true, alreadyGone, ...closeJson(res) });
    io.out(
      alreadyGone
        ? `pod ${p.podId} was already gone from ${p.provider} (the provider removed it)`
        : `pod ${p.podId} deleted on ${p.provider}`,
    );
    io.out(closeLine(res, await tokenInfo(s.clients.publicClient, res.token), ref));
  });
}
