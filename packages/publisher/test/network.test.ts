import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type DevnetState, PublisherError } from "../src/index.js";
import {
  loadPolicyFor,
  PodStore,
  readDevnetState,
  resolveKeyRef,
  resolveNetwork,
  unlockKey,
  writeDevnetState,
} from "../src/node/index.js";

const tmp = mkdtempSync(join(tmpdir(), "tpod-network-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const A = (n: number) => `0x${n.toString(16).padStart(40, "0")}`;
const DEVNET_CONTRACTS = { registry: A(1), payments: A(2), marketplace: A(3), token: A(4) };
// anvil's first test key: public, used as the devnet publisher key here.
const DEVNET_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

let homes = 0;
function home(): string {
  const h = join(tmp, `home${homes++}`);
  mkdirSync(h, { recursive: true });
  return h;
}

function devnetState(over: Partial<DevnetState> = {}): DevnetState {
  return {
    version: 1,
    rpcUrl: "http://127.0.0.1:18545",
    chainId: 31337,
    contracts: DEVNET_CONTRACTS as DevnetState["contracts"],
    publisherKey: DEVNET_KEY,
    pid: process.pid,
    ...over,
  };
}

function writeJson(path: string, value: unknown): string {
  writeFileSync(path, JSON.stringify(value));
  return path;
}

async function failure(p: Promise<unknown>): Promise<PublisherError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PublisherError) return err;
    throw err;
  }
  throw new Error("expected a PublisherError");
}

