// tpod provider register|update|deregister|pods|earnings against a real anvil dev chain, in process.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  claim,
  getChannel,
  getProvider,
  isRegistered,
  openChannel,
  balanceOf as paymentsBalance,
  refund,
  requestClose,
  royaltiesHash,
  signQuoteFor,
  specHash,
} from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { loadOrCreatePeerKey } from "@trustedpods/p2p";
import { BillingStore, StateDb } from "@trustedpods/provider";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/main.js";

let chain: DevChain;
let dir: string;
let configFile: string;
let peerId: string;
const PROVIDER = 3;
const PUBLISHER = 4;

function configYaml(cpuPrice: string): string {
  return `dataDir: data
p2p:
  listen: ["/ip4/127.0.0.1/tcp/0"]
  announce: ["/ip4/127.0.0.1/tcp/4001"]
chain:
  rpcUrl: ${JSON.stringify(chain.rpcUrl)}
  payments: ${JSON.stringify(chain.contracts.payments)}
  registry: ${JSON.stringify(chain.contracts.registry)}
  accountKeyFile: account.key
pricing:
  token: ${JSON.stringify(chain.contracts.token)}
  symbol: TPT
  decimals: 18
  prices:
    cpu: ${cpuPrice}
    memory: 200
billing:
  minNoticeSeconds: 120
attester: insecure-dev
`;
}

