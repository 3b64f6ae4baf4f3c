import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { DevFlags, DevPublishOpts } from "../options/dev.js";
import { addKeyOptions, addNetworkOptions } from "./network.js";

export type { DevFlags, DevPublishOpts } from "../options/dev.js";

// `tpod dev ...`: the developer side of the Marketplace (docs/marketplace.md). Definitions only; the SDK, viem,
// libp2p and Helia load on use from ../actions/dev.js.

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function addIpfs(cmd: Command): Command {
  return cmd
    .option(
      "--ipfs-repo <dir>",
      "data dir of the embedded IPFS node (default $TPOD_IPFS_REPO or ~/.tpod/ipfs)",
    )
    .option("--kubo-api <url>", "use an external Kubo node over its RPC API (default $TPOD_KUBO_API)")
    .option("--peer <multiaddr>", "IPFS peer to fetch from, with /p2p/PEER_ID (repeatable)", collect);
}

function addImageKey(cmd: Command): Command {
  return cmd.option(
    "--image-key <file>",
    "the developer's image key, PEM PKCS#8 (default $TPOD_HOME/developer/image-key.pem, created 0600 on first publish)",
  );
}

const actions = () => import("../actions/dev.js");

export function registerDev(program: Command, ctx: CommandContext): void {
  const dev = program
    .command("dev")
    .description(
      "developer: sell encrypted images on the Marketplace (publish, authorize providers, earnings)",
    );

  addIpfs(
    addImageKey(
      addKeyOptions(
        addNetworkOptions(
          dev
            .command("publish")
            .description(
              "encrypt IMAGE with fresh layer keys, push it to IPFS, create the listing on chain and print its id",
            )
            .argument("<image>", "OCI layout directory, oci-archive/docker-archive file, or podman:REF")
            .requiredOption(
              "--royalty <bps>",
              "share of every provider claim paid to you, in basis points (100 = 1%)",
            )
            .option(
              "--fee <amount>",
              "fixed fee paid once when a channel using the listing opens (token units)",
            )
            .option("--token <address>", "token of the fixed fee (default: the network's token)")
            .option(
              "--allow-entrypoint-override",
              "let publishers replace the entrypoint (they can then read your image)",
            )
            .option("--manifest <file>", "a sample manifest stored with the listing metadata")
            .option("--name <name>", "listing name (default: the image argument)")
            .option("--description <text>", "listing description")
            .option(
              "--serve",
              "keep the IPFS node serving the listing until Ctrl-C (default peers: the devnet's)",
            )
            .option("--json", "print the result as JSON"),
        ),
      ),
    ),
  ).action(async (image: string, opts: DevPublishOpts) => (await actions()).devPublish(ctx, image, opts));

  addIpfs(
    addImageKey(
      addKeyOptions(
        addNetworkOptions(
          dev
            .command("authorize")
            .description(
              "attest PROVIDER against your policy, wrap the image keys to its attested key, publish the envelope and authorize it on chain",
            )
            .argument("<listing>", "listing id")
            .argument("<provider>", "provider address")
            .option(
              "--policy <file>",
              "attestation policy (default: the network's; devnet allows insecure-dev)",
            )
            .option(
              "--serve",
              "keep the IPFS node serving the envelope until Ctrl-C (default peers: the devnet's)",
            )
            .option("--json", "print the result as JSON"),
        ),
      ),
    ),
  ).action(
    async (
      listingText: string,
      providerText: string,
      opts: DevFlags & { policy?: string; serve?: boolean },
    ) => (await actions()).devAuthorize(ctx, listingText, providerText, opts),
  );

  addKeyOptions(
    addNetworkOptions(
      dev
        .command("revoke")
        .description("stop future deployments of LISTING on PROVIDER")
        .argument("<listing>", "listing id")
        .argument("<provider>", "provider address"),
    ),
  ).action(async (listingText: string, providerText: string, opts: DevFlags) =>
    (await actions()).devRevoke(ctx, listingText, providerText, opts),
  );

  addKeyOptions(
    addNetworkOptions(
      dev
        .command("listings")
        .description("your listings, with their terms and authorized providers")
        .option("--json", "print as JSON"),
    ),
  ).action(async (opts: DevFlags) => (await actions()).devListings(ctx, opts));

  addKeyOptions(
    addNetworkOptions(
      dev
        .command("earnings")
        .description("royalties and fees credited to you, withdrawn, and withdrawable now")
        .option("--token <address>", "token (default: the network's)")
        .option("--json", "print as JSON"),
    ),
  ).action(async (opts: DevFlags & { token?: string }) => (await actions()).devEarnings(ctx, opts));

  addKeyOptions(
    addNetworkOptions(
      dev
        .command("withdraw")
        .description("withdraw your whole balance of a token from the Payments contract")
        .option("--token <address>", "token (default: the network's)")
        .option("--json", "print as JSON"),
    ),
  ).action(async (opts: DevFlags & { token?: string }) => (await actions()).devWithdraw(ctx, opts));
}
