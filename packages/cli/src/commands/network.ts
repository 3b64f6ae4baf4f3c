import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { KeyFlags, NetworkAddOpts, NetworkFlags } from "../options/network.js";

export type { KeyFlags, NetworkAddOpts, NetworkFlags } from "../options/network.js";

// Definitions only: the actions (and the publisher SDK, viem, libp2p they need) load on use from
// ../actions/network.js, so `tpod --help` and the light commands do not pay for them.

/** Adds --rpc, --contracts and --network to a command (see docs/cli.md, "Finding the network"). */
export function addNetworkOptions(cmd: Command): Command {
  return cmd
    .option("--rpc <url>", "chain RPC URL (default: TPOD_RPC_URL, the network file, or the running devnet)")
    .option("--contracts <file>", "JSON file with the contract addresses (default: TPOD_CONTRACTS, ...)")
    .option("--network <name>", "use $TPOD_HOME/networks/NAME.json (default: TPOD_NETWORK)");
}

/** Adds --key and --password-file to a command (see docs/cli.md, "Keys"). */
export function addKeyOptions(cmd: Command): Command {
  return cmd
    .option(
      "--key <address|file>",
      "signing key: a keystore address or a key file (default: TPOD_KEY, the devnet's)",
    )
    .option(
      "--password-file <file>",
      "file whose first line is the keystore passphrase (default: TPOD_PASSWORD, or asked)",
    );
}

const actions = () => import("../actions/network.js");

export function registerNetwork(program: Command, ctx: CommandContext): void {
  const network = program
    .command("network")
    .description("which chain and contracts tpod uses (flags > environment > network file > running devnet)");
  addNetworkOptions(
    network
      .command("show")
      .description("show the network and key the other commands would use, and where each comes from")
      .option("--key <address|file>", "as for commands that sign")
      .option("--json", "print as JSON"),
  ).action(async (opts: NetworkFlags & KeyFlags & { json?: boolean }) =>
    (await actions()).networkShow(ctx, opts),
  );
  network
    .command("add")
    .description("save a named network to $TPOD_HOME/networks/NAME.json (use it with --network NAME)")
    .argument("<name>", "network name: letters, digits, '.', '_' or '-'")
    .requiredOption("--rpc <url>", "chain RPC URL")
    .requiredOption(
      "--contracts <file>",
      "JSON file with registry, payments, marketplace (and token) addresses",
    )
    .option("--chain-id <id>", "expected chain id (checked on every connection)")
    .option("--policy <file>", "attestation policy for this network (YAML/JSON)")
    .option("--json", "print the saved file as JSON")
    .action(async (name: string, opts: NetworkAddOpts) => (await actions()).networkAdd(ctx, name, opts));
}