async function tpod(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

beforeAll(async () => {
  chain = await startDevChain({ port: 0 });
  dir = await mkdtemp(path.join(tmpdir(), "tpod-operator-"));
  configFile = path.join(dir, "provider.yaml");
  await writeFile(configFile, configYaml("1000"));
  await mkdir(path.join(dir, "data"), { recursive: true, mode: 0o700 });
  await writeFile(path.join(dir, "data", "account.key"), `${chain.accounts[PROVIDER]!.privateKey}\n`, {
    mode: 0o600,
  });
  const key = await loadOrCreatePeerKey(path.join(dir, "data", "peer.key"));
  peerId = key.publicKey.toString();
});

afterAll(async () => {
  await chain?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("tpod provider register|update|deregister", () => {
  it("refuses update and deregister before register, with what to do", async () => {
    for (const cmd of ["update", "deregister"]) {
      const r = await tpod("provider", cmd, "--config", configFile);
      expect(r.code, cmd).toBe(1);
      expect(r.err).toMatch(/is not registered: use `tpod provider register` first/);
    }
  });

  it("registers with the config's pricing, then refuses a second register", async () => {
    const r = await tpod("provider", "register", "--config", configFile, "--name", "op-test", "--json");
    expect(r.code, r.err).toBe(0);
    const result = JSON.parse(r.out);
    expect(result.action).toBe("register");
    const provider = chain.accounts[PROVIDER]!.address;
    expect(result.provider).toBe(provider);
    const ctx = chain.context(0);
    expect(await isRegistered(ctx, provider)).toBe(true);
    const entry = await getProvider(ctx, provider);
    expect(entry.name).toBe("op-test");
    expect(entry.teeTypes).toEqual(["insecure-dev"]);
    expect(entry.multiaddrs).toEqual([`/ip4/127.0.0.1/tcp/4001/p2p/${peerId}`]);
    expect(Number(entry.minNoticeSeconds)).toBe(120);
    expect(entry.token.toLowerCase()).toBe(chain.contracts.token.toLowerCase());
    expect(entry.prices.map((p) => [Number(p.resource), p.pricePerUnitSecond])).toEqual([
      [0, 1000n],
      [1, 200n],
    ]);
    const again = await tpod("provider", "register", "--config", configFile);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already registered: use `tpod provider update`/);
  });

  it("update writes the config's new prices", async () => {
    await writeFile(configFile, configYaml("2500"));
    const r = await tpod("provider", "update", "--config", configFile, "--region", "eu", "--json");
    expect(r.code, r.err).toBe(0);
    const entry = await getProvider(chain.context(0), chain.accounts[PROVIDER]!.address);
    expect(entry.prices.find((p) => Number(p.resource) === 0)?.pricePerUnitSecond).toBe(2500n);
    expect(entry.regions).toEqual(["eu"]);
  });

  it("names the missing config key when chain.registry is absent", async () => {
    const other = path.join(dir, "no-registry.yaml");
    await writeFile(other, (await readFile(configFile, "utf8")).replace(/ {2}registry: .*\n/, ""));
    const r = await tpod("provider", "register", "--config", other);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/chain\.registry is not set/);
  });

  it("deregisters", async () => {
    const r = await tpod("provider", "deregister", "--config", configFile);
    expect(r.code, r.err).toBe(0);
    expect(await isRegistered(chain.context(0), chain.accounts[PROVIDER]!.address)).toBe(false);
  });
});

describe("tpod provider pods|earnings", () => {
  const podId = `0x${"ab".repeat(32)}` as Hex;

  it("reports a config whose daemon never ran", async () => {
    const fresh = await mkdtemp(path.join(tmpdir(), "tpod-operator-fresh-"));
    try {
      const f = path.join(fresh, "provider.yaml");
      await writeFile(f, configYaml("1"));
      const r = await tpod("provider", "pods", "--config", f);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/no daemon state at .*state\.sqlite: the daemon has not run/);
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it("earnings shows a claimed channel and --withdraw moves the balance to the wallet", async () => {
    const provider = privateKeyToAccount(chain.accounts[PROVIDER]!.privateKey);
    const publisher = chain.accounts[PUBLISHER]!.address;
    const providerCtx = chain.context(PROVIDER);
    const publisherCtx = chain.context(PUBLISHER);
    const rate = 1_000_000n;
    const quote = {
      provider: provider.address,
      publisher,
      podId,
      token: chain.contracts.token,
      ratePerSecond: rate,
      minNoticeSeconds: 120,
      expiry: BigInt(Math.floor(Date.now() / 1000) + 3600),
      specHash: specHash({ cpu: 100n, memory: 64n, storage: 0n, gpu: 0n }),
      royaltiesHash: royaltiesHash([]),
    };
    const sig = await signQuoteFor(providerCtx, provider, quote);
    await openChannel(publisherCtx, {
      quote,
      quoteSignature: sig,
      podId,
      deposit: rate * 10_000n,
      noticeSeconds: 120,
    });
    await chain.publicClient.request({ method: "evm_increaseTime" as never, params: [100] as never });
    await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await claim(providerCtx, publisher, podId, rate * 50n);
    // What the daemon's billing module records for a checked channel (its own store, its own schema).
    const state = StateDb.open(path.join(dir, "data"));
    try {
      new BillingStore(state.db).putChecked({
        podKey: "p-test",
        podId,
        publisher,
        provider: provider.address,
        channelId: `0x${"00".repeat(32)}`,
        token: chain.contracts.token,
        ratePerSecond: rate,
        requiredRate: rate,
        reserved: { cpuMillis: 100n, memoryMiB: 32n, storageGiB: 0n, gpu: 0n },
        observed: null,
      });
    } finally {
      state.close();
    }
    // pods: the daemon's pods table is empty (read-only open succeeds).
    const pods = await tpod("provider", "pods", "--config", configFile, "--json");
    expect(pods.code, pods.err).toBe(0);
    expect(JSON.parse(pods.out)).toEqual([]);

    const e = await tpod("provider", "earnings", "--config", configFile, "--json");
    expect(e.code, e.err).toBe(0);
    const earnings = JSON.parse(e.out);
    expect(BigInt(earnings.withdrawable)).toBe(rate * 50n);
    expect(earnings.channels).toHaveLength(1);
    expect(earnings.channels[0].podId).toBe(podId);
    expect(BigInt(earnings.channels[0].claimed)).toBe(rate * 50n);
    expect(BigInt(earnings.channels[0].claimable)).toBeGreaterThan(0n);
    expect(BigInt(earnings.claimedTotal)).toBe(rate * 50n);

    const w = await tpod("provider", "earnings", "--config", configFile, "--withdraw", "--json");
    expect(w.code, w.err).toBe(0);
    expect(BigInt(JSON.parse(w.out).withdrawn.amount)).toBe(rate * 50n);
    expect(await paymentsBalance(providerCtx, provider.address, chain.contracts.token)).toBe(0n);

    const human = await tpod("provider", "earnings", "--config", configFile);
    expect(human.out).toContain(
      "earned 0.00000000005 TPT in total (your share of 0.00000000005 TPT claimed over 1 channel(s)); withdrawn 0.00000000005 TPT; withdrawable 0 TPT",
    );
  });

  it("earnings count settled channels too, so the totals add up: earned = withdrawn + withdrawable", async () => {
    const provider = privateKeyToAccount(chain.accounts[PROVIDER]!.privateKey);
    const publisher = chain.accounts[PUBLISHER]!.address;
    const providerCtx = chain.context(PROVIDER);
    const publisherCtx = chain.context(PUBLISHER);
    const settledPod = `0x${"cd".repeat(32)}` as Hex;
    const rate = 1_000_000n;
    const quote = {
      provider: provider.address,
      publisher,
      podId: settledPod,
      token: chain.contracts.token,
      ratePerSecond: rate,
      minNoticeSeconds: 120,
      expiry: BigInt(Math.floor(Date.now() / 1000) + 3600),
      specHash: specHash({ cpu: 100n, memory: 64n, storage: 0n, gpu: 0n }),
      royaltiesHash: royaltiesHash([]),
    };
    await openChannel(publisherCtx, {
      quote,
      quoteSignature: await signQuoteFor(providerCtx, provider, quote),
      podId: settledPod,
      deposit: rate * 1000n,
      noticeSeconds: 120,
    });
    const mine = async (seconds: number) => {
      await chain.publicClient.request({ method: "evm_increaseTime" as never, params: [seconds] as never });
      await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    };
    await mine(100);
    await claim(providerCtx, publisher, settledPod, rate * 60n);
    // The publisher closes and, after the notice, settles: the contract deletes the channel's state, and the
    // refund's own claim pays the provider the rest of what accrued up to the close.
    await requestClose(publisherCtx, provider.address, settledPod);
    await mine(121);
    await refund(publisherCtx, provider.address, settledPod);
    expect(
      (await getChannel(publisherCtx, { publisher, provider: provider.address, podId: settledPod }))
        .finalized,
    ).toBe(true);

    const e = JSON.parse((await tpod("provider", "earnings", "--config", configFile, "--json")).out);
    const settled = e.channels.find((c: { podId: string }) => c.podId === settledPod);
    expect(settled).toMatchObject({ state: "settled", closed: true, claimable: "0" });
    // It paid what accrued up to the close: the 100 s before the close request plus its 120 s notice (and a second or two).
    expect(BigInt(settled.claimed)).toBeGreaterThanOrEqual(rate * 220n);
    expect(BigInt(settled.deposit)).toBe(rate * 1000n);
    expect(BigInt(settled.claimed) + BigInt(settled.refunded)).toBe(rate * 1000n);
    const withdrawable = await paymentsBalance(providerCtx, provider.address, chain.contracts.token);
    expect(BigInt(e.withdrawable)).toBe(withdrawable);
    expect(BigInt(e.earned)).toBe(BigInt(e.withdrawn) + withdrawable);
    expect(BigInt(e.claimedTotal)).toBeGreaterThanOrEqual(withdrawable);
    const human = await tpod("provider", "earnings", "--config", configFile);
    expect(human.out).toMatch(
      new RegExp(
        `pod ${settledPod} {2}settled: claimed [0-9.]+ TPT of 0\\.000000001 TPT, [0-9.]+ TPT refunded`,
      ),
    );
  });

  it("pods lists what the daemon's state holds, deleted ones only with --all", async () => {
    const state = StateDb.open(path.join(dir, "data"));
    try {
      for (const [i, phase] of (["running", "deleted"] as const).entries()) {
        state.insertPod({
          id: `p${i}`,
          publisher: chain.accounts[PUBLISHER]!.address,
          podId: `0x${String(i).repeat(64)}`,
          manifest: new Uint8Array([1]),
          phase,
          message: "",
          channel: null,
          endpoints: [
            { container: "web", containerPort: 80, protocol: "http", url: "http://a.localhost:1/" },
          ],
          images: {},
        });
      }
    } finally {
      state.close();
    }
    const r = await tpod("provider", "pods", "--config", configFile, "--json");
    expect(r.code, r.err).toBe(0);
    const pods = JSON.parse(r.out);
    expect(pods.map((p: { phase: string }) => p.phase)).toEqual(["running"]);
    expect(pods[0].endpoints[0].url).toBe("http://a.localhost:1/");
    const all = await tpod("provider", "pods", "--config", configFile, "--all", "--json");
    expect(JSON.parse(all.out)).toHaveLength(2);
    const human = await tpod("provider", "pods", "--config", configFile);
    expect(human.out).toMatch(/running .*\n.*http:\/\/a\.localhost:1\//);
  });
});
