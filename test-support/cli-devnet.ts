// Test-only: what the cli tests that drive `tpod` in process against a devnet share. The devnet as `tpod devnet up`
// composes it (chain, IPFS node, provider daemon with billing and gateway), started in process with a fresh
// $TPOD_HOME (its devnet.json is what the commands find), a block mined every second, and the in-process `tpod`
// runner that captures what a command prints.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { DevChain } from "@trustedpods/chain/node";
import { run } from "@trustedpods/cli";
import { type Devnet, startDevnet } from "@trustedpods/devnet";
import type { Daemon } from "@trustedpods/provider";
import type { ResolvedNetwork } from "@trustedpods/publisher";
import { type Address, erc20Abi, toHex } from "viem";
import { localhostLookup } from "./localhost.js";

const exec = promisify(execFile);

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Runs `tpod ARGS` in this process; every line it printed, to stdout and stderr apart. */
export async function cli(args: string[]): Promise<CliResult> {
  let out = "";
  let err = "";
  const line = (t: string) => (t.endsWith("\n") ? t : `${t}\n`);
  const code = await run(args, {
    out: (t) => {
      out += line(t);
    },
    err: (t) => {
      err += line(t);
    },
  });
  return { code, out, err };
}

/** GET a URL as it is; NAME.localhost resolves to loopback as browsers and curl do (glibc does not). */
export function getUrl(url: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs, lookup: localhostLookup }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** busybox (with applet links) from scratch, committed into the local Podman store under `tag`. */
export async function buildBusyboxImage(tag: string): Promise<void> {
  const ctr = (await exec("buildah", ["from", "scratch"])).stdout.trim();
  try {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await exec("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await exec("buildah", ["commit", "-q", ctr, tag]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
}

export interface CliDevnet {
  tmp: string;
  devnet: Devnet;
  chain: DevChain;
  daemon: Daemon;
  /** The devnet as the publisher SDK resolves a network. */
  network: ResolvedNetwork;
  /** Moves the chain's clock `seconds` on and mines a block at the new time. */
  advance(seconds: number): Promise<void>;
  /** `who`'s balance of the devnet's token. */
  tokenBalance(who: Address): Promise<bigint>;
  /** Stops the miner and the devnet, deletes the files and gives $TPOD_HOME back. */
  stop(): Promise<void>;
}

/**
 * Starts a devnet in a fresh temporary directory (prefix `tmpPrefix`, engine owner `engineOwner`) with $TPOD_HOME
 * inside it; `alongside` (image builds) runs meanwhile and must succeed too.
 */
export async function startCliDevnet(opts: {
  tmpPrefix: string;
  engineOwner: string;
  alongside?: Promise<unknown>[];
}): Promise<CliDevnet> {
  const savedHome = process.env.TPOD_HOME;
  const tmp = await mkdtemp(join(tmpdir(), opts.tmpPrefix));
  const home = join(tmp, "home");
  process.env.TPOD_HOME = home;
  const restore = async () => {
    // The devnet's IPFS peer store may still flush a file after it stopped (ENOTEMPTY): retry.
    await rm(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    if (savedHome === undefined) delete process.env.TPOD_HOME;
    else process.env.TPOD_HOME = savedHome;
  };
  const [started, ...rest] = await Promise.allSettled([
    startDevnet({ home, gatewayPort: 0, chainPort: 0, engineOwner: opts.engineOwner, logLevel: "silent" }),
    ...(opts.alongside ?? []),
  ]);
  const failed = [started, ...rest].find((r) => r.status === "rejected");
  if (failed || started.status === "rejected") {
    if (started.status === "fulfilled") await started.value.stop();
    await restore();
    throw (failed as PromiseRejectedResult).reason;
  }
  const devnet = started.value;
  const chain = devnet.chain;
  // The devnet's provider counts a confirmation and anvil mines only on transactions: produce a block every
  // second, as a real chain does, so a new channel becomes visible to the provider (deploy keeps asking).
  const miner = setInterval(() => {
    chain.publicClient.request({ method: "evm_mine" as never, params: [] as never }).catch(() => {});
  }, 1000);
  return {
    tmp,
    devnet,
    chain,
    daemon: devnet.daemon,
    network: {
      name: "devnet",
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      contracts: chain.contracts,
      isDevnet: true,
      sources: { rpcUrl: "test", contracts: "test" },
    },
    async advance(seconds) {
      await chain.publicClient.request({
        method: "evm_increaseTime" as never,
        params: [toHex(seconds)] as never,
      });
      await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    },
    tokenBalance: (who) =>
      chain.publicClient.readContract({
        address: chain.contracts.token,
        abi: erc20Abi,
        functionName: "balanceOf",
        args: [who],
      }),
    async stop() {
      clearInterval(miner);
      await devnet.stop();
      await restore();
    },
  };
}
