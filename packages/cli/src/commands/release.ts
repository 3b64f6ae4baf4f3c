import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { ReleaseFlags, ReleaseRevokeOpts } from "../options/release.js";
import { addKeyOptions, addNetworkOptions } from "./network.js";

export type { ReleaseFlags, ReleaseRevokeOpts } from "../options/release.js";

// `tpod release ...`: the release registry (docs/cli.md, docs/attestation.md). Definitions only; the SDK and
// viem load on use from ../actions/release.js.

const actions = () => import("../actions/release.js");

export function registerRelease(program: Command, ctx: CommandContext): void {
  const release = program
    .command("release")
    .description(
      "provider releases on chain: signers publish (k of n approvals) and revoke (any one); everyone lists",
    );
  addKeyOptions(
    addNetworkOptions(
      release
        .command("publish")
        .description(
          "approve the release in FILE (YAML/JSON: version, imageDigest, source, measurements); the k-th signer's approval publishes it",
        )
        .argument("<file>", "release file (see docs/attestation.md, Releases)")
        .option("--json", "print the result as JSON"),
    ),
  ).action(async (file: string, opts: ReleaseFlags) => (await actions()).releasePublish(ctx, file, opts));
  addKeyOptions(
    addNetworkOptions(
      release
        .command("revoke")
        .description("revoke a release at once: publishers refuse providers running it from now on")
        .argument("<id>", "release id (0x and 64 hex digits, from `tpod release list`)")
        .requiredOption("--reason <text>", "why (stored on chain and shown to publishers; at most 256 bytes)")
        .option("--json", "print the result as JSON"),
    ),
  ).action(async (id: string, opts: ReleaseRevokeOpts) => (await actions()).releaseRevoke(ctx, id, opts));
  addNetworkOptions(
    release
      .command("list")
      .description("list the releases, their status and measurements, and the release signers")
      .option("--json", "print as JSON"),
  ).action(async (opts: ReleaseFlags) => (await actions()).releaseList(ctx, opts));
}
