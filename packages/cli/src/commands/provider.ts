import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { CliError, ExitCode } from "../errors.js";
import type { CommandContext } from "./index.js";

export function registerProvider(program: Command, { io }: CommandContext): void {
  const provider = program.command("provider").description("run a provider daemon");

  provider
    .command("init")
    .description("write a commented provider.yaml and create the account key (0600) if missing")
    .option("--config <file>", "config file to write", "provider.yaml")
    .option("--rpc-url <url>", "chain RPC URL")
    .option("--payments <address>", "Payments contract address")
    .option("--token <address>", "ERC-20 token prices are in")
    .option("--force", "overwrite an existing config file")
    .action(
      async (opts: {
        config: string;
        rpcUrl?: string;
        payments?: string;
        token?: string;
        force?: boolean;
      }) => {
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
      },
    );

  provider
    .command("serve")
    .description("run the provider daemon in the foreground until SIGINT/SIGTERM")
    .requiredOption("--config <file>", "provider config (tpod provider init writes one)")
    .option("--json", "print the ready line as JSON")
    .option(
      "--insecure-allow-all-payments",
      "TESTS ONLY: accept every pod without checking its payment channel",
    )
    .action(async (opts: { config: string; json?: boolean; insecureAllowAllPayments?: boolean }) => {
      const { AllowAllPaymentGate, ConfigError, Daemon, loadConfig } = await import("@trustedpods/provider");
      let config: ReturnType<typeof loadConfig>;
      try {
        config = loadConfig(opts.config);
      } catch (err) {
        if (err instanceof ConfigError)
          throw new CliError(`invalid config:\n${err.message}`, ExitCode.failure);
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
    });
}
