import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { RegistryOpts } from "../options/provider.js";

export type { RegistryOpts } from "../options/provider.js";

// Definitions only; the provider daemon (node:sqlite, libp2p, Helia, dockerode) and viem load on use from
// ../actions/provider.js.

const collect = (v: string, prev: string[] = []) => [...prev, v];

const actions = () => import("../actions/provider.js");

export function registerProvider(program: Command, ctx: CommandContext): void {
  const provider = program
    .command("provider")
    .description("run a provider daemon and manage its Registry entry, pods and earnings");

  for (const action of ["register", "update"] as const) {
    provider
      .command(action)
      .description(
        action === "register"
          ? "register this provider in the Registry with the pricing, token and notice period from its config"
          : "replace this provider's Registry entry with the config's current pricing and the given details",
      )
      .requiredOption("--config <file>", "provider config (chain.registry must be set)")
      .option("--name <name>", "display name", "provider")
      .option("--region <region>", "region label (repeatable)", collect)
      .option(
        "--tee-type <type>",
        "TEE type to advertise (repeatable; default insecure-dev for that attester)",
        collect,
      )
      .option(
        "--multiaddr <addr>",
        "dialable libp2p address (repeatable; default the config's p2p.announce)",
        collect,
      )
      .option("--metadata-cid <cid>", "IPFS CID of a metadata document")
      .option(
        "--release <id>",
        "the provider release this host runs (its id from `tpod release list`); publishers still check the evidence",
      )
      .option("--json", "print the result as JSON")
      .action(async (opts: RegistryOpts) => (await actions()).providerRegistry(ctx, action, opts));
  }
  provider
    .command("deregister")
    .description("remove this provider from the Registry (running pods and channels are not touched)")
    .requiredOption("--config <file>", "provider config (chain.registry must be set)")
    .option("--json", "print the result as JSON")
    .action(async (opts: RegistryOpts) => (await actions()).providerRegistry(ctx, "deregister", opts));

  provider
    .command("pods")
    .description("list the daemon's pods from its state database (read-only; works while the daemon runs)")
    .requiredOption("--config <file>", "provider config")
    .option("--all", "include deleted pods")
    .option("--json", "print the pods as JSON")
    .action(async (opts: { config: string; all?: boolean; json?: boolean }) =>
      (await actions()).providerPods(ctx, opts),
    );

  provider
    .command("earnings")
    .description(
      "show the balance withdrawable from Payments and what each known channel paid; --withdraw moves the balance to the provider's wallet",
    )
    .requiredOption("--config <file>", "provider config")
    .option("--withdraw", "withdraw the whole balance of the pricing token")
    .option("--json", "print as JSON (amounts in base units, as decimal strings)")
    .action(async (opts: { config: string; withdraw?: boolean; json?: boolean }) =>
      (await actions()).providerEarnings(ctx, opts),
    );

  provider
    .command("init")
    .description("write a commented provider.yaml and create the account key (0600) if missing")
    .option("--config <file>", "config file to write", "provider.yaml")
    .option("--rpc-url <url>", "chain RPC URL")
    .option("--payments <address>", "Payments contract address")
    .option("--token <address>", "ERC-20 token prices are in")
    .option("--force", "overwrite an existing config file")
    .action(
      async (opts: { config: string; rpcUrl?: string; payments?: string; token?: string; force?: boolean }) =>
        (await actions()).providerInit(ctx, opts),
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
    .action(async (opts: { config: string; json?: boolean; insecureAllowAllPayments?: boolean }) =>
      (await actions()).providerServe(ctx, opts),
    );
}
