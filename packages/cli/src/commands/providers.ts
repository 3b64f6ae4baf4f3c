import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { ProvidersOpts } from "../options/providers.js";
import { addNetworkOptions } from "./network.js";

export type { ProvidersOpts } from "../options/providers.js";

// Definitions only; the SDK and viem load on use from ../actions/providers.js.

const actions = () => import("../actions/providers.js");

export function registerProviders(program: Command, ctx: CommandContext): void {
  addNetworkOptions(
    program
      .command("providers")
      .description(
        "list providers from the Registry with their prices; with --for, the price of that pod on each and the cheapest that fits (*)",
      )
      .option("--for <manifest>", "price this pod manifest on every provider")
      .option("--region <region>", "only providers serving this region")
      .option("--tee <type>", "only providers with this TEE type (e.g. sev-snp, tdx, insecure-dev)")
      .option("--token <address>", "only providers pricing in this ERC-20 token")
      .option("--max-price <amount>", "with --for: at most this much per hour, in tokens (e.g. 0.5)")
      .option("--json", "print as JSON (amounts in token base units, as decimal strings)"),
  ).action(async (opts: ProvidersOpts) => (await actions()).providersAction(ctx, opts));
}
