import { readFile } from "node:fs/promises";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import { type DevnetUpOpts, LOG_LEVELS, type LogLevel } from "../options/devnet.js";

/** The one JSON line `tpod devnet chain` prints: everything a client needs to use the dev chain. */
export interface DevChainInfo {
  rpcUrl: string;
  chainId: number;
  contracts: { registry: string; payments: string; marketplace: string; releases: string; token: string };
  accounts: { address: string; privateKey: string; label: string }[];
}

export function devChainInfo(chain: DevChain): DevChainInfo {
  return {
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    contracts: { ...chain.contracts },
    accounts: chain.accounts.map((a) => ({ address: a.address, privateKey: a.privateKey, label: a.label })),
  };
}

function parsePort(value: string | undefined, flag = "--port"): number {
  if (value === undefined) return 0;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CliError(`${flag} must be an integer from 0 to 65535, got "${value}"`, ExitCode.usage);
  }
  return port;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(`${flag} must be a positive integer, got "${value}"`, ExitCode.usage);
  return n;
}

/** Resolves on the first SIGINT/SIGTERM (a second one exits at once), or with a reason when a part dies. */
function untilSignal(failed: Promise<string>): Promise<string | undefined> {
  return new Promise((resolve) => {
    let signalled = false;
    const onSignal = () => {
      if (signalled) process.exit(130);
      signalled = true;
      resolve(undefined);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    void failed.then((reason) => resolve(reason));
  });
}

/** Resolves on SIGINT or SIGTERM, or when the node process exits on its own (then with its description). */
function untilStopped(chain: DevChain): Promise<string | undefined> {
  return new Promise((resolve) => {
    const done = (reason?: string) => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolve(reason);
    };
    const onSignal = () => done();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    chain.anvil.process.once("exit", (code) => done(`anvil exited unexpectedly (code ${code})`));
  });
}

/** `tpod devnet up` */
export async function devnetUp({ io }: CommandContext, opts: DevnetUpOpts) {
  const gatewayPort = parsePort(opts.gatewayPort, "--gateway-port");
  const chainPort = parsePort(opts.chainPort, "--chain-port");
  const webPort = parsePort(opts.webPort, "--web-port");
  if (!(LOG_LEVELS as readonly string[]).includes(opts.logLevel))
    throw new CliError(`--log-level must be one of ${LOG_LEVELS.join(", ")}`, ExitCode.usage);
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(opts.engineOwner))
    throw new CliError(
      "--engine-owner must be lowercase letters, digits and dashes (at most 31)",
      ExitCode.usage,
    );
  // Loaded on use: the devnet pulls in anvil, Helia, libp2p and node:sqlite.
  const vm = opts.providerVm
    ? {
        imageDir: opts.providerVm,
        memoryMiB: positiveInt(opts.vmMemory, "--vm-memory"),
        cpus: positiveInt(opts.vmCpus, "--vm-cpus"),
      }
    : undefined;
  const { DevnetError, startDevnet, startVmDevnet } = await import("@trustedpods/devnet");
  const { tpodHome } = await import("@trustedpods/publisher/node");
  let net: Pick<Awaited<ReturnType<typeof startDevnet>>, "info" | "failed" | "stop">;
  try {
    const o = {
      home: tpodHome(),
      gatewayPort,
      chainPort,
      engineOwner: opts.engineOwner,
      logLevel: opts.logLevel as LogLevel,
      ...(opts.dir ? { dir: opts.dir } : {}),
      progress: (m: string) => io.err(m),
    };
    net = vm ? await startVmDevnet({ ...o, providerVm: vm }) : await startDevnet(o);
  } catch (err) {
    if (err instanceof DevnetError) throw new CliError(`cannot start the devnet: ${err.message}`);
    throw new CliError(`cannot start the devnet: ${(err as Error).message}`);
  }
  const web = await serveWebAppFor(net.info.stateFile, webPort, io);
  const info = { ...net.info, ...(web ? { web: { url: web.url } } : {}) };
  io.out(JSON.stringify(info));
  if (!opts.json) {
    io.err(`devnet ready in ${(info.startupMs / 1000).toFixed(1)} s`);
    io.err(`  chain      ${info.rpcUrl} (chain id ${info.chainId})`);
    io.err(`  provider   ${info.provider.address}  peer ${info.provider.peerId}`);
    if (vm)
      io.err(
        `  provider VM booted from ${vm.imageDir} (console: ${info.provider.config.replace(/provider\.yaml$/, "console.log")})`,
      );
    io.err(
      `  release    ${info.release.version} ${info.release.id} (${vm ? "the provider VM image's release; it also lists insecure-dev, the VM has no TEE" : `insecure-dev: the devnet's only accepted "measurement"`})`,
    );
    io.err(
      `  gateway    ${info.gateway.url}  (pods are http://NAME.${info.gateway.baseDomain}:${info.gateway.port}/)`,
    );
    io.err(
      `  publisher  ${info.publisher.address}  (PUBLIC TEST KEY: never use it on a real chain; also a release signer here)`,
    );
    io.err(`  state file ${info.stateFile}: tpod commands use this devnet without flags`);
    if (web) io.err(`  web app    ${web.url}`);
    io.err("press Ctrl-C to stop (removes the devnet's pods and its state file)");
  }
  const problem = await untilSignal(net.failed);
  io.err("stopping the devnet...");
  await web?.close();
  await net.stop();
  if (problem) throw new CliError(problem);
  io.err("devnet stopped");
}

