import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { getAddress } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { RegistryOpts } from "../options/provider.js";
import { printJson } from "../output.js";

type ProviderModule = typeof import("@trustedpods/provider");

/** Loads the provider module and a config, turning config problems into messages a user can act on. */
async function loadProviderConfig(file: string): Promise<{
  m: ProviderModule;
  config: ReturnType<ProviderModule["loadConfig"]>;
}> {
  const m = await import("@trustedpods/provider");
  try {
    return { m, config: m.loadConfig(file) };
  } catch (err) {
    if (err instanceof m.ConfigError) throw new CliError(`invalid config:\n${err.message}`, ExitCode.failure);
    throw err;
  }
}

/** Operator and key errors carry their own advice; anything else is a plain failure. */
function operatorFailure(m: ProviderModule, err: unknown): never {
  if (err instanceof CliError) throw err;
  if (err instanceof m.OperatorError || err instanceof m.KeyError)
    throw new CliError(err.message, ExitCode.failure);
  throw err;
}

/** `tpod provider pods` */
export async function providerPods(
  { io }: CommandContext,
  opts: { config: string; all?: boolean; json?: boolean },
) {
  const { m, config } = await loadProviderConfig(opts.config);
  let pods: ReturnType<ProviderModule["listOperatorPods"]>;
  try {
    pods = m.listOperatorPods(config, { all: opts.all ?? false });
  } catch (err) {
    operatorFailure(m, err);
  }
  if (opts.json) return printJson(io, pods);
  if (pods.length === 0) return io.out("no pods");
  for (const p of pods) {
    const eps = p.endpoints.map(
      (e) => e.url ?? e.tcpAddress ?? e.udpAddress ?? `${e.container}:${e.containerPort}`,
    );
    io.out(`${p.podId}  ${p.phase.padEnd(8)}  publisher ${p.publisher}  since ${p.createdAt}`);
    if (eps.length) io.out(`    ${eps.join("  ")}`);
    if (p.message) io.out(`    ${p.message}`);
  }
}

/**
 * `tpod provider earnings`: from the chain's events, so settled channels count too and the totals add up
 * (earned = withdrawn + withdrawable, less what the account earned in other roles).
 */
export async function providerEarnings(
  { io }: CommandContext,
  opts: { config: string; withdraw?: boolean; json?: boolean },
) {
  const { m, config } = await loadProviderConfig(opts.config);
  const { providerEarnings: earningsOf, formatAmount } = await import("@trustedpods/publisher");
  try {
    const chain = await m.operatorChain(config);
    const e = await earningsOf(chain.ctx, chain.account.address, getAddress(config.pricing.token)).catch(
      (err: unknown) => {
        throw new CliError(`cannot read earnings: ${(err as Error).message}`, ExitCode.failure);
      },
    );
    const withdrawn = opts.withdraw ? await m.withdrawEarnings(config, chain) : undefined;
    if (opts.json) return printJson(io, { ...e, ...(withdrawn ? { withdrawn } : {}) });
    const u = (v: bigint) => formatAmount(v, config.pricing);
    io.out(`provider ${e.provider}`);
    io.out(
      `earned ${u(e.earned)} in total (your share of ${u(e.claimedTotal)} claimed over ${e.channels.length} channel(s)); withdrawn ${u(e.withdrawn)}; withdrawable ${u(e.withdrawable)}`,
    );
    for (const c of e.channels)
      io.out(
        c.state === "settled"
          ? `  pod ${c.podId}  settled: claimed ${u(c.claimed)} of ${u(c.deposit)}, ${u(c.refunded ?? 0n)} refunded`
          : `  pod ${c.podId}  ${c.state}: claimed ${u(c.claimed)} of ${u(c.deposit)}; claimable now ${u(c.claimable)}`,
      );
    if (withdrawn)
      io.out(
        withdrawn.amount === 0n
          ? "nothing to withdraw"
          : `withdrew ${u(withdrawn.amount)} (tx ${withdrawn.txHash})`,
      );
  } catch (err) {
    operatorFailure(m, err);
  }
}