describe("network resolution", () => {
  it("finds a running devnet with no flags or environment, and knows it is the devnet", async () => {
    const h = home();
    const path = await writeDevnetState(h, devnetState());
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const n = await resolveNetwork({ home: h, env: {} });
    expect(n).toMatchObject({
      name: "devnet",
      isDevnet: true,
      rpcUrl: "http://127.0.0.1:18545",
      chainId: 31337,
    });
    expect(n.contracts.registry).toBe(DEVNET_CONTRACTS.registry);
    expect(n.sources.rpcUrl).toBe(`devnet ${path}`);
    expect((await loadPolicyFor(n)).policy).toEqual({ allowInsecureDev: true, releases: "required" });
  });

  it("TPOD_HOME selects the home when no explicit home is given", async () => {
    const h = home();
    await writeDevnetState(h, devnetState({ rpcUrl: "http://127.0.0.1:1" }));
    expect((await resolveNetwork({ env: { TPOD_HOME: h } })).rpcUrl).toBe("http://127.0.0.1:1");
  });

  it("precedence: flags > environment > network file > devnet, part by part", async () => {
    const h = home();
    await writeDevnetState(h, devnetState());
    mkdirSync(join(h, "networks"));
    writeJson(join(h, "networks", "prod.json"), {
      rpcUrl: "https://rpc.example.org",
      chainId: 8453,
      contracts: { registry: A(11), payments: A(12), marketplace: A(13) },
      policy: "prod-policy.yaml",
    });
    const flat = writeJson(join(h, "flat.json"), { registry: A(21), payments: A(22), marketplace: A(23) });

    // Environment RPC over the devnet: the contracts still come from the devnet, but it is no longer "the devnet".
    const envRpc = await resolveNetwork({ home: h, env: { TPOD_RPC_URL: "http://10.0.0.1:8545" } });
    expect(envRpc.rpcUrl).toBe("http://10.0.0.1:8545");
    expect(envRpc.sources).toEqual({ rpcUrl: "TPOD_RPC_URL", contracts: expect.stringMatching(/^devnet /) });
    expect(envRpc.isDevnet).toBe(false);
    expect((await loadPolicyFor(envRpc)).policy).toEqual({ releases: "required" });

    // The --rpc flag beats the environment.
    const flag = await resolveNetwork({
      home: h,
      rpc: "http://10.0.0.2:8545",
      env: { TPOD_RPC_URL: "http://10.0.0.1:8545" },
    });
    expect(flag.rpcUrl).toBe("http://10.0.0.2:8545");

    // A named network from the environment, with its policy path resolved against the networks directory.
    const named = await resolveNetwork({ home: h, env: { TPOD_NETWORK: "prod" } });
    expect(named).toMatchObject({
      name: "prod",
      rpcUrl: "https://rpc.example.org",
      chainId: 8453,
      isDevnet: false,
    });
    expect(named.policyFile).toBe(join(h, "networks", "prod-policy.yaml"));
    // The network file's policy applies unless --policy names another.
    writeFileSync(join(h, "networks", "prod-policy.yaml"), "tee: [snp]\nallowDebug: false\n");
    const fromFile = await loadPolicyFor(named);
    expect(fromFile.policy).toEqual({ tee: ["snp"], allowDebug: false, releases: "required" });
    expect(fromFile.source).toMatch(/network prod policy/);
    const override = join(h, "override.yaml");
    writeFileSync(override, "allowInsecureDev: true\n");
    expect(await loadPolicyFor(named, override)).toEqual({
      policy: { allowInsecureDev: true, releases: "required" },
      source: `--policy ${override}`,
    });

    // --contracts beats the named network's contracts; TPOD_CONTRACTS beats the devnet's.
    const mixed = await resolveNetwork({ home: h, network: "prod", contracts: flat, env: {} });
    expect(mixed.contracts.registry).toBe(A(21));
    expect(mixed.rpcUrl).toBe("https://rpc.example.org");
    const envContracts = await resolveNetwork({ home: h, env: { TPOD_CONTRACTS: flat } });
    expect(envContracts.contracts.registry).toBe(A(21));
    expect(envContracts.rpcUrl).toBe("http://127.0.0.1:18545");

    // --network (a flag) beats TPOD_RPC_URL (the environment).
    const flagNet = await resolveNetwork({
      home: h,
      network: "prod",
      env: { TPOD_RPC_URL: "http://10.0.0.1:8545" },
    });
    expect(flagNet.rpcUrl).toBe("https://rpc.example.org");
  });

  it("a contracts file in devnet or `tpod devnet chain` shape brings its RPC URL and chain id", async () => {
    const h = home();
    const file = writeJson(join(h, "chain.json"), {
      rpcUrl: "http://127.0.0.1:9999",
      chainId: 31337,
      contracts: DEVNET_CONTRACTS,
      accounts: [],
    });
    const n = await resolveNetwork({ home: h, contracts: file, env: {} });
    expect(n).toMatchObject({
      rpcUrl: "http://127.0.0.1:9999",
      chainId: 31337,
      name: "custom",
      isDevnet: false,
    });
    expect(n.contracts.token).toBe(DEVNET_CONTRACTS.token);
  });

  it("with nothing to go on, NO_NETWORK lists what was tried", async () => {
    const h = home();
    const err = await failure(resolveNetwork({ home: h, env: {} }));
    expect(err.code).toBe("NO_NETWORK");
    expect(err.message).toMatch(/no chain found/);
    expect(err.message).toMatch(/--rpc, --contracts, --network: not given/);
    expect(err.message).toMatch(/TPOD_RPC_URL, TPOD_CONTRACTS, TPOD_NETWORK: not set/);
    expect(err.message).toContain(`${join(h, "devnet.json")} not found (start one with \`tpod devnet up\`)`);
    const partial = await failure(resolveNetwork({ home: h, rpc: "http://127.0.0.1:8545", env: {} }));
    expect(partial.message).toMatch(/no contract addresses found/);
  });

  it("a devnet file whose process is gone is stale and not used", async () => {
    const h = home();
    const gone = spawnSync(process.execPath, ["-e", "0"]).pid;
    await writeDevnetState(h, devnetState({ pid: gone }));
    expect((await readDevnetState(h)).state).toBeUndefined();
    const err = await failure(resolveNetwork({ home: h, env: {} }));
    expect(err.message).toMatch(new RegExp(`stale: devnet process ${gone} is gone`));
  });

  it("malformed files fail with NETWORK_MALFORMED naming the file and field", async () => {
    const h = home();
    mkdirSync(join(h, "networks"));
    writeJson(join(h, "networks", "typo.json"), {
      rpcUrl: "https://x.example",
      contracts: DEVNET_CONTRACTS,
      polcy: "x",
    });
    const typo = await failure(resolveNetwork({ home: h, network: "typo", env: {} }));
    expect(typo.code).toBe("NETWORK_MALFORMED");
    expect(typo.message).toMatch(/typo\.json: polcy is not a known key/);
    const missing = await failure(resolveNetwork({ home: h, network: "nope", env: {} }));
    expect(missing.message).toMatch(/--network names network "nope", but .*nope\.json does not exist/);
    const badName = await failure(resolveNetwork({ home: h, env: { TPOD_NETWORK: "../etc" } }));
    expect(badName.code).toBe("NETWORK_MALFORMED");
    writeFileSync(
      join(h, "devnet.json"),
      JSON.stringify({ ...devnetState(), contracts: { registry: "0x12" } }),
    );
    const dev = await failure(resolveNetwork({ home: h, env: {} }));
    expect(dev.message).toMatch(/contracts\.registry must be an address/);
    await expect(resolveNetwork({ home: h, rpc: "not a url", env: {} })).rejects.toThrow(
      /not an http\(s\) URL/,
    );
    await expect(resolveNetwork({ home: h, rpc: "ws://127.0.0.1:8545", env: {} })).rejects.toThrow(
      /http\(s\)/,
    );
  });
});

