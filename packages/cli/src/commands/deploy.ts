import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { DeployOpts } from "../options/deploy.js";
import { addKeyOptions, addNetworkOptions } from "./network.js";

export {
  type DeployOpts,
  parseImageTransfer,
  type SessionFlags,
  type UploadFlags,
} from "../options/deploy.js";

// Definitions only; the deploy flow (publisher SDK, viem, libp2p, Helia) loads on use from ../actions/deploy.js.

const IMAGE_TRANSFER_HELP =
  "how the provider may fetch this command's image layers beside IPFS: plain,tls (default: the provider picks, plain first), tls (bytes confidential on the wire), none (libp2p stream and bitswap only); every byte is digest-checked either way";

export function addUploadOptions(cmd: Command, peerHelp: string): Command {
  return cmd
    .option("--ipfs-peer <multiaddr...>", peerHelp)
    .option("--image-transfer <modes>", IMAGE_TRANSFER_HELP);
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
  addUploadOptions(
    addSessionOptions(
      program
        .command("deploy")
        .description(
          "deploy a pod: pick a provider (cheapest that fits, or --provider), attest it, push local images and secrets, open the payment channel, provision, print the endpoints",
        )
        .argument(
          "<manifest>",
          "pod manifest (YAML), or a Compose file (compose.yaml, docker-compose.yml: imported with the same warnings as tpod manifest import, build: services built first)",
        )
        .option("--provider <address>", "a registered provider's address instead of the cheapest that fits")
        .option(
          "--funds <amount>",
          "deposit in tokens, e.g. 0.36 (default: what pays for 6 hours at the quoted rate; less than the provider's minimum run time plus a 60 s margin is refused before any money moves)",
        )
        .option("--notice <seconds>", "close notice period (default: the provider's minimum)"),
    ),
    "IPFS peers to connect the upload node to, so the provider can fetch (default: the devnet's IPFS node)",
  ).action(async (manifest: string, opts: DeployOpts) =>
    (await import("../actions/deploy.js")).deployAction(ctx, manifest, opts),
  );
}
