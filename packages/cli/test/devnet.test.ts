import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { loadPricing } from "@trustedpods/protocol/node";
import { createPublicClient, erc20Abi, getAddress, http } from "viem";
import { describe, expect, it } from "vitest";
import { run } from "../src/main.js";

const bin = resolve(import.meta.dirname, "../bin/tpod");
const built = existsSync(resolve(import.meta.dirname, "../dist/main.js"));
const examplePricing = resolve(import.meta.dirname, "../../../examples/pricing.yaml");

describe("tpod devnet chain", () => {
  it("rejects a bad --port as a usage error", async () => {
    const err: string[] = [];
    const code = await run(["devnet", "chain", "--port", "70000"], {
      out: () => {},
      err: (t) => err.push(t),
    });
    expect(code).toBe(2);
    expect(err.join("")).toMatch(/--port must be an integer/);
  });

  it.skipIf(!built)("prints one JSON line with a working chain and stops cleanly on SIGTERM", async () => {
    const child = spawn(bin, ["devnet", "chain", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      const line = await new Promise<string>((resolveLine, reject) => {
        createInterface({ input: child.stdout! }).once("line", resolveLine);
        child.once("exit", (code) => reject(new Error(`tpod exited with ${code} before printing`)));
      });
      const info = JSON.parse(line);
      expect(info.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(info.accounts).toHaveLength(10);
      expect(info.accounts[0].label).toMatch(/TEST KEY/);
      const client = createPublicClient({ transport: http(info.rpcUrl) });
      expect(await client.getChainId()).toBe(info.chainId);
      for (const name of ["registry", "payments", "marketplace", "token"]) {
        const code = await client.getCode({ address: info.contracts[name] });
        expect(code?.length ?? 0, name).toBeGreaterThan(2);
      }
      // examples/pricing.yaml names the token where every fresh dev chain deploys it, with its symbol.
      const example = loadPricing(examplePricing);
      expect(getAddress(info.contracts.token)).toBe(getAddress(example.token));
      const symbol = await client.readContract({
        address: info.contracts.token,
        abi: erc20Abi,
        functionName: "symbol",
      });
      expect(symbol).toBe(example.symbol);
      const decimals = await client.readContract({
        address: info.contracts.token,
        abi: erc20Abi,
        functionName: "decimals",
      });
      expect(decimals).toBe(example.decimals);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });
});