/** `tpod devnet status` */
export async function devnetStatus({ io }: CommandContext, opts: { json?: boolean }) {
  const { readDevnetState, tpodHome } = await import("@trustedpods/publisher/node");
  const found = await readDevnetState(tpodHome());
  if (!found.state) throw new CliError(`no devnet is running: ${found.why}`);
  const s = found.state;
  if (opts.json) return io.out(JSON.stringify(s));
  io.out(`devnet pid ${s.pid ?? "?"} since ${s.startedAt ?? "?"}: chain ${s.rpcUrl} (chain id ${s.chainId})`);
  for (const p of s.providers ?? []) io.out(`  provider ${p.address} gateway ${p.gateway?.url ?? "-"}`);
  if (s.publisher) io.out(`  publisher ${s.publisher} (public test key)`);
}

/** `tpod devnet down` */
export async function devnetDown({ io }: CommandContext, opts: { timeout: string }) {
  const timeoutS = Number(opts.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0)
    throw new CliError("--timeout must be a positive number of seconds", ExitCode.usage);
  const { readDevnetState, tpodHome } = await import("@trustedpods/publisher/node");
  const found = await readDevnetState(tpodHome());
  if (!found.state?.pid)
    throw new CliError(`no devnet is running: ${found.state ? "its state file has no pid" : found.why}`);
  const pid = found.state.pid;
  process.kill(pid, "SIGTERM");
  io.err(`sent SIGTERM to devnet process ${pid}; waiting for it to stop...`);
  const deadline = Date.now() + timeoutS * 1000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      io.out(`devnet ${pid} stopped`);
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new CliError(
    `devnet process ${pid} is still running after ${timeoutS} s (kill -9 ${pid} ends it at once)`,
  );
}

/** `tpod devnet chain` */
export async function devnetChain({ io }: CommandContext, opts: { port?: string; json?: boolean }) {
  const port = parsePort(opts.port);
  io.err("starting the dev chain (anvil) and deploying the contracts...");
  let chain: DevChain;
  try {
    // A block every second when idle: chain time advances as on a real chain (transactions still mine at once).
    chain = await startDevChain({ port, blockTimeSeconds: 1 });
  } catch (err) {
    throw new CliError(`cannot start the dev chain: ${(err as Error).message}`);
  }
  const info = devChainInfo(chain);
  io.out(JSON.stringify(info));
  if (!opts.json) {
    io.err(`dev chain ready at ${info.rpcUrl} (chain id ${info.chainId})`);
    io.err(`  registry ${info.contracts.registry}  payments ${info.contracts.payments}`);
    io.err(`  marketplace ${info.contracts.marketplace}  token ${info.contracts.token}`);
    io.err(`  releases ${info.contracts.releases} (release signer: account 0)`);
    io.err(
      `  ${info.accounts.length} funded accounts with PUBLIC TEST KEYS (never use them on a real chain)`,
    );
    io.err("press Ctrl-C to stop");
  }
  const problem = await untilStopped(chain);
  await chain.stop();
  if (problem) throw new CliError(problem);
  io.err("dev chain stopped");
}

/**
 * Serves the web app against this devnet (the app reads the chain and talks to the provider over libp2p
 * WebSockets from the browser). A missing app build is not fatal for the devnet: it says how to build it.
 */
async function serveWebAppFor(
  stateFile: string,
  port: number,
  io: CommandContext["io"],
): Promise<{ url: string; close(): Promise<void> } | undefined> {
  const { parseDevnetState, webAppConfigFromDevnet } = await import("@trustedpods/publisher");
  const { serveWebApp, WebAppError } = await import("@trustedpods/web/node");
  const state = parseDevnetState(JSON.parse(await readFile(stateFile, "utf8")), stateFile);
  try {
    return await serveWebApp({ port, config: webAppConfigFromDevnet(state) });
  } catch (err) {
    if (err instanceof WebAppError && err.code === "NOT_BUILT") {
      io.err(`web app not served: ${err.message}`);
      return undefined;
    }
    throw err;
  }
}
