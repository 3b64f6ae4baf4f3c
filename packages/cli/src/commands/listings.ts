import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { ListingsFlags } from "../options/listings.js";
import { addNetworkOptions } from "./network.js";

export type { ListingsFlags } from "../options/listings.js";

// Definitions only; the SDK, viem and Helia load on use from ../actions/listings.js.

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

const actions = () => import("../actions/listings.js");

export function registerListings(program: Command, ctx: CommandContext): void {
  addNetworkOptions(
    program
      .command("listings")
      .description("browse the Marketplace: name, developer, terms, authorized providers, sample manifest")
      .argument("[listing]", "one listing id (shows its sample manifest)")
      .option("--all", "include inactive listings")
      .option("--no-metadata", "do not read listing metadata from IPFS")
      .option(
        "--ipfs-repo <dir>",
        "data dir of the embedded IPFS node (default $TPOD_IPFS_REPO or ~/.tpod/ipfs)",
      )
      .option("--kubo-api <url>", "use an external Kubo node (default $TPOD_KUBO_API)")
      .option(
        "--peer <multiaddr>",
        "IPFS peer to fetch metadata from (repeatable; default the network's IPFS nodes, e.g. the devnet's)",
        collect,
      )
      .option("--timeout <seconds>", "per-document IPFS deadline (default 10)")
      .option("--json", "print as JSON"),
  ).action(async (one: string | undefined, opts: ListingsFlags) =>
    (await actions()).listingsAction(ctx, one, opts),
  );
}
