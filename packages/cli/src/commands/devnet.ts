import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import type { Command } from "commander";
import { CliError, ExitCode } from "../errors.js";
import type { CommandContext } from "./index.js";

/** The one JSON line `tpod devnet chain` prints: everything a client needs to use the dev chain. */
export interface DevChainInfo {
  rpcUrl: string;
  chainId: number;
  contracts: { registry: string; payments: string; marketplace: string; token: string };
  accounts: { address: string; privateKey: string; label: string }[];
}

export function devChainInfo(chain: DevChain): DevChainInfo {
  return {
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    contracts: { ...chain.contracts },
    accounts: chain.accounts.map((a) => ({ address: a.address, privateKey: a.privateKey, label: a.label })),
  };
}

function parsePort(value: string | undefined, flag = "--port"): number {
  if (value === undefined) return 0;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CliError(`${flag} must be an integer from 0 to 65535, got "${value}"`, ExitCode.usage);
  }
  return port;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

/** Resolves on the first SIGINT/SIGTERM (a second one exits at once), or with a reason when a part dies. */
function untilSignal(failed: Promise<string>): Promise<string | undefined> {
  return new Promise((resolve) => {
    let signalled = false;
    const onSignal = () => {
      if (signalled) process.exit(130);
      signalled = true;
      resolve(undefined);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    void failed.then((reason) => resolve(reason));
  });
}

/** Resolves on SIGINT or SIGTERM, or when the node process exits on its own (then with its description). */
function untilStopped(chain: DevChain): Promise<string | undefined> {
  return new Promise((resolve) => {
    const done = (reason?: string) => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolve(reason);
    };
    const onSignal = () => done();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    chain.anvil.process.once("exit", (code) => done(`anvil exited unexpectedly (code ${code})`));
  });
}

export function registerDevnet(program: Command, { io }: CommandContext): void {
  const devnet = program.command("devnet").description("run a local development network on this machine");
  devnet
    .command("up")
    .description(
      "start everything on this machine in one foreground process: the dev chain with the contracts, an IPFS node, a provider daemon (Podman, insecure-dev attester, billing, HTTP gateway) registered in the Registry, and a funded publisher account; other tpod commands find it through $TPOD_HOME/devnet.json; Ctrl-C stops it and removes its pods",
    )
    .option("--json", "print only the JSON ready line on stdout (default: the line plus a summary on stderr)")
    .option("--gateway-port <port>", "HTTP gateway port on 127.0.0.1 (0 = any free port)", "8080")
    .option("--chain-port <port>", "chain RPC port on 127.0.0.1 (0 = any free port)", "8545")
    .option(
      "--dir <dir>",
      "working directory for the provider and IPFS data (default $TPOD_HOME/devnet; emptied at start)",
    )
    .option(
      "--engine-owner <name>",
      "Podman owner label of the devnet's pods (for several devnets on one Podman)",
      "devnet",
    )
    .option("--log-level <level>", `provider daemon log level on stderr (${LOG_LEVELS.join(", ")})`, "warn")
    .action(
      async (opts: {
        json?: boolean;
        gatewayPort: string;
        chainPort: string;
        dir?: string;
        engineOwner: string;
        logLevel: string;
      }) => {
        const gatewayPort = parsePort(opts.gatewayPort, "--gateway-port");
        const chainPort = parsePort(opts.chainPort, "--chain-port");
        if (!(LOG_LEVELS as readonly string[]).includes(opts.logLevel))
          throw new CliError(`--log-level must be one of ${LOG_LEVELS.join(", ")}`, ExitCode.usage);
        if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(opts.engineOwner))
          throw new CliError(
            "--engine-owner must be lowercase letters, digits and dashes (at most 31)",
            ExitCode.usage,
          );
        // Loaded on use: the devnet pulls in anvil, Helia, libp2p and node:sqlite.
        const { DevnetError, startDevnet } = await import("@trustedpods/devnet");
        const { tpodHome } = await import("@trustedpods/publisher/node");
        let net: Awaited<ReturnType<typeof startDevnet>>;
        try {
          net = await startDevnet({
            home: tpodHome(),
            gatewayPort,
            chainPort,
            engineOwner: opts.engineOwner,
            logLevel: opts.logLevel as LogLevel,
            ...(opts.dir ? { dir: opts.dir } : {}),
            progress: (m) => io.err(m),
          });
        } catch (err) {
          if (err instanceof DevnetError) throw new CliError(`cannot start the devnet: ${err.message}`);
          throw new CliError(`cannot start the devnet: ${(err as Error).message}`);
        }
        const info = net.info;
        io.out(JSON.stringify(info));
        if (!opts.json) {
          io.err(`devnet ready in ${(info.startupMs / 1000).toFixed(1)} s`);
          io.err(`  chain      ${info.rpcUrl} (chain id ${info.chainId})`);
          io.err(`  provider   ${info.provider.address}  peer ${info.provider.peerId}`);
          io.err(
            `  gateway    ${info.gateway.url}  (pods are http://NAME.${info.gateway.baseDomain}:${info.gateway.port}/)`,
          );
          io.err(`  publisher  ${info.publisher.address}  (PUBLIC TEST KEY: never use it on a real chain)`);
          io.err(`  state file ${info.stateFile}: tpod commands use this devnet without flags`);
          io.err("press Ctrl-C to stop (removes the devnet's pods and its state file)");
        }
        const problem = await untilSignal(net.failed);
        io.err("stopping the devnet...");
        await net.stop();
        if (problem) throw new CliError(problem);
        io.err("devnet stopped");
      },
    );
  devnet
    .command("chain")
    .description(
      "start a local chain (anvil) with Registry, Payments, Marketplace and a test token deployed and funded test accounts; runs in the foreground until Ctrl-C",
    )
    .option("--port <port>", "RPC port on 127.0.0.1 (default: a free port)")
    .option(
      "--json",
      "print only the JSON line on stdout (the default output is the same line plus a summary on stderr)",
    )
    .action(async (opts: { port?: string; json?: boolean }) => {
      const port = parsePort(opts.port);
      io.err("starting the dev chain (anvil) and deploying the contracts...");
      let chain: DevChain;
      try {
        chain = await startDevChain({ port });
      } catch (err) {
        throw new CliError(`cannot start the dev chain: ${(err as Error).message}`);
      }
      const info = devChainInfo(chain);
      io.out(JSON.stringify(info));
      if (!opts.json) {
        io.err(`dev chain ready at ${info.rpcUrl} (chain id ${info.chainId})`);
        io.err(`  registry ${info.contracts.registry}  payments ${info.contracts.payments}`);
        io.err(`  marketplace ${info.contracts.marketplace}  token ${info.contracts.token}`);
        io.err(
          `  ${info.accounts.length} funded accounts with PUBLIC TEST KEYS (never use them on a real chain)`,
        );
        io.err("press Ctrl-C to stop");
      }
      const problem = await untilStopped(chain);
      await chain.stop();
      if (problem) throw new CliError(problem);
      io.err("dev chain stopped");
    });
}
