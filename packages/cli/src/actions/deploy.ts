import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { BulkMode, IpfsNode } from "@trustedpods/ipfs";
import { createP2PNode, type P2PNode } from "@trustedpods/p2p";
import { formatDiagnostic, ManifestError, type Pod } from "@trustedpods/protocol";
import { loadManifest } from "@trustedpods/protocol/node";
import {
  connectNetwork,
  type DeployProgress,
  formatAmount,
  formatChainTime,
  formatDuration,
  formatRate,
  type NetworkClients,
  PublisherError,
  parseTokenAmount,
  type ResolvedNetwork,
  type SelectedPolicy,
} from "@trustedpods/publisher";
import { deploy, loadPolicyFor, PodStore, type ResolvedAccount, tpodHome } from "@trustedpods/publisher/node";
import { type Address, getAddress, isAddress, type LocalAccount } from "viem";
import { cleanUp, removeDirStep } from "../cleanup.js";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import { type DeployOpts, parseImageTransfer, type SessionFlags } from "../options/deploy.js";
import { type Io, printJson } from "../output.js";
import { isComposeFile, loadComposeProject } from "./manifest.js";
import { accountFromFlags, cliError, networkFromFlags } from "./network.js";

/** What every publisher pod command needs: the network, the signing account, chain clients and a libp2p node. */
export interface Session {
  network: ResolvedNetwork;
  account: ResolvedAccount & { account: LocalAccount };
  clients: NetworkClients;
  policy: SelectedPolicy;
  node: P2PNode;
  store: PodStore;
  close(): Promise<void>;
}

export async function openSession(flags: SessionFlags, o: { p2p?: boolean } = {}): Promise<Session> {
  const network = await networkFromFlags(flags);
  const account = (await accountFromFlags(network, flags)) as Session["account"];
  let policy: SelectedPolicy;
  try {
    policy = await loadPolicyFor(network, flags.policy);
  } catch (err) {
    throw new CliError(`cannot load the policy: ${(err as Error).message}`);
  }
  let clients: NetworkClients;
  try {
    clients = await connectNetwork(network, { account: account.account });
  } catch (err) {
    throw cliError(err);
  }
  const node = o.p2p === false ? (undefined as unknown as P2PNode) : await createP2PNode();
  return {
    network,
    account,
    clients,
    policy,
    node,
    store: PodStore.at(tpodHome()),
    close: () =>
      cleanUp(node ? [{ what: "stop the libp2p node", run: () => node.stop() }] : [], {
        warn: (m) => process.stderr.write(`warning: ${m}\n`),
      }),
  };
}

export function loadPod(path: string): Pod {
  try {
    return loadManifest(path);
  } catch (err) {
    if (err instanceof ManifestError)
      throw new CliError(err.diagnostics.map(formatDiagnostic).join("\n"), ExitCode.failure);
    throw err;
  }
}

/** Parses a decimal token amount exactly (bigint); a malformed one is a usage error. */
export function parseAmountFlag(text: string, decimals: number, flag: string): bigint {
  try {
    return parseTokenAmount(text, decimals);
  } catch (err) {
    throw new CliError(`${flag}: ${(err as Error).message}`, ExitCode.usage);
  }
}

export function checkAmountSyntax(text: string | undefined, flag: string): void {
  if (text !== undefined && !/^\d+(\.\d+)?$/.test(text.trim()))
    throw new CliError(
      `${flag} must be a decimal amount of tokens (e.g. 0.36), got "${text}"`,
      ExitCode.usage,
    );
}

/**
 * The IPFS node images and secrets go to: a temporary embedded node that dials the given peers (default: the
 * devnet's IPFS addresses), so the provider, connected to it, fetches by bitswap while the command runs.
 */
