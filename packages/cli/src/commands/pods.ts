import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { BalanceOpts } from "../options/pods.js";
import { addSessionOptions, addUploadOptions, type SessionFlags, type UploadFlags } from "./deploy.js";

export type { BalanceOpts } from "../options/pods.js";

// Definitions only; the publisher SDK, viem and libp2p load on use from ../actions/pods.js.

const actions = () => import("../actions/pods.js");

export function registerPods(program: Command, ctx: CommandContext): void {
  addSessionOptions(
    program
      .command("pods")
      .description(
        "list your pods on this network: the channels your key opened on chain (web app deploys included) with the names from $TPOD_HOME/pods.json, the live phase and the time the deposit still pays for",
      )
      .option("--no-status", "do not ask the providers for the live phase"),
  ).action(async (opts: SessionFlags & { status: boolean }) => (await actions()).podsList(ctx, opts));

  addSessionOptions(
    program
      .command("status")
      .description("a pod's phase, containers, endpoints and billing, from its provider")
      .argument("<pod>", "pod id, unique prefix or name"),
  ).action(async (ref: string, opts: SessionFlags) => (await actions()).podStatusAction(ctx, ref, opts));

  addSessionOptions(
    program
      .command("logs")
      .description("a pod's container logs (stdout and stderr, with timestamps)")
      .argument("<pod>", "pod id, unique prefix or name")
      .option("-f, --follow", "keep streaming new lines until Ctrl-C")
      .option("--container <name>", "only this container")
      .option("--tail <n>", "only the last N lines per container"),
  ).action(
    async (ref: string, opts: SessionFlags & { follow?: boolean; container?: string; tail?: string }) =>
      (await actions()).podLogsAction(ctx, ref, opts),
  );

  addUploadOptions(
    addSessionOptions(
      program
        .command("update")
        .description(
          "replace a pod's manifest (new quote and channel rate when the price changes; persistent volumes are kept)",
        )
        .argument("<pod>", "pod id, unique prefix or name")
        .argument("<manifest>", "the new pod manifest"),
    ),
    "IPFS peers for the upload node (default: the devnet's IPFS node)",
  ).action(async (ref: string, manifest: string, opts: SessionFlags & UploadFlags) =>
    (await actions()).podUpdate(ctx, ref, manifest, opts),
  );

  addSessionOptions(
    program
      .command("fund")
      .description("top up a pod's payment channel")
      .argument("<pod>", "pod id, unique prefix or name")
      .argument("<amount>", "tokens to add, e.g. 0.5"),
  ).action(async (ref: string, amount: string, opts: SessionFlags) =>
    (await actions()).podFund(ctx, ref, amount, opts),
  );

  addSessionOptions(
    program
      .command("close")
      .description(
        "close a pod's payment channel: the first call starts the notice period; once it has passed, a second call settles the provider and refunds the rest",
      )
      .argument("<pod>", "pod id, channel id, unique prefix of either, or name"),
  ).action(async (ref: string, opts: SessionFlags) => (await actions()).podClose(ctx, ref, opts));

  addSessionOptions(
    program
      .command("delete")
      .description(
        "remove a pod from its provider (containers, volumes, secrets), then start closing its channel; a pod the provider already removed still gets its channel closed",
      )
      .argument("<pod>", "pod id, unique prefix or name"),
  ).action(async (ref: string, opts: SessionFlags) => (await actions()).podDelete(ctx, ref, opts));

  addSessionOptions(
    program
      .command("balance")
      .description(
        "your payment token and gas (native coin) balances, and earnings withdrawable from Payments",
      )
      .argument("[address]", "another account to look at (default: your key's)")
      .option("--token <address>", "the payment token (default: the network's)"),
  ).action(async (address: string | undefined, opts: BalanceOpts) =>
    (await import("../actions/balance.js")).balanceAction(ctx, address, opts),
  );
}
