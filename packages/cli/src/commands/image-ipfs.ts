import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { IpfsCliOpts } from "../options/image-ipfs.js";

export type { IpfsCliOpts } from "../options/image-ipfs.js";

// `tpod image push|pull` and the CID half of `tpod image inspect`: images stored on IPFS by root CID.
// Which IPFS node: --kubo-api URL (an external Kubo node), else an embedded Helia node whose data lives in
// --ipfs-repo DIR (default $TPOD_IPFS_REPO or ~/.tpod/ipfs). --peer MULTIADDR names publisher nodes to fetch
// from (the devnet's long-lived node, or a `tpod image push --serve`).
// Definitions only: Helia and libp2p load on use from ../actions/image-ipfs.js.

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Adds the options that say which IPFS node to use; shared by push, pull and inspect. */
export function addIpfsOptions(cmd: Command): Command {
  return cmd
    .option(
      "--ipfs-repo <dir>",
      "data dir of the embedded IPFS node (default $TPOD_IPFS_REPO or ~/.tpod/ipfs)",
    )
    .option("--kubo-api <url>", "use an external Kubo node over its RPC API instead (default $TPOD_KUBO_API)")
    .option("--peer <multiaddr>", "peer to fetch from, with /p2p/PEER_ID (repeatable)", collect)
    .option(
      "--listen <multiaddr>",
      "listen address of the embedded node (repeatable; default 127.0.0.1, any port)",
      collect,
    )
    .option(
      "--network <mode>",
      "devnet (loopback addresses only) or private (any address; no discovery)",
      "devnet",
    );
}

const actions = () => import("../actions/image-ipfs.js");

function registerPush(image: Command, ctx: CommandContext): void {
  addIpfsOptions(
    image
      .command("push")
      .description(
        "store an OCI image layout on IPFS (one CID per blob plus a root object) and print the root CID",
      )
      .argument("<src>", "OCI image layout directory")
      .option("--ref <name>", "image to push when the layout holds several")
      .option("--no-pin", "do not pin the image in the node")
      .option(
        "--serve",
        "keep the embedded node running after the push, serving the image, until interrupted",
      )
      .option("--json", "print the result as JSON")
      .option("-q, --quiet", "no progress on stderr"),
  ).action(async (src: string, opts: IpfsCliOpts & { pin: boolean; serve?: boolean }) =>
    (await actions()).imagePush(ctx, src, opts),
  );
}

function registerPull(image: Command, ctx: CommandContext): void {
  addIpfsOptions(
    image
      .command("pull")
      .description("fetch an image by root CID, verifying every digest, into an OCI layout or Podman")
      .argument("<cid>", "root CID printed by `tpod image push`")
      .argument("<dst>", "new OCI layout directory (created on success only), or podman:NAME")
      .option("--timeout <seconds>", "give up after this long (default 600)")
      .option("--no-fast-path", "fetch through bitswap/Kubo only, never over the direct blob stream")
      .option("--json", "print the result as JSON")
      .option("-q, --quiet", "no progress on stderr"),
  ).action(async (cidText: string, dst: string, opts: IpfsCliOpts & { fastPath: boolean }) =>
    (await actions()).imagePull(ctx, cidText, dst, opts),
  );
}

/** Registers `tpod image push` and `tpod image pull` on the `image` command group. */
export function registerImageIpfs(image: Command, ctx: CommandContext): void {
  registerPush(image, ctx);
  registerPull(image, ctx);
}
