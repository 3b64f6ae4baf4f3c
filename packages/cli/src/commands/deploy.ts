import type { Command } from "commander";
import type { CommandContext } from "./index.js";
import { addKeyOptions, addNetworkOptions, type KeyFlags, type NetworkFlags } from "./network.js";

// Definitions only; the deploy flow (publisher SDK, viem, libp2p, Helia) loads on use from ../actions/deploy.js.

export interface SessionFlags extends NetworkFlags, KeyFlags {
  policy?: string;
  json?: boolean;
}

export interface DeployOpts extends SessionFlags {
  provider?: string;
  funds?: string;
  notice?: string;
  ipfsPeer?: string[];
}

export function addSessionOptions(cmd: Command): Command {
  return addKeyOptions(addNetworkOptions(cmd))
    .option(
      "--policy <file>",
      "attestation policy (default: the network's; on the devnet insecure-dev is allowed)",
    )
    .option("--json", "print the result as JSON on stdout (progress stays on stderr)");
}

export function registerDeploy(program: Command, ctx: CommandContext): void {
  addSessionOptions(
    program
      .command("deploy")
      .description(
        "deploy a pod: pick a provider (cheapest that fits, or --provider), attest it, push local images and secrets, open the payment channel, provision, print the endpoints",
      )
      .argument("<manifest>", "pod manifest (YAML)")
      .option("--provider <address>", "a registered provider's address instead of the cheapest that fits")
      .option(
        "--funds <amount>",
        "deposit in tokens, e.g. 0.36 (default: the minimum run time the provider's quote asks for, plus a minute; less is refused before any money moves)",
      )
      .option("--notice <seconds>", "close notice period (default: the provider's minimum)")
      .option(
        "--ipfs-peer <multiaddr...>",
        "IPFS peers to connect the upload node to, so the provider can fetch (default: the devnet's IPFS node)",
      ),
  ).action(async (manifest: string, opts: DeployOpts) =>
    (await import("../actions/deploy.js")).deployAction(ctx, manifest, opts),
  );
}
