// End to end: the publisher flow against the real provider daemon as `tpod provider serve` wires it (real billing
// on anvil, real HTTP gateway, Podman, Helia, libp2p). Images are built locally with buildah into the Podman
// store and deployed from there: the SDK's deploy() and the `tpod deploy|pods|status|logs|update|fund|close|delete`
// commands over a devnet state file, then the money is followed on chain.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  balanceOf,
  channelHistory,
  getChannel,
  Resource,
  registerProvider,
  withdraw,
} from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import type { IpfsNode } from "@trustedpods/ipfs";
import { createP2PNode, type P2PNode } from "@trustedpods/p2p";
import { parseManifest } from "@trustedpods/protocol";
import { Daemon, loadConfig } from "@trustedpods/provider";
import {
  connectNetwork,
  DEVNET_POLICY,
  type DeployProgress,
  depositFor,
  PublisherError,
  type ResolvedNetwork,
} from "@trustedpods/publisher";
import { deploy, PodStore, writeDevnetState } from "@trustedpods/publisher/node";
import { type Address, erc20Abi, type Hex, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PodmanEngine } from "../../provider/src/engine/podman.js";
import {
  haveTools,
  providerConfigYaml,
  startPublisherIpfs,
  waitFor,
} from "../../provider/test/daemon-helpers.js";
import { run } from "../src/main.js";

const exec = promisify(execFile);
if (!haveTools) console.warn("SKIP: deploy tests need podman, buildah and busybox-static");

const uid = randomBytes(4).toString("hex");
const IMAGE = `localhost/tpod-deploy-${uid}:latest`;
const savedHome = process.env.TPOD_HOME;
let tmp: string;
let chain: DevChain;
let daemon: Daemon;
let pubIpfs: IpfsNode;
let node: P2PNode;
let network: ResolvedNetwork;

