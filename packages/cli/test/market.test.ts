// The Marketplace through the `tpod` commands against the real provider daemon (real billing on anvil, Podman,
// Helia, libp2p): `tpod dev publish` a local Podman image, `tpod dev authorize` the provider (attested over
// libp2p), `tpod listings`, `tpod deploy` a manifest that names the listing (only the authorized provider is
// offered although another registered one is cheaper; the marketplace warning and the price breakdown are
// printed; the channel carries the royalty), use the pod, delete it, then `tpod dev earnings` and
// `tpod dev withdraw` pay the developer exactly its share.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  balanceOf,
  getChannel,
  getRoyalties,
  paymentsAbi,
  Resource,
  registerProvider,
} from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { createIpfsNode, type IpfsNode } from "@trustedpods/ipfs";
import { formatTokenAmount } from "@trustedpods/protocol";
import { Daemon, loadConfig, type PodmanEngine } from "@trustedpods/provider";
import { writeDevnetState } from "@trustedpods/publisher/node";
import { erc20Abi, type Hex, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { haveTools, providerConfigYaml, waitFor } from "../../../test-support/provider-world.js";
import { run } from "../src/main.js";

const exec = promisify(execFile);
if (!haveTools) console.warn("SKIP: marketplace CLI tests need podman, buildah and busybox-static");

const uid = randomBytes(4).toString("hex");
const IMAGE = `localhost/tpod-market-cli-${uid}:latest`;
const savedHome = process.env.TPOD_HOME;
let tmp: string;
let chain: DevChain;
let daemon: Daemon;
let devKeyFile: string;
let devRepo: string;

async function buildImage(): Promise<void> {
  const ctr = (await exec("buildah", ["from", "scratch"])).stdout.trim();
  try {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await exec("buildah", [
      "run",
      ctr,
      "--",
      "/bin/sh",
      "-c",
      "mkdir -p /www && echo sold-software > /www/index.html",
    ]);
    await exec("buildah", [
      "config",
      "--entrypoint",
      '["httpd", "-f", "-h", "/www"]',
      "--cmd",
      '["-p", "8080"]',
      ctr,
    ]);
    await exec("buildah", ["commit", "-q", ctr, IMAGE]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
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

const prices = [
  { resource: Resource.cpu, pricePerUnitSecond: 1000n },
  { resource: Resource.memory, pricePerUnitSecond: 200n },
  { resource: Resource.storage, pricePerUnitSecond: 3000n },
];

beforeAll(async () => {
  if (!haveTools) return;
  tmp = await mkdtemp(join(tmpdir(), "tpod-market-cli-"));
  process.env.TPOD_HOME = join(tmp, "home");
  devRepo = join(tmp, "dev-ipfs");
  [chain] = await Promise.all([startDevChain(), buildImage()]);
  const keyFile = join(tmp, "account.key");
  await writeFile(keyFile, `${chain.accounts[1]!.privateKey}\n`, { mode: 0o600 });
  devKeyFile = join(tmp, "developer.key");
  await writeFile(devKeyFile, `${chain.accounts[3]!.privateKey}\n`, { mode: 0o600 });
  const cfgFile = join(tmp, "provider.yaml");
  await writeFile(
    cfgFile,
    providerConfigYaml({
      dataDir: join(tmp, "data"),
      chain,
      accountKeyFile: keyFile,
      owner: `mc${uid}`,
      ipfsPeers: [],
    }).replace("chain:\n", "chain:\n  confirmations: 0\n"),
  );
  daemon = await Daemon.start(loadConfig(cfgFile), {
    billing: { claimIntervalMs: 200, meterIntervalMs: 300, maxBackoffMs: 1000 },
  });
  await registerProvider(chain.context(1), {
    name: "authorized",
    regions: ["local"],
    multiaddrs: daemon.info().multiaddrs,
    metadataCid: "",
    teeTypes: ["insecure-dev"],
    token: chain.contracts.token,
    minNoticeSeconds: 600,
    prices,
  });
  // Cheaper, but the developer never authorizes it: deploy must not pick it for a listing pod.
  await registerProvider(chain.context(5), {
    name: "cheap-unauthorized",
    regions: ["local"],
    multiaddrs: daemon.info().multiaddrs,
    metadataCid: "",
    teeTypes: ["insecure-dev"],
    token: chain.contracts.token,
    minNoticeSeconds: 600,
    prices: prices.map((p) => ({ ...p, pricePerUnitSecond: p.pricePerUnitSecond / 10n })),
  });
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
}, 240_000);

afterAll(async () => {
  if (!haveTools) return;
  if (daemon) {
    const engine = daemon.engine as PodmanEngine;
    for (const m of await engine.listPods()) await engine.remove(m.podId, { images: true });
    await daemon.stop();
  }
  await chain?.stop();
  await exec("buildah", ["rmi", "-f", IMAGE]).catch(() => {});
  // An IPFS node that has just stopped may still flush its datastore (ENOTEMPTY): retry.
  await rm(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  await rm(`/dev/shm/tpod-secrets-mc${uid}`, { recursive: true, force: true });
  if (savedHome === undefined) delete process.env.TPOD_HOME;
  else process.env.TPOD_HOME = savedHome;
}, 120_000);

describe.skipIf(!haveTools)("tpod dev and tpod listings", () => {
  it("publishes, authorizes, deploys through tpod deploy, and pays the developer exactly its share", async () => {
    const provider = daemon.info().provider;
    const dev = ["--key", devKeyFile, "--ipfs-repo", devRepo];
    const sample = join(tmp, "sample.yaml");
    await writeFile(sample, "# run me with: args: [-p, '8080']\n");

    const usage = await cli(["dev", "publish", `podman:${IMAGE}`, ...dev, "--royalty", "20000"]);
    expect(usage.code).toBe(2);

    const pub = await cli([
      "dev",
      "publish",
      `podman:${IMAGE}`,
      ...dev,
      "--royalty",
      "1500",
      "--name",
      "sold",
      "--manifest",
      sample,
      "--json",
    ]);
    expect(pub.err).toContain("Publishers can change the arguments passed to your image's entrypoint");
    expect(pub.code, pub.err).toBe(0);
    const published = JSON.parse(pub.out) as { listingId: string; manifestDigest: string };
    const listingId = published.listingId;

    // Not yet authorized anywhere: a listing pod has no provider.
    const manifest = join(tmp, "pod.yaml");
    await writeFile(
      manifest,
      `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: sold
spec:
  containers:
    - name: app
      image: {listing: "${listingId}"}
      args: ["-p", "9000"]
      ports:
        - containerPort: 9000
          tcp: {}
      resources: {cpu: 100m, memory: 32Mi}
`,
    );
    const none = await cli(["deploy", manifest]);
    expect(none.code).toBe(1);
    expect(none.err).toContain("no provider is authorized for every listing");

    const auth = await cli(["dev", "authorize", listingId, provider, ...dev]);
    expect(auth.code, auth.err).toBe(0);
    expect(auth.out).toContain(`authorized ${provider} for listing ${listingId}`);

    const browse = await cli(["listings", listingId, "--ipfs-repo", devRepo]);
    expect(browse.code, browse.err).toBe(0);
    expect(browse.out).toContain(`listing ${listingId}: sold`);
    expect(browse.out).toContain("royalty 1500 bps");
    expect(browse.out).toContain(`providers   ${provider}`);
    expect(browse.out).toContain("run me with");
    const mine = await cli(["dev", "listings", "--key", devKeyFile]);
    expect(mine.out).toMatch(new RegExp(`^${listingId}\\tactive\\troyalty 1500 bps`, "m"));

    // The developer's node serves the listing's blocks while publishers deploy (connected to the devnet's).
    const devNode: IpfsNode = await createIpfsNode({ dataDir: devRepo, peers: daemon.info().ipfs });
    try {
      const dep = await cli(["deploy", manifest, "--json", "--funds", "0.001"]);
      expect(dep.code, dep.err).toBe(0);
      expect(dep.err).toContain("This pod uses the Marketplace");
      expect(dep.err).toMatch(/price: .*\/hour to 0x[0-9a-fA-F]{40}: provider: runs the pod/);
      expect(dep.err).toContain(`developer of listing ${listingId}: 15% of what the provider claims`);
      const r = JSON.parse(dep.out) as {
        podId: Hex;
        provider: string;
        channel: Hex;
        endpoints: { tcp: { address: string }[] };
      };
      expect(r.provider).toBe(provider);
      expect(await getRoyalties(chain.context(2), r.channel)).toEqual([
        { recipient: chain.accounts[3]!.address, bps: 1500, listingId: BigInt(listingId) },
      ]);
      const addr = r.endpoints.tcp[0]!.address;
      expect(await waitFor("the sold software", async () => (await fetch(`http://${addr}/`)).text())).toBe(
        "sold-software\n",
      );

      await chain.publicClient.request({
        method: "evm_increaseTime" as never,
        params: [toHex(120)] as never,
      });
      await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
      const key = { publisher: chain.accounts[2]!.address, provider, podId: r.podId };
      await waitFor("a claim", async () => (await getChannel(chain.context(2), key)).claimed > 0n);
      const del = await cli(["delete", r.podId]);
      expect(del.code, del.err).toBe(0);
      // `tpod delete` asks the provider to delete, then closes the channel itself. Two endings are right: the
      // publisher's requestClose lands first and the provider claims up to the close; or the provider's
      // providerClose lands first (close time = now), so the CLI's close finds the notice over and refunds,
      // which pays the provider the rest. Either way every payment is a Claimed event, royalties included.
      await waitFor("the final claim or the refund", async () => {
        const c = await getChannel(chain.context(2), key);
        if (c.finalized) return true;
        const accrued = (await chain.publicClient.readContract({
          address: chain.contracts.payments,
          abi: paymentsAbi,
          functionName: "accrued",
          args: [key.publisher, provider, r.podId],
        })) as bigint;
        return c.closeAt !== 0n && c.claimed === accrued;
      });
      const claims = await chain.publicClient.getContractEvents({
        address: chain.contracts.payments,
        abi: paymentsAbi,
        eventName: "Claimed",
        args: { channelId: r.channel },
        fromBlock: 0n,
      });
      const share = claims.reduce((t, c) => t + ((c.args as { amount: bigint }).amount * 1500n) / 10000n, 0n);
      expect(share).toBeGreaterThan(0n);
      const developer = chain.accounts[3]!.address;
      expect(await balanceOf(chain.context(2), developer, chain.contracts.token)).toBe(share);

      const earn = await cli(["dev", "earnings", "--key", devKeyFile, "--json"]);
      expect(earn.code, earn.err).toBe(0);
      expect(JSON.parse(earn.out)).toMatchObject({ royalties: share.toString(), balance: share.toString() });
      const held = () =>
        chain.publicClient.readContract({
          address: chain.contracts.token,
          abi: erc20Abi,
          functionName: "balanceOf",
          args: [developer],
        });
      const before = await held();
      const w = await cli(["dev", "withdraw", "--key", devKeyFile]);
      expect(w.code, w.err).toBe(0);
      // In tokens for people; the --json of earnings above keeps base units.
      expect(w.out).toContain(`withdrew ${formatTokenAmount(share, 18)} TPT (token `);
      expect((await held()) - before).toBe(share);
    } finally {
      await devNode.stop();
    }
  }, 300_000);
});
