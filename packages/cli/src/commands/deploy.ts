import type { BulkMode } from "@trustedpods/ipfs";
import type { Command } from "commander";
import { CliError, ExitCode } from "../errors.js";
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
  imageTransfer?: string;
}

/** The upload node's flags, shared by deploy and update. */
export interface UploadFlags {
  ipfsPeer?: string[];
  imageTransfer?: string;
}

const IMAGE_TRANSFER_HELP =
  "how the provider may fetch this command's image layers beside IPFS: plain,tls (default: the provider picks, plain first), tls (bytes confidential on the wire), none (libp2p stream and bitswap only); every byte is digest-checked either way";

/**
 * `--image-transfer` → the bulk channel modes the upload node serves. "plain" gives up the layers' confidentiality
 * on the wire (their digests still guard integrity; see docs/ipfs.md), so a publisher may keep to "tls" or "none".
 */
export function parseImageTransfer(text: string | undefined): BulkMode[] | undefined {
  if (text === undefined) return undefined;
  const words = text.split(",").map((w) => w.trim());
  if (words.length === 1 && words[0] === "none") return [];
  const modes: BulkMode[] = [];
  for (const w of words) {
    if (w !== "plain" && w !== "tls")
      throw new CliError(
        `--image-transfer takes plain, tls, plain,tls or none, got "${text}"`,
        ExitCode.usage,
      );
    if (!modes.includes(w)) modes.push(w);
  }
  return modes;
}

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
