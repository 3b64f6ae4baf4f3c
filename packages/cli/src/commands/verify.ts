import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { VerifyOpts } from "../options/verify.js";
import { addNetworkOptions } from "./network.js";

export type { VerifyOpts } from "../options/verify.js";

// Definitions only; libp2p, the SDK and viem load on use from ../actions/verify.js.

const actions = () => import("../actions/verify.js");

export function registerVerify(program: Command, ctx: CommandContext): void {
  addNetworkOptions(
    program
      .command("verify")
      .description(
        "attest a provider over libp2p with a fresh nonce and check its evidence against the policy (exit 0 accepted, 1 refused or unreachable)",
      )
      .argument(
        "<provider>",
        "a registered provider's address (0x...), or a multiaddr ending in /p2p/<peer id>",
      )
      .option(
        "--policy <file>",
        "attestation policy (YAML/JSON); default: the network file's, else on the devnet allow insecure-dev, else genuine TEEs only",
      )
      .option("--timeout <seconds>", "deadline for the connection and for the attest call (default 15)")
      .option("--json", "print the result as JSON"),
  ).action(async (target: string, opts: VerifyOpts) => (await actions()).verifyAction(ctx, target, opts));
}
