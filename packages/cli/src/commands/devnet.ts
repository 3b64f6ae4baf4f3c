import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import { type DevnetUpOpts, LOG_LEVELS } from "../options/devnet.js";

export { type DevnetUpOpts, LOG_LEVELS, type LogLevel } from "../options/devnet.js";

// Definitions only; anvil, the contracts, Helia, libp2p and the provider daemon load on use from
// ../actions/devnet.js.

const actions = () => import("../actions/devnet.js");

export function registerDevnet(program: Command, ctx: CommandContext): void {
  const devnet = program.command("devnet").description("run a local development network on this machine");
  devnet
    .command("up")
    .description(
      "start everything on this machine in one foreground process: the dev chain with the contracts, an IPFS node, a provider daemon (Podman, insecure-dev attester, billing, HTTP gateway) registered in the Registry, and a funded publisher account; other tpod commands find it through $TPOD_HOME/devnet.json; Ctrl-C stops it and removes its pods",
    )
    .option("--json", "print only the JSON ready line on stdout (default: the line plus a summary on stderr)")
    .option("--gateway-port <port>", "HTTP gateway port on 127.0.0.1 (0 = any free port)", "8080")
    .option("--chain-port <port>", "chain RPC port on 127.0.0.1 (0 = any free port)", "8545")
    .option("--web-port <port>", "web app port on 127.0.0.1 (0 = any free port)", "8090")
    .option(
      "--dir <dir>",
      "working directory for the provider and IPFS data (default $TPOD_HOME/devnet; emptied at start)",
    )
    .option(
      "--engine-owner <name>",
      "Podman owner label of the devnet's pods (for several devnets on one Podman)",
      "devnet",
    )
    .option("--log-level <level>", `provider daemon log level on stderr (${LOG_LEVELS.join(", ")})`, "warn")
    .option(
      "--provider-vm <image-dir>",
      "run the provider in a QEMU VM booted from this image (tpod provider image build) instead of in this process: a second host reached through loopback port forwards",
    )
    .option("--vm-memory <MiB>", "provider VM memory", "2048")
    .option("--vm-cpus <n>", "provider VM vCPUs", "2")
    .action(async (opts: DevnetUpOpts) => (await actions()).devnetUp(ctx, opts));
  devnet
    .command("status")
    .description("show the running devnet from $TPOD_HOME/devnet.json (exit 1 when none runs)")
    .option("--json", "print the state file's contents as JSON")
    .action(async (opts: { json?: boolean }) => (await actions()).devnetStatus(ctx, opts));
  devnet
    .command("down")
    .description("stop the devnet `tpod devnet up` runs (SIGTERM to its process; waits until it has stopped)")
    .option("--timeout <seconds>", "how long to wait", "60")
    .action(async (opts: { timeout: string }) => (await actions()).devnetDown(ctx, opts));
  devnet
    .command("chain")
    .description(
      "start a local chain (anvil) with Registry, Payments, Marketplace and a test token deployed and funded test accounts; runs in the foreground until Ctrl-C",
    )
    .option("--port <port>", "RPC port on 127.0.0.1 (default: a free port)")
    .option(
      "--json",
      "print only the JSON line on stdout (the default output is the same line plus a summary on stderr)",
    )
    .action(async (opts: { port?: string; json?: boolean }) => (await actions()).devnetChain(ctx, opts));
}