export async function openUploadNode(
  network: ResolvedNetwork,
  peers: string[] | undefined,
  bulk?: BulkMode[],
  warn: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`),
): Promise<{ node: IpfsNode; dir: string; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "tpod-deploy-ipfs-"));
  // The devnet provider pulls through its own IPFS node: connected to it, our node answers its bitswap wants.
  const list = peers?.length
    ? peers
    : [
        ...(network.devnet?.providers ?? []).flatMap((p) => p.ipfs ?? []),
        ...(network.devnet?.ipfs?.multiaddrs ?? []),
      ];
  const loopback = list.every((a) => /^\/(ip4\/127\.|ip6\/::1\/|dns4?\/localhost\/)/.test(a));
  try {
    // Loaded on use: Helia and libp2p are not needed by the other commands.
    const { createIpfsNode, keepConnected } = await import("@trustedpods/ipfs");
    const node = await createIpfsNode({
      dataDir: dir,
      listen: loopback ? ["/ip4/127.0.0.1/tcp/0"] : ["/ip4/0.0.0.0/tcp/0"],
      network: loopback ? "devnet" : "private",
      ...(bulk ? { bulk } : {}),
    });
    // A provider that is not connected to the upload node can never get the blocks by bitswap (bitswap asks only
    // connected peers, and a provider behind NAT or in a VM cannot dial back): dial with retries, and again
    // whenever the connection drops while the command runs. A peer still unreachable is a warning: the
    // provider may reach the blocks another way (the devnet's node).
    const kept = keepConnected(node, list, { warn });
    await kept.ready;
    return {
      node,
      dir,
      // Best effort and bounded: a node that will not stop, or a datastore still being written while it stops
      // (ENOTEMPTY), must neither hang the command nor hide its result.
      close: () =>
        cleanUp(
          [
            {
              what: "stop the upload IPFS node",
              run: () => {
                kept.stop();
                return node.stop();
              },
            },
            removeDirStep(dir),
          ],
          { warn },
        ),
    };
  } catch (err) {
    await cleanUp([removeDirStep(dir)], { warn });
    throw err;
  }
}

export function progressPrinter(io: Io): (e: DeployProgress) => void {
  return (e) => {
    if (e.message.startsWith("warning: ")) io.err(e.message);
    else if (e.phase === "start") io.err(`… ${e.message}`);
    else io.err(`✓ ${e.message} (${e.ms} ms)`);
  };
}

/** On --json, failures are a JSON document on stdout too, so scripts need not parse stderr. */
export function failJson(io: Io, json: boolean | undefined, err: unknown): unknown {
  if (json && err instanceof PublisherError)
    printJson(io, {
      error: { code: err.code, message: err.message, field: err.field ?? null, details: err.details ?? {} },
    });
  return cliError(err);
}

/**
 * On the devnet the provider counts one confirmation while anvil mines only on transactions: mine one empty block
 * after the channel transaction so the provider sees it at once (harmless on a dev chain; never done elsewhere).
 */
export function devnetMiner(s: Session, next: (e: DeployProgress) => void): (e: DeployProgress) => void {
  return (e) => {
    next(e);
    if (s.network.isDevnet && e.step === "channel" && e.phase === "done")
      s.clients.publicClient.request({ method: "evm_mine" as never, params: [] as never }).catch(() => {});
  };
}

/** `tpod deploy MANIFEST` */
export async function deployAction(
  { io }: CommandContext,
  manifest: string,
  opts: DeployOpts,
): Promise<void> {
  if (opts.provider !== undefined && !isAddress(opts.provider, { strict: false }))
    throw new CliError(
      `--provider must be an address (0x and 40 hex digits), got ${opts.provider}`,
      ExitCode.usage,
    );
  checkAmountSyntax(opts.funds, "--funds");
  const bulk = parseImageTransfer(opts.imageTransfer);
  if (opts.notice !== undefined && !/^\d{1,9}$/.test(opts.notice))
    throw new CliError(`--notice must be a whole number of seconds, got ${opts.notice}`, ExitCode.usage);
  const pod = isComposeFile(manifest) ? (await loadComposeProject(io, manifest)).pod! : loadPod(manifest);
  const s = await openSession(opts);
  const upload = await openUploadNode(s.network, opts.ipfsPeer, bulk, (m) => io.err(`warning: ${m}`)).catch(
    async (err: unknown) => {
      await s.close();
      throw err;
    },
  );
  try {
    const r = await deploy({
      pod,
      manifestPath: resolve(manifest),
      baseDir: dirname(resolve(manifest)),
      network: s.network,
      clients: s.clients,
      account: s.account.account,
      policy: s.policy,
      node: s.node,
      ipfs: upload.node,
      ...(opts.provider ? { provider: getAddress(opts.provider) as Address } : {}),
      ...(opts.funds === undefined ? {} : { funds: opts.funds }),
      ...(opts.notice ? { noticeSeconds: Number(opts.notice) } : {}),
      store: s.store,
      onProgress: devnetMiner(s, progressPrinter(io)),
    });
    if (opts.json)
      printJson(io, {
        podId: r.podId,
        provider: r.provider,
        channel: r.channel,
        endpoints: r.endpoints,
        // What the deposit and the wait before provisioning were planned with (amounts in base units).
        terms: {
          token: r.token.address,
          ratePerSecond: r.ratePerSecond.toString(),
          deposit: r.deposit.toString(),
          noticeSeconds: r.noticeSeconds,
          minNoticeSeconds: r.terms.minNoticeSeconds,
          minDepositSeconds: r.terms.minDepositSeconds,
          minDepositQuoted: r.terms.quoted,
          confirmations: r.terms.confirmations,
        },
        // How long the deposit keeps the pod running (chain time, seconds); null at rate 0.
        runway: {
          paidSeconds: r.paidSeconds?.toString() ?? null,
          runsOutAt: r.runsOutAt?.toString() ?? null,
          low: r.warnings.length > 0,
        },
        warnings: r.warnings,
      });
    else {
      io.out(`pod ${r.podId} (${pod.name}) on ${r.provider}`);
      io.out(
        `channel ${r.channel}: ${formatAmount(r.deposit, r.token)} at ${formatRate(r.ratePerSecond, r.token)}${runwayText(r)}`,
      );
      for (const u of r.endpoints.http) io.out(`http  ${u}`);
      for (const t of r.endpoints.tcp) io.out(`tcp   ${t.container}:${t.port} → ${t.address}`);
      for (const u of r.endpoints.udp) io.out(`udp   ${u.container}:${u.port} → ${u.address}`);
      for (const w of r.warnings) io.err(`warning: ${w}`);
    }
  } catch (err) {
    throw failJson(io, opts.json, err);
  } finally {
    await upload.close();
    await s.close();
  }
}

/** ", pays for 6 h 0 min (until 2026-11-22T07:00:00Z, chain time)": what the deposit buys, said at deploy. */
function runwayText(r: { paidSeconds?: bigint; runsOutAt?: bigint }): string {
  if (r.paidSeconds === undefined || r.runsOutAt === undefined) return "";
  return `, pays for ${formatDuration(r.paidSeconds)} (until ${formatChainTime(r.runsOutAt)}); \`tpod fund\` adds time`;
}
