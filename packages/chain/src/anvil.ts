import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const SETPRIV = "/usr/bin/setpriv";

/**
 * Wraps a command so the kernel sends it SIGTERM when this process dies, even by SIGKILL: a killed devnet or test
 * must not leave an anvil holding its port. setpriv (util-linux) sets PR_SET_PDEATHSIG and then execs the command,
 * so the child's pid is anvil's own. Without setpriv the command runs unwrapped.
 */
function diesWithParent(command: string, args: string[]): [string, string[]] {
  return existsSync(SETPRIV) ? [SETPRIV, ["--pdeathsig", "TERM", "--", command, ...args]] : [command, args];
}

/** Raised when the local anvil node cannot be found or does not come up. */
export class AnvilError extends Error {
  override readonly name = "AnvilError";
  readonly code = "ANVIL_FAILED";
}

export interface AnvilOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  chainId?: number;
  accounts?: number;
  /**
   * Also mine a block every this many seconds when no transaction did, so chain time advances on an idle chain
   * (run-out and notice periods end without anyone's transaction). Transactions still mine at once: anvil's
   * `--mixed-mining` keeps automine beside interval mining, where `--block-time` alone would make every
   * transaction wait for the next interval. Default: mine only on transactions.
   */
  blockTimeSeconds?: number;
  /** Extra command-line flags, e.g. ["--disable-block-gas-limit"]. */
  args?: string[];
  /** How long to wait for anvil to listen (ms). */
  startTimeoutMs?: number;
}

export interface Anvil {
  rpcUrl: string;
  port: number;
  host: string;
  chainId: number;
  process: ChildProcess;
  /** Stops anvil (SIGTERM, then SIGKILL after 5 s) and resolves when it exited. */
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);

/** The anvil binary shipped by @foundry-rs/anvil's platform package (or $TPOD_ANVIL). */
export function anvilBinary(): string {
  const fromEnv = process.env.TPOD_ANVIL;
  if (fromEnv) return fromEnv;
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch}`;
  let dir: string;
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new AnvilError(
      `${pkg} is not installed: run npm install (it is an optional dependency of @foundry-rs/anvil)`,
    );
  }
  const bin = join(dir, "bin", process.platform === "win32" ? "anvil.exe" : "anvil");
  if (!existsSync(bin)) throw new AnvilError(`anvil binary missing at ${bin}`);
  return bin;
}

/** Starts anvil on loopback; resolves once it listens. */
export function startAnvil(opts: AnvilOptions = {}): Promise<Anvil> {
  const host = opts.host ?? "127.0.0.1";
  const blockTime = opts.blockTimeSeconds;
  if (blockTime !== undefined && !(Number.isInteger(blockTime) && blockTime >= 1))
    return Promise.reject(
      new AnvilError(`blockTimeSeconds must be a whole number of seconds >= 1, got ${blockTime}`),
    );
  const chainId = opts.chainId ?? 31337;
  const args = [
    "--host",
    host,
    "--port",
    String(opts.port ?? 0),
    "--chain-id",
    String(chainId),
    "--accounts",
    String(opts.accounts ?? 10),
    ...(blockTime !== undefined ? ["--block-time", String(blockTime), "--mixed-mining"] : []),
    ...(opts.args ?? []),
  ];
  const [command, argv] = diesWithParent(anvilBinary(), args);
  const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise<Anvil>((resolve, reject) => {
    let out = "";
    const timeout = setTimeout(() => {
      void stop();
      reject(
        new AnvilError(`anvil did not start within ${opts.startTimeoutMs ?? 20_000} ms: ${out.slice(-500)}`),
      );
    }, opts.startTimeoutMs ?? 20_000);
    const onData = (chunk: Buffer): void => {
      // anvil prints its banner once; keep only what is needed to find the listening line.
      if (out.length < 64_000) out += chunk.toString("utf8");
      const m = /Listening on ([\d.]+|\[[^\]]+\]):(\d+)/.exec(out);
      if (m) {
        clearTimeout(timeout);
        child.stdout?.off("data", onData);
        child.stdout?.resume();
        const port = Number(m[2]);
        resolve({ rpcUrl: `http://${host}:${port}`, port, host, chainId, process: child, stop });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (c: Buffer) => {
      if (out.length < 64_000) out += c.toString("utf8");
    });
    child.once("error", (err) => {
      clearTimeout(timeout);
      reject(new AnvilError(`cannot start anvil: ${err.message}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timeout);
      reject(new AnvilError(`anvil exited with code ${code}: ${out.slice(-500)}`));
    });
  });
}
