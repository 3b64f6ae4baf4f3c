import { dirname, resolve } from "node:path";
import { getChannel } from "@trustedpods/chain";
import {
  type CloseResult,
  channelRunway,
  closePod,
  deletePodOnProvider,
  findPod,
  formatAmount,
  formatDuration,
  fundPod,
  type PodConnection,
  type PodRecord,
  type PodStatus,
  podConnection,
  podLogs,
  podStatus,
  tokenInfo,
} from "@trustedpods/publisher";
import { updatePod } from "@trustedpods/publisher/node";
import { parseImageTransfer, type SessionFlags, type UploadFlags } from "../commands/deploy.js";
import type { CommandContext } from "../commands/index.js";
import { CliError, ExitCode } from "../errors.js";
import { printJson } from "../output.js";
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

/** A pod of the local record on this chain; a name or prefix means the open pod first, then a closed one. */
async function findRecord(s: Session, ref: string): Promise<PodRecord> {
  const pods = await s.store.list({ chainId: s.clients.chainId });
  try {
    return findPod(
      pods.filter((p) => !p.closedAt),
      ref,
    );
  } catch {
    try {
      return findPod(pods, ref);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
  }
}

function connect(s: Session, r: PodRecord): PodConnection {
  return podConnection(s.node, r, s.account.account);
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

function statusLines(st: PodStatus): string[] {
  const out = [`phase ${st.phase}${st.message ? `: ${st.message}` : ""}`];
  for (const c of st.containers)
    out.push(
      `  ${c.name}#${c.replica} ${c.state}${c.healthy ? " healthy" : ""} restarts ${c.restarts}${c.exitCode ? ` exit ${c.exitCode}` : ""}`,
    );
  for (const u of st.endpoints.http) out.push(`  http ${u}`);
  for (const t of st.endpoints.tcp) out.push(`  tcp  ${t.container}:${t.port} → ${t.address}`);
  const b = st.billing;
  if (b) {
    out.push(
      `  billing ${b.state}: deposit ${b.deposit}, claimed ${b.claimed}, accrued ${b.accrued}, ${b.remainingSeconds} s left at ${b.ratePerSecond}/s`,
    );
    for (const w of b.warnings as string[]) out.push(`  warning: ${w}`);
  }
  return out;
}

function closeJson(r: CloseResult): Record<string, unknown> {
  const { channel, ...rest } = r;
  return { ...rest, deposit: channel.deposit, claimed: channel.claimed };
}

/** `tpod pods` */
export async function podsList({ io }: CommandContext, opts: SessionFlags & { status: boolean }) {
  return withSession(io, opts, async (s) => {
    const pods = await s.store.list({ chainId: s.clients.chainId });
    const rows = [];
    for (const r of pods) {
      let phase = r.closedAt ? "closed" : "unknown";
      if (opts.status && !r.closedAt) {
        phase = await podStatus(connect(s, r), r.podId, { timeoutMs: 5000 })
          .then((st) => st.phase)
          .catch((e: Error) => `unreachable (${e.message.slice(0, 60)})`);
      }
      rows.push({
        podId: r.podId,
        name: r.name ?? null,
        provider: r.provider,
        phase,
        createdAt: r.createdAt,
        channel: r.channel,
      });
    }
    if (opts.json) printJson(io, rows);
    else if (rows.length === 0) io.out("no pods on this network");
    else
      for (const r of rows)
        io.out(`${r.podId.slice(0, 14)}  ${(r.name ?? "-").padEnd(16)} ${r.phase.padEnd(12)} ${r.provider}`);
  });
}

/** `tpod status POD` */
export async function podStatusAction({ io }: CommandContext, ref: string, opts: SessionFlags) {
  return withSession(io, opts, async (s) => {
    const r = await findRecord(s, ref);
    const st = await podStatus(connect(s, r), r.podId);
    if (opts.json) printJson(io, { ...st, name: r.name ?? null, provider: r.provider, channel: r.channel });
    else {
      io.out(`pod ${r.podId} (${r.name ?? "-"}) on ${r.provider}`);
      for (const l of statusLines(st)) io.out(l);
    }
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
    const r = await findRecord(s, ref);
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once("SIGINT", stop);
    try {
      for await (const l of podLogs(connect(s, r), r.podId, {
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
    const r = await findRecord(s, ref);
    const upload = await openUploadNode(s.network, opts.ipfsPeer, bulk);
    try {
      const res = await updatePod({
        record: r,
        pod,
        clients: s.clients,
        account: s.account.account,
        policy: s.policy,
        node: s.node,
        ipfs: upload.node,
        baseDir: dirname(resolve(manifest)),
        onProgress: devnetMiner(s, progressPrinter(io)),
      });
      await s.store.update(r.podId, r.chainId, { manifest: resolve(manifest) });
      if (opts.json) printJson(io, { podId: r.podId, ...res, timings: undefined });
      else {
        io.out(`pod ${r.podId} updated${res.rateChanged ? `; new rate ${res.ratePerSecond}/s` : ""}`);
        for (const u of res.endpoints.http) io.out(`http  ${u}`);
        for (const t of res.endpoints.tcp) io.out(`tcp   ${t.container}:${t.port} → ${t.address}`);
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
      const r = await findRecord(s, ref);
      const key = { publisher: s.account.address, provider: r.provider, podId: r.podId };
      const before = await getChannel(s.clients.context, key);
      const token = await tokenInfo(s.clients.publicClient, before.token);
      const value = parseAmountFlag(amount, token.decimals, "AMOUNT");
      await fundPod(s.clients.context, r, s.account.address, value);
      // What the publisher wants to know next: how long the pod now runs on what is left.
      const { channel: ch, remaining, secondsLeft } = await channelRunway(s.clients.context, key);
      if (opts.json)
        printJson(io, {
          podId: r.podId,
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

/** `tpod close POD` */
export async function podClose({ io }: CommandContext, ref: string, opts: SessionFlags) {
  return withSession(
    io,
    opts,
    async (s) => {
      const r = await findRecord(s, ref);
      const res = await closePod(s.clients.context, r, s.account.address);
      const token = await tokenInfo(s.clients.publicClient, res.token);
      if (res.state === "refunded" || res.state === "settled")
        await s.store.update(r.podId, r.chainId, { closedAt: new Date().toISOString() });
      if (opts.json) printJson(io, { podId: r.podId, ...closeJson(res) });
      else if (res.state === "closing")
        io.out(
          `close requested: the provider can claim until chain time ${res.closeAt} (${new Date(Number(res.closeAt) * 1000).toISOString()}); run \`tpod close ${ref}\` again after that to get back about ${formatAmount(res.refundable, token)}`,
        );
      else if (res.state === "waiting")
        io.out(
          `still in the notice period: ${res.secondsLeft} s left (until chain time ${res.closeAt}); run \`tpod close\` again then`,
        );
      else if (res.state === "refunded")
        io.out(`channel settled: ${formatAmount(res.refunded, token)} returned to you`);
      else io.out("channel already settled: nothing left to refund");
    },
    { p2p: false },
  );
}

/** `tpod delete POD` */
export async function podDelete({ io }: CommandContext, ref: string, opts: SessionFlags) {
  return withSession(io, opts, async (s) => {
    const r = await findRecord(s, ref);
    await deletePodOnProvider(connect(s, r), r.podId);
    const res = await closePod(s.clients.context, r, s.account.address);
    if (res.state === "refunded" || res.state === "settled")
      await s.store.update(r.podId, r.chainId, { closedAt: new Date().toISOString() });
    if (opts.json) printJson(io, { podId: r.podId, deleted: true, ...closeJson(res) });
    else {
      io.out(`pod ${r.podId} deleted on ${r.provider}`);
      if (res.state === "closing" || res.state === "waiting")
        io.out(`channel closing: run \`tpod close ${ref}\` after chain time ${res.closeAt} for the refund`);
      else if (res.state === "refunded")
        io.out(`the provider closed the channel at its final claim: ${res.refunded} base units refunded`);
    }
  });
}