describe("key selection", () => {
  it("uses the devnet's publisher key on the devnet only", async () => {
    const h = home();
    await writeDevnetState(h, devnetState());
    const dev = await resolveNetwork({ home: h, env: {} });
    const ref = await resolveKeyRef(dev, { home: h, env: {} });
    expect(ref).toMatchObject({ kind: "devnet", address: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266" });
    expect((await unlockKey(ref, dev)).address).toBe("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    const other = await resolveNetwork({ home: h, rpc: "http://10.0.0.1:8545", env: {} });
    expect((await failure(resolveKeyRef(other, { home: h, env: {} }))).code).toBe("NO_KEY");
  });

  it("--key FILE takes a raw hex key file only when it is private; --key ADDRESS needs the keystore", async () => {
    const h = home();
    const file = join(h, "raw.key");
    writeFileSync(file, `${DEVNET_KEY}\n`, { mode: 0o644 });
    const ref = await resolveKeyRef(undefined, { home: h, key: file, env: {} });
    expect(ref.kind).toBe("raw-file");
    expect((await failure(unlockKey(ref, undefined))).code).toBe("FILE_PERMISSIONS");
    rmSync(file);
    writeFileSync(file, `${DEVNET_KEY}\n`, { mode: 0o600 });
    expect((await unlockKey(ref, undefined)).address).toBe("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    const byEnv = await failure(resolveKeyRef(undefined, { home: h, env: { TPOD_KEY: A(9) } }));
    expect(byEnv.code).toBe("KEY_NOT_FOUND");
  });
});

describe("the local pod record", () => {
  const pod = (i: number, name = `pod${i}`) => ({
    podId: `0x${i.toString(16).padStart(64, "a")}` as `0x${string}`,
    name,
    provider: A(100 + i) as `0x${string}`,
    chainId: 31337,
    channel: `0x${"cd".repeat(32)}` as `0x${string}`,
    manifest: "/work/examples/hello/pod.yaml",
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
  });

  it("adds, finds by id, prefix and name, updates and removes; the file is 0600", async () => {
    const store = PodStore.at(home());
    await store.add(pod(1, "hello"));
    await store.add(pod(2, "kv"));
    expect(statSync(store.file).mode & 0o777).toBe(0o600);
    expect((await store.list()).map((p) => p.name)).toEqual(["kv", "hello"]);
    expect((await store.get("hello")).podId).toBe(pod(1).podId);
    expect((await store.get(pod(2).podId.toUpperCase().replace("0X", "0x"))).name).toBe("kv");
    expect((await failure(store.get("0xaaaaaa"))).message).toMatch(/matches 2 pods/);
    expect((await failure(store.add(pod(1)))).code).toBe("POD_RECORD");
    const closed = await store.update(pod(1).podId, 31337, { closedAt: "2026-01-02T00:00:00Z" });
    expect(closed.closedAt).toBe("2026-01-02T00:00:00Z");
    expect(closed.updatedAt).toBeDefined();
    expect(await store.remove(pod(2).podId, 31337)).toBe(true);
    expect(await store.remove(pod(2).podId, 31337)).toBe(false);
    expect((await store.list()).map((p) => p.name)).toEqual(["hello"]);
    expect(await store.list({ chainId: 1 })).toEqual([]);
  });

  it("refuses malformed records", async () => {
    const store = PodStore.at(home());
    await expect(store.add({ ...pod(1), podId: "0x1234" as `0x${string}` })).rejects.toThrow(
      /podId must be 0x and 64/,
    );
    writeFileSync(store.file, "{not json");
    await expect(store.list()).rejects.toThrow(/not valid JSON/);
  });

  it("concurrent writers do not lose each other's records (lock + atomic rename)", async () => {
    const h = home();
    await Promise.all(Array.from({ length: 12 }, (_, i) => PodStore.at(h).add(pod(i + 1))));
    expect(await PodStore.at(h).list()).toHaveLength(12);
  });
});