/** `tpod provider init` */
export async function providerInit(
  { io }: CommandContext,
  opts: {
    config: string;
    rpcUrl?: string;
    payments?: string;
    token?: string;
    force?: boolean;
  },
) {
  // Loaded on use: the daemon pulls in node:sqlite, libp2p and Helia, which other commands do not need.
  const { defaultConfigText, writePrivateFileExclusive } = await import("@trustedpods/provider");
  if (existsSync(opts.config) && !opts.force)
    throw new CliError(`${opts.config} exists (use --force to overwrite)`, ExitCode.failure);
  const tmp = `${opts.config}.tmp-${process.pid}`;
  await writeFile(
    tmp,
    defaultConfigText({
      ...(opts.rpcUrl ? { rpcUrl: opts.rpcUrl } : {}),
      ...(opts.payments ? { payments: opts.payments } : {}),
      ...(opts.token ? { token: opts.token } : {}),
    }),
  );
  await rename(tmp, opts.config);
  const keyFile = path.join(path.dirname(path.resolve(opts.config)), "data", "account.key");
  if (!existsSync(keyFile)) {
    await writePrivateFileExclusive(keyFile, `${generatePrivateKey()}\n`);
  }
  const account = privateKeyToAccount((await readFile(keyFile, "utf8")).trim() as `0x${string}`);
  io.err(
    `wrote ${opts.config}; account key ${keyFile} (address ${account.address}): fund it and register it`,
  );
  io.out(account.address);
}

/** `tpod provider serve` */
export async function providerServe(
  { io }: CommandContext,
  opts: { config: string; json?: boolean; insecureAllowAllPayments?: boolean },
) {
  const { AllowAllPaymentGate, ConfigError, Daemon, loadConfig } = await import("@trustedpods/provider");
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(opts.config);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`invalid config:\n${err.message}`, ExitCode.failure);
    throw err;
  }
  if (opts.insecureAllowAllPayments)
    io.err("WARNING: --insecure-allow-all-payments: every pod is accepted without a payment channel");
  // Without the flag the daemon builds its billing module: channels are checked on chain, usage claimed.
  const daemon = await Daemon.start(config, {
    ...(opts.insecureAllowAllPayments ? { gate: new AllowAllPaymentGate() } : {}),
    ...(process.env.TPOD_PROVIDER_TEST_HOLD_PROVISION_MS
      ? { holdProvisionMs: Number(process.env.TPOD_PROVIDER_TEST_HOLD_PROVISION_MS) }
      : {}),
  });
  const info = daemon.info();
  if (opts.json) io.out(JSON.stringify({ ready: true, ...info }));
  else
    io.out(
      `ready: peer ${info.peerId} on ${info.multiaddrs.join(" ")}; metrics ${info.metricsUrl}; encryption key ${info.encryptionKeyId}`,
    );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  io.err("stopping");
  await daemon.stop();
}

/** `tpod provider register|update|deregister` */
export async function providerRegistry(
  { io }: CommandContext,
  action: "register" | "update" | "deregister",
  opts: RegistryOpts,
) {
  if (opts.release !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(opts.release))
    throw new CliError(
      `--release must be a release id (0x and 64 hex digits), got "${opts.release}"`,
      ExitCode.usage,
    );
  const { m, config } = await loadProviderConfig(opts.config);
  try {
    const chain = await m.operatorChain(config);
    const entry =
      action === "deregister"
        ? undefined
        : await m.registrationFromConfig(config, {
            ...(opts.name ? { name: opts.name } : {}),
            ...(opts.region ? { regions: opts.region } : {}),
            ...(opts.teeType ? { teeTypes: opts.teeType } : {}),
            ...(opts.multiaddr ? { multiaddrs: opts.multiaddr } : {}),
            ...(opts.metadataCid ? { metadataCid: opts.metadataCid } : {}),
            ...(opts.release ? { release: opts.release as `0x${string}` } : {}),
          });
    io.err(`${action}: provider ${chain.account.address} on ${config.chain.rpcUrl}...`);
    const r = await m.applyRegistration(chain, action, entry);
    if (opts.json) printJson(io, r);
    else {
      io.out(`${action} done: ${r.provider} (tx ${r.txHash})`);
      if (r.entry) {
        io.out(
          `  name ${r.entry.name}; tee ${r.entry.teeTypes.join(",")}; notice ${r.entry.minNoticeSeconds} s`,
        );
        io.out(`  multiaddrs ${r.entry.multiaddrs.join(" ")}`);
        io.out(`  release ${r.entry.release ?? "none declared"}`);
        for (const p of r.entry.prices)
          io.out(
            `  resource ${["cpu", "memory", "storage", "gpu"][p.resource]}: ${p.pricePerUnitSecond} per unit-second`,
          );
      }
    }
  } catch (err) {
    operatorFailure(m, err);
  }
}
