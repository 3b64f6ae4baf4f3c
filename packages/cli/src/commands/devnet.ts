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

function parsePort(value: string | undefined): number {
  if (value === undefined) return 0;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CliError(`--port must be an integer from 0 to 65535, got "${value}"`, ExitCode.usage);
  }
  return port;
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