/** busybox (with applet links) from scratch, committed into the local Podman store under IMAGE. */
async function buildImage(): Promise<void> {
  const ctr = (await exec("buildah", ["from", "scratch"])).stdout.trim();
  try {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await exec("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await exec("buildah", ["commit", "-q", ctr, IMAGE]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
}

/** GET an endpoint URL as it is; NAME.localhost resolves to loopback as browsers and curl do (glibc does not). */
function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      url,
      {
        timeout: 10_000,
        lookup: (host, o, cb) => {
          const done = cb as (e: Error | null, a?: unknown, f?: number) => void;
          if (host !== "localhost" && !host.endsWith(".localhost"))
            return done(new Error(`unexpected host ${host}`));
          if ((o as { all?: boolean }).all) return done(null, [{ address: "127.0.0.1", family: 4 }]);
          return done(null, "127.0.0.1", 4);
        },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await run(args, {
    out: (t) => {
      out += t.endsWith("\n") ? t : `${t}\n`;
    },
    err: (t) => {
      err += t.endsWith("\n") ? t : `${t}\n`;
    },
  });
  return { code, out, err };
}

const httpManifest = (name: string, body: string) => `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: ${name}
spec:
  containers:
    - name: web
      image: ${IMAGE}
      command: [sh, -c]
      args: ["mkdir -p /www && echo '${body}' > /www/index.html && echo started ${name} && exec httpd -f -p 8080 -h /www"]
      ports:
        - containerPort: 8080
          http: {}
      resources: {cpu: 100m, memory: 32Mi, storage: 64Mi}
`;

// A key-value store in busybox: files under /data (persistent) served on a raw TCP port, the secret copied in.
const kvManifest = (version: string) => `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: kv
spec:
  containers:
    - name: kv
      image: ${IMAGE}
      command: [sh, -c]
      args: ["cp /run/auth/pass /data/pass; echo ${version} > /data/${version}; exec httpd -f -p 7000 -h /data"]
      ports:
        - containerPort: 7000
          tcp: {}
      volumeMounts:
        - {name: data, mountPath: /data}
        - {name: auth, mountPath: /run/auth/pass, readOnly: true}
      resources: {cpu: ${version === "v1" ? "100m" : "200m"}, memory: 32Mi, storage: 64Mi}
  volumes:
    - name: data
      persistent: {size: 64Mi}
    - name: auth
      secret: {file: ./pass.txt}
`;

const twoManifest = `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: duo
spec:
  containers:
    - name: backend
      image: ${IMAGE}
      command: [sh, -c]
      args: ["mkdir -p /srv && echo from-backend > /srv/index.html && exec httpd -f -p 9090 -h /srv"]
      resources: {cpu: 100m, memory: 32Mi}
    - name: frontend
      image: ${IMAGE}
      command: [sh, -c]
      args: ["mkdir -p /www; while true; do wget -q -O /www/index.html backend:9090/ ; sleep 1; done & exec httpd -f -p 8080 -h /www"]
      ports:
        - containerPort: 8080
          http: {}
      resources: {cpu: 100m, memory: 32Mi}
`;

beforeAll(async () => {
  if (!haveTools) return;
  tmp = await mkdtemp(join(tmpdir(), "tpod-deploy-test-"));
  process.env.TPOD_HOME = join(tmp, "home");
  [chain, pubIpfs] = await Promise.all([
    startDevChain(),
    startPublisherIpfs(join(tmp, "pub-ipfs")),
    buildImage(),
  ]);
  const keyFile = join(tmp, "account.key");
  await writeFile(keyFile, `${chain.accounts[1]!.privateKey}\n`, { mode: 0o600 });
  const cfgFile = join(tmp, "provider.yaml");
  await writeFile(
    cfgFile,
    providerConfigYaml({
      dataDir: join(tmp, "data"),
      chain,
      accountKeyFile: keyFile,
      owner: `d${uid}`,
      ipfsPeers: pubIpfs.multiaddrs(),
    }).replace("chain:\n", "chain:\n  confirmations: 0\n"),
  );
  daemon = await Daemon.start(loadConfig(cfgFile), {});
  // The same prices as the daemon's config, so the Registry price and the quote agree.
  await registerProvider(chain.context(1), {
    name: "local",
    regions: ["local"],
    multiaddrs: daemon.info().multiaddrs,
    metadataCid: "",
    teeTypes: ["insecure-dev"],
    token: chain.contracts.token,
    minNoticeSeconds: 600,
    prices: [
      { resource: Resource.cpu, pricePerUnitSecond: 1000n },
      { resource: Resource.memory, pricePerUnitSecond: 200n },
      { resource: Resource.storage, pricePerUnitSecond: 3000n },
    ],
  });
  // What `tpod devnet up` writes; its IPFS addresses are the provider's own node, so the CLI's upload node,
  // connected to it, serves the blocks the provider asks for.
  await writeDevnetState(process.env.TPOD_HOME, {
    version: 1,
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    contracts: chain.contracts,
    publisherKey: chain.accounts[2]!.privateKey,
    providers: [
      { address: daemon.info().provider, peerId: daemon.info().peerId, multiaddrs: daemon.info().multiaddrs },
    ],
    ipfs: { multiaddrs: daemon.info().ipfs },
    pid: process.pid,
  });
  network = {
    name: "devnet",
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    contracts: chain.contracts,
    isDevnet: true,
    sources: { rpcUrl: "test", contracts: "test" },
  };
  node = await createP2PNode();
}, 240_000);

afterAll(async () => {
  if (!haveTools) return;
  await node?.stop();
  if (daemon) {
    const engine = daemon.engine as PodmanEngine;
    for (const m of await engine.listPods()) await engine.remove(m.podId, { images: true });
    await daemon.stop();
  }
  await pubIpfs?.stop();
  await chain?.stop();
  await exec("buildah", ["rmi", "-f", IMAGE]).catch(() => {});
  await rm(tmp, { recursive: true, force: true });
  await rm(`/dev/shm/tpod-secrets-d${uid}`, { recursive: true, force: true });
  if (savedHome === undefined) delete process.env.TPOD_HOME;
  else process.env.TPOD_HOME = savedHome;
}, 120_000);

async function advance(seconds: number): Promise<void> {
  await chain.publicClient.request({
    method: "evm_increaseTime" as never,
    params: [toHex(seconds)] as never,
  });
  await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
}

const tokenBalance = (who: Address) =>
  chain.publicClient.readContract({
    address: chain.contracts.token,
    abi: erc20Abi,
    functionName: "balanceOf",
    args: [who],
  });

describe.skipIf(!haveTools)("deploy", () => {
  it("SDK: deploys a locally built HTTP pod, reports every step, and the URL answers through the gateway", async () => {
    const account = privateKeyToAccount(chain.accounts[3]!.privateKey);
    const clients = await connectNetwork(network, { account });
    const events: DeployProgress[] = [];
    const store = PodStore.at(join(tmp, "sdk-home"));
    const pod = parseManifest(httpManifest("hello", "hello from the sdk"), "hello.yaml");
    const r = await deploy({
      pod,
      manifestPath: join(tmp, "hello.yaml"),
      network,
      clients,
      account,
      policy: { policy: DEVNET_POLICY, source: "devnet default" },
      node,
      ipfs: pubIpfs,
      store,
      onProgress: (e) => events.push(e),
    });
    expect(r.provider).toBe(daemon.info().provider);
    expect(r.endpoints.http).toHaveLength(1);
    expect(r.endpoints.http[0]).toMatch(/^http:\/\/web-8080-[0-9a-f]{12}\.localhost:\d+\/$/);
    expect((await waitFor("the pod's URL", async () => (await get(r.endpoints.http[0]!)).body)).trim()).toBe(
      "hello from the sdk",
    );
    const done = events.filter((e) => e.phase === "done").map((e) => e.step);
    for (const s of ["provider", "attest", "upload", "quote", "channel", "provision"])
      expect(done).toContain(s);
    expect(events.every((e) => e.phase === "start" || typeof e.ms === "number")).toBe(true);
    const ch = await getChannel(clients.context, {
      publisher: account.address,
      provider: r.provider,
      podId: r.podId,
    });
    expect([ch.exists, ch.ratePerSecond, ch.deposit]).toEqual([true, r.ratePerSecond, r.deposit]);
    expect((await store.get(r.podId)).channel).toBe(r.channel);
  }, 120_000);

  it("refuses a deposit below the provider's minimum before uploading anything, with the amount that works", async () => {
    const account = privateKeyToAccount(chain.accounts[3]!.privateKey);
    const clients = await connectNetwork(network, { account });
    const pod = parseManifest(httpManifest("small", "x"), "small.yaml");
    const err = await deploy({
      pod,
      network,
      clients,
      account,
      policy: { policy: DEVNET_POLICY, source: "devnet default" },
      node,
      ipfs: pubIpfs,
      funds: "0.0000000001",
      openLocalImage: () => {
        throw new Error("must not upload");
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublisherError);
    const e = err as PublisherError;
    expect(e.code).toBe("DEPOSIT_TOO_SMALL");
    // rate = 100 m × 1000 + 32 MiB × 200 + 64 MiB of storage at 3000 per GiB-second
    const rate = BigInt(e.details!.ratePerSecond!);
    const offered = 100_000_000n / rate;
    expect(e.message).toBe(
      `deposit too small: the provider wants at least 3600 s, you offered ${offered} s; use --funds ${e.details!.suggestedFormatted}`,
    );
    // The suggestion is enough.
    expect(depositFor({ ratePerSecond: rate, funds: BigInt(e.details!.suggested!), decimals: 18 })).toBe(
      BigInt(e.details!.suggested!),
    );
    // The CLI says the same and exits 1.
    const manifest = join(tmp, "small.yaml");
    await writeFile(manifest, httpManifest("small", "x"));
    const c = await cli(["deploy", manifest, "--funds", "0.0000000001"]);
    expect(c.code).toBe(1);
    expect(c.err).toContain("deposit too small: the provider wants at least 3600 s, you offered");
    expect(c.err).toContain("use --funds 0.");
    expect((await cli(["deploy", manifest, "--funds", "1e5"])).code).toBe(2);
  }, 60_000);

  it("CLI: a key-value pod with a TCP port, a persistent volume and a secret; an update keeps its data", async () => {
    await writeFile(join(tmp, "pass.txt"), "s3cret-pass\n");
    const v1 = join(tmp, "kv.yaml");
    await writeFile(v1, kvManifest("v1"));
    const d = await cli(["deploy", v1, "--json"]);
    expect(d.code, d.err).toBe(0);
    const out = JSON.parse(d.out) as {
      podId: Hex;
      endpoints: { tcp: { container: string; port: number; address: string }[] };
    };
    expect(out.endpoints.tcp).toHaveLength(1);
    expect(out.endpoints.tcp[0]).toMatchObject({ container: "kv", port: 7000 });
    const base = `http://${out.endpoints.tcp[0]!.address}`;
    expect((await waitFor("kv", async () => (await get(`${base}/pass`)).body)).trim()).toBe("s3cret-pass");
    expect((await get(`${base}/v1`)).body.trim()).toBe("v1");
    const v2 = join(tmp, "kv2.yaml");
    await writeFile(v2, kvManifest("v2"));
    const u = await cli(["update", "kv", v2, "--json"]);
    expect(u.code, u.err).toBe(0);
    const upd = JSON.parse(u.out);
    expect(upd.rateChanged).toBe(true);
    const base2 = `http://${upd.endpoints.tcp[0].address}`;
    expect((await waitFor("kv v2", async () => (await get(`${base2}/v2`)).body)).trim()).toBe("v2");
    // v1's file survived the update: the persistent volume was kept.
    expect((await get(`${base2}/v1`)).body.trim()).toBe("v1");
    const publisher = privateKeyToAccount(chain.accounts[2]!.privateKey).address;
    const ch = await getChannel(chain.context(2, 0), {
      publisher,
      provider: daemon.info().provider,
      podId: out.podId,
    });
    expect(ch.ratePerSecond).toBe(BigInt(upd.ratePerSecond));
  }, 180_000);

  it("CLI: a two-container pod whose frontend reaches the backend by name", async () => {
    const m = join(tmp, "duo.yaml");
    await writeFile(m, twoManifest);
    const d = await cli(["deploy", m, "--json"]);
    expect(d.code, d.err).toBe(0);
    const out = JSON.parse(d.out) as { endpoints: { http: string[] } };
    expect(
      (
        await waitFor("frontend", async () => {
          const r = await get(out.endpoints.http[0]!);
          return r.status === 200 && r.body.includes("from-backend") && r.body;
        })
      ).trim(),
    ).toBe("from-backend");
  }, 120_000);
  // Last: it moves the chain's clock ahead of the wall clock, which the provider's quote expiry uses.
  it("CLI: deploy --json, pods, status, logs, fund; delete and close move the money as expected", async () => {
    const manifest = join(tmp, "web.yaml");
    await writeFile(manifest, httpManifest("web", "hello from the cli"));
    const d = await cli(["deploy", manifest, "--json", "--funds", "0.001"]);
    expect(d.err).toContain("✓ attested");
    expect(d.code).toBe(0);
    const out = JSON.parse(d.out) as {
      podId: Hex;
      provider: Address;
      channel: Hex;
      endpoints: { http: string[]; tcp: unknown[] };
    };
    expect(Object.keys(out)).toEqual(["podId", "provider", "channel", "endpoints"]);
    expect(Object.keys(out.endpoints)).toEqual(["http", "tcp"]);
    expect((await waitFor("the URL", async () => (await get(out.endpoints.http[0]!)).body)).trim()).toBe(
      "hello from the cli",
    );
    const pods = JSON.parse((await cli(["pods", "--json"])).out) as { podId: string; phase: string }[];
    expect(pods.find((p) => p.podId === out.podId)?.phase).toBe("running");
    const st = JSON.parse((await cli(["status", out.podId.slice(0, 10), "--json"])).out);
    expect(st.phase).toBe("running");
    expect(st.containers[0].state).toBe("running");
    expect(st.billing.deposit).toBe(10n ** 15n + "");
    const logs = await cli(["logs", "web", "--json", "--container", "web"]);
    expect(logs.code).toBe(0);
    expect(logs.out).toContain("started web");
    // Top up, then let time pass and the provider claim.
    const publisher = privateKeyToAccount(chain.accounts[2]!.privateKey).address;
    const provider = out.provider;
    const ctx = chain.context(2, 0);
    const key = { publisher, provider, podId: out.podId };
    const f = await cli(["fund", "web", "0.002", "--json"]);
    expect(f.code).toBe(0);
    expect((await getChannel(ctx, key)).deposit).toBe(3n * 10n ** 15n);
    await advance(300);
    await daemon.billing!.tick();
    const claimed = (await getChannel(ctx, key)).claimed;
    expect(claimed).toBeGreaterThanOrEqual((await getChannel(ctx, key)).ratePerSecond * 300n);
    // Delete: the provider removes the pod and the channel starts closing. The daemon's final claim at delete
    // may close the channel itself, so the refund can be due at once; otherwise after the notice period.
    const del = await cli(["delete", "web", "--json"]);
    expect(del.code, del.err).toBe(0);
    expect(JSON.parse(del.out).deleted).toBe(true);
    const before = await tokenBalance(publisher);
    let closed = JSON.parse((await cli(["close", "web", "--json"])).out);
    if (closed.state === "waiting") {
      await advance(Number(closed.secondsLeft) + 1);
      closed = JSON.parse((await cli(["close", "web", "--json"])).out);
    }
    expect(closed.state).toBe("refunded");
    const refunded = BigInt(closed.refunded);
    expect(await tokenBalance(publisher)).toBe(before + refunded);
    // The channel's final settlement: everything the provider claimed plus the refund is the whole deposit.
    const history = await channelHistory(ctx, out.channel);
    const fin = history.find((e) => e.eventName === "ChannelFinalized")!.args as {
      claimed: bigint;
      refund: bigint;
    };
    expect(fin.refund).toBe(refunded);
    expect(fin.claimed + refunded).toBe(3n * 10n ** 15n);
    expect(fin.claimed).toBeGreaterThanOrEqual(claimed);
    // The provider withdraws its balance (this pod's claims among others) to its wallet.
    const providerWallet = await tokenBalance(provider);
    const internal = await balanceOf(ctx, provider, chain.contracts.token);
    expect(internal).toBeGreaterThanOrEqual(fin.claimed);
    await withdraw(chain.context(1, 0), chain.contracts.token);
    expect(await tokenBalance(provider)).toBeGreaterThanOrEqual(providerWallet + internal);
    expect(JSON.parse((await cli(["close", "web", "--json"])).out).state).toBe("settled");
  }, 180_000);
});
