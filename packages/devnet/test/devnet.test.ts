// The devnet package's own checks that need no running devnet: the state file's new fields round-trip through
// the publisher SDK's parser, a bad one is refused, and a directory that is not a devnet's is never emptied.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseDevnetState } from "@trustedpods/publisher";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DevnetError, devnetPricing, startDevnet } from "../src/index.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "tpod-devnet-pkg-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const base = {
  version: 1,
  rpcUrl: "http://127.0.0.1:8545",
  chainId: 31337,
  contracts: {
    registry: "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0",
    payments: "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512",
    marketplace: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
    token: "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9",
  },
};

describe("devnet state file fields", () => {
  it("keeps the gateway and the provider's IPFS and gateway through the SDK's parser", () => {
    const s = parseDevnetState({
      ...base,
      gateway: { url: "http://localhost:8080/", baseDomain: "localhost" },
      providers: [
        {
          address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
          peerId: "12D3KooWK3dDMMUf4t8CLiWWY2PFBpYmVaM6QRKwJsGX4aQc9rCp",
          multiaddrs: ["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWK3dDMMUf4t8CLiWWY2PFBpYmVaM6QRKwJsGX4aQc9rCp"],
          ipfs: ["/ip4/127.0.0.1/tcp/2/p2p/12D3KooWAreohhFkieMSRSP5k2zUDMrpG2czFKbMgXTV2T9wMa2T"],
          gateway: { url: "http://localhost:8080/", baseDomain: "localhost" },
        },
      ],
    });
    expect(s.gateway).toEqual({ url: "http://localhost:8080/", baseDomain: "localhost" });
    expect(s.providers?.[0]?.ipfs).toHaveLength(1);
    expect(s.providers?.[0]?.gateway?.baseDomain).toBe("localhost");
  });

  it("reads a file without them (older devnets) and refuses a malformed gateway", () => {
    expect(parseDevnetState(base).gateway).toBeUndefined();
    expect(() =>
      parseDevnetState({ ...base, gateway: { url: "ftp://x/", baseDomain: "localhost" } }),
    ).toThrow(/gateway\.url must be an http\(s\) URL/);
    expect(() =>
      parseDevnetState({ ...base, gateway: { url: "http://localhost:1/", baseDomain: "Bad Domain" } }),
    ).toThrow(/gateway\.baseDomain must be a lowercase DNS name/);
  });
});

describe("startDevnet", () => {
  it("prices in the devnet's token without a GPU price (Podman runs no GPUs)", () => {
    const p = devnetPricing("0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9");
    expect(Object.keys(p.prices).sort()).toEqual(["cpu", "memory", "storage"]);
    expect(p.prices.cpu).toBe(10_000_000_000n);
  });

  it("refuses to empty a --dir that holds other files, and leaves them alone", async () => {
    const dir = path.join(tmp, "precious");
    const { mkdir } = await import("node:fs/promises");
    await mkdir(dir);
    await writeFile(path.join(dir, "notes.txt"), "keep me");
    const home = path.join(tmp, "home");
    const err = await startDevnet({ home, dir, chainPort: 0, gatewayPort: 0 }).catch((e) => e);
    expect(err).toBeInstanceOf(DevnetError);
    expect(err.code).toBe("DIR_NOT_DEVNET");
    expect(await readFile(path.join(dir, "notes.txt"), "utf8")).toBe("keep me");
    // The refused start released its lock: the next start is not told a devnet runs.
    const again = await startDevnet({ home, dir, chainPort: 0, gatewayPort: 0 }).catch((e) => e);
    expect(again.code).toBe("DIR_NOT_DEVNET");
  });
});
