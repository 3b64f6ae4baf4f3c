// End to end: the publisher flow against the real provider daemon as `tpod provider serve` wires it (real billing
// on anvil, real HTTP gateway, Podman, Helia, libp2p). Images are built locally with buildah into the Podman
// store and deployed from there: the SDK's deploy() and the `tpod deploy|pods|status|logs|update|fund|close|delete`
// commands over a devnet state file, then the money is followed on chain.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  accrued,
  balanceOf,
  channelHistory,
  devnetReleaseInput,
  getChannel,
  getProvider,
  paymentsAbi,
  publishRelease,
  revokeRelease,
  withdraw,
} from "@trustedpods/chain";
import type { DevChain } from "@trustedpods/chain/node";
import { DEVNET_BILLING, type Devnet } from "@trustedpods/devnet";
import { createP2PNode, type P2PNode } from "@trustedpods/p2p";
import { formatTokenAmount, parseManifest } from "@trustedpods/protocol";
import type { Daemon } from "@trustedpods/provider";
import {
  connectNetwork,
  DEFAULT_RUN_SECONDS,
  DEPOSIT_MARGIN_SECONDS,
  DEVNET_POLICY,
  type DeployProgress,
  depositFor,
  PublisherError,
  podConnection,
  podLogs,
  type ResolvedNetwork,
  roundUpAmount,
  tokenInfo,
} from "@trustedpods/publisher";
import { deploy, PodStore } from "@trustedpods/publisher/node";
import { type Address, erc20Abi, getAddress, type Hex, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildBusyboxImage,
  type CliDevnet,
  cli,
  getUrl,
  startCliDevnet,
} from "../../../test-support/cli-devnet.js";
import { haveTools, waitFor } from "../../../test-support/provider-world.js";

const exec = promisify(execFile);
if (!haveTools) console.warn("SKIP: deploy tests need podman, buildah and busybox-static");

const uid = randomBytes(4).toString("hex");
const IMAGE = `localhost/tpod-deploy-${uid}:latest`;
let tmp: string;
let chain: DevChain;
let daemon: Daemon;
let devnet: Devnet;
let node: P2PNode;
let network: ResolvedNetwork;

/** The body once the URL answers 200 (the gateway answers 502 until the pod listens). */
async function ok(url: string): Promise<string | false> {
  const r = await getUrl(url);
  return r.status === 200 && r.body;
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

let world: CliDevnet;
const advance = (seconds: number) => world.advance(seconds);
const tokenBalance = (who: Address) => world.tokenBalance(who);

beforeAll(async () => {
  if (!haveTools) return;
  // The devnet as `tpod devnet up` composes it, in process; it writes $TPOD_HOME/devnet.json, which the CLI
  // commands below find.
  world = await startCliDevnet({
    tmpPrefix: "tpod-deploy-test-",
    engineOwner: `dp${uid}`,
    alongside: [buildBusyboxImage(IMAGE)],
  });
  ({ tmp, chain, daemon, devnet, network } = world);
  node = await createP2PNode();
}, 240_000);

afterAll(async () => {
  if (!haveTools) return;
  await node?.stop();
  await world?.stop();
  await exec("buildah", ["rmi", "-f", IMAGE]).catch(() => {});
}, 120_000);

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
      ipfs: devnet.ipfs,
      store,
      onProgress: (e) => events.push(e),
    });
    expect(r.provider).toBe(daemon.info().provider);
    // The terms came from the daemon's quote (the devnet's billing config), and the default deposit pays for
    // DEFAULT_RUN_SECONDS, well beyond the quoted minimum plus the margin (rounded up to two digits).
    expect(r.terms).toEqual({
      minDepositSeconds: DEVNET_BILLING.minDepositSeconds,
      confirmations: 0,
      minNoticeSeconds: DEVNET_BILLING.minNoticeSeconds,
      quoted: true,
    });
    expect(r.deposit).toBe(roundUpAmount(r.ratePerSecond * BigInt(DEFAULT_RUN_SECONDS)));
    expect(r.deposit).toBeGreaterThan(
      r.ratePerSecond * BigInt(DEVNET_BILLING.minDepositSeconds + DEPOSIT_MARGIN_SECONDS),
    );
    expect(r.paidSeconds).toBe(r.deposit / r.ratePerSecond);
    expect(r.warnings).toEqual([]);
    expect(r.noticeSeconds).toBe(DEVNET_BILLING.minNoticeSeconds);
    expect(events.find((e) => e.step === "quote" && e.phase === "done")?.message).toContain(
      `minimum paid time ${DEVNET_BILLING.minDepositSeconds} s`,
    );
    expect(r.endpoints.http).toHaveLength(1);
    expect(r.endpoints.http[0]).toMatch(/^http:\/\/web-8080-[0-9a-f]{12}\.localhost:\d+\/$/);
    expect((await waitFor("the pod's URL", () => ok(r.endpoints.http[0]!))).trim()).toBe(
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
    // Logs with --follow: the lines so far arrive, the stream stays open, and aborting ends it cleanly.
    const ac = new AbortController();
    const lines: string[] = [];
    for await (const l of podLogs(podConnection(node, r.record, account), r.podId, {
      follow: true,
      container: "web",
      signal: ac.signal,
    })) {
      lines.push(l.line);
      expect([l.container, l.stream]).toEqual(["web", "stdout"]);
      if (l.line.includes("started hello")) ac.abort();
    }
    expect(lines).toContain("started hello");
  }, 120_000);

  it("waits for the quoted confirmations before provisioning: the provider never refuses the channel as unseen", async () => {
    // The devnet decides on the latest block; ask this daemon's live billing for 2 confirmations (its quote
    // then says so, and its gate reads the channel 2 blocks below the head). The test's miner adds a block a second.
    const config = daemon.billing!.config as { confirmations: number };
    const refusals = async () =>
      (await daemon.metrics.errors.get()).values
        .filter((v) => v.labels.protocol === "provision" && v.labels.code === "PAYMENT_REQUIRED")
        .reduce((a, v) => a + v.value, 0);
    config.confirmations = 2;
    try {
      const account = privateKeyToAccount(chain.accounts[3]!.privateKey);
      const clients = await connectNetwork(network, { account });
      const before = await refusals();
      const events: DeployProgress[] = [];
      const r = await deploy({
        pod: parseManifest(httpManifest("confirmed", "after two blocks"), "confirmed.yaml"),
        network,
        clients,
        account,
        policy: { policy: DEVNET_POLICY, source: "devnet default" },
        node,
        ipfs: devnet.ipfs,
        onProgress: (e) => events.push(e),
      });
      expect(r.terms.confirmations).toBe(2);
      expect(events.find((e) => e.step === "provision" && e.phase === "start")?.message).toBe(
        "waiting for 2 confirmations of the channel, then provisioning",
      );
      expect(await refusals()).toBe(before);
      expect((await waitFor("the pod's URL", () => ok(r.endpoints.http[0]!))).trim()).toBe(
        "after two blocks",
      );
    } finally {
      config.confirmations = 0;
    }
  }, 120_000);

  it("refuses a deposit below the provider's quoted minimum before any money moves: no channel, same balance", async () => {
    const account = privateKeyToAccount(chain.accounts[3]!.privateKey);
    const clients = await connectNetwork(network, { account });
    const pod = parseManifest(httpManifest("small", "x"), "small.yaml");
    const podId = toHex(randomBytes(32));
    const provider = daemon.info().provider;
    const balance = await tokenBalance(account.address);
    const events: DeployProgress[] = [];
    const err = await deploy({
      pod,
      network,
      clients,
      account,
      policy: { policy: DEVNET_POLICY, source: "devnet default" },
      node,
      ipfs: devnet.ipfs,
      podId,
      funds: "0.0000000001",
      // A fallback for daemons that send no minimum: the quoted 600 s wins over it.
      minDepositSeconds: 5,
      onProgress: (e) => events.push(e),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublisherError);
    const e = err as PublisherError;
    expect(e.code).toBe("DEPOSIT_TOO_SMALL");
    expect(e.details!.minSeconds).toBe(String(DEVNET_BILLING.minDepositSeconds));
    // rate = 100 m × 1000 + 32 MiB × 200 + 64 MiB of storage at 3000 per GiB-second
    const rate = BigInt(e.details!.ratePerSecond!);
    const offered = 100_000_000n / rate;
    const min = formatTokenAmount(rate * 600n, 18);
    const { symbol } = await tokenInfo(clients.publicClient, chain.contracts.token);
    expect(e.details!.minAmountFormatted).toBe(min);
    expect(e.details!.marginSeconds).toBe(String(DEPOSIT_MARGIN_SECONDS));
    expect(e.message).toBe(
      `deposit too small: the provider wants 600 s paid in advance (${min} ${symbol}), and deploy adds a 60 s margin because the deposit starts paying when the channel opens, a few blocks before the provider checks it: 660 s at ${formatTokenAmount(rate * 3600n, 18)} ${symbol}/hour is ${formatTokenAmount(rate * 660n, 18)} ${symbol}. You offered ${offered} s (0.0000000001 ${symbol}); use --funds ${e.details!.suggestedFormatted} (660 s, rounded up) or more. Without --funds, deploy pays for 6 h 0 min.`,
    );
    // Refused after the quote, before the channel step: no channel on chain, not a token moved.
    expect(events.some((x) => x.step === "quote" && x.phase === "done")).toBe(true);
    expect(events.some((x) => x.step === "channel")).toBe(false);
    expect((await getChannel(clients.context, { publisher: account.address, provider, podId })).exists).toBe(
      false,
    );
    expect(await tokenBalance(account.address)).toBe(balance);
    // The suggestion is enough.
    expect(
      depositFor({
        ratePerSecond: rate,
        funds: BigInt(e.details!.suggested!),
        decimals: 18,
        minDepositSeconds: 600,
      }),
    ).toBe(BigInt(e.details!.suggested!));
    // The CLI says the same, as JSON on --json, exits 1, and moves no money either.
    const manifest = join(tmp, "small.yaml");
    await writeFile(manifest, httpManifest("small", "x"));
    const cliPublisher = privateKeyToAccount(chain.accounts[2]!.privateKey).address;
    const cliBalance = await tokenBalance(cliPublisher);
    const c = await cli(["deploy", manifest, "--funds", "0.0000000001", "--json"]);
    expect(c.code).toBe(1);
    expect(c.err).toContain("deposit too small: the provider wants 600 s paid in advance (");
    expect(c.err).toContain("use --funds 0.");
    const out = JSON.parse(c.out) as { error: { code: string; details: Record<string, string> } };
    expect(out.error.code).toBe("DEPOSIT_TOO_SMALL");
    expect(out.error.details.minSeconds).toBe("600");
    expect(await tokenBalance(cliPublisher)).toBe(cliBalance);
    expect((await cli(["deploy", manifest, "--funds", "1e5"])).code).toBe(2);
  }, 120_000);

  it("CLI: the default devnet policy deploys only to a published release; revoked, the deploy is refused before any money moves", async () => {
    const manifest = join(tmp, "rel.yaml");
    await writeFile(manifest, httpManifest("rel", "x"));
    const provider = daemon.info().provider;
    const entry = await getProvider(chain.context(0), provider);
    expect(entry.release).toBe(chain.devnetRelease);
    const v = await cli(["verify", provider]);
    expect(v.code, v.err).toBe(0);
    expect(v.out).toMatch(/^accepted .*insecure-dev evidence, release devnet-insecure-dev/);

    const signer = chain.context(0);
    await revokeRelease(signer, chain.devnetRelease!, "test: the devnet release is withdrawn");
    try {
      const publisher = privateKeyToAccount(chain.accounts[2]!.privateKey).address;
      const before = {
        publisher: await tokenBalance(publisher),
        payments: await tokenBalance(chain.contracts.payments),
        allowance: await chain.publicClient.readContract({
          address: chain.contracts.token,
          abi: erc20Abi,
          functionName: "allowance",
          args: [publisher, chain.contracts.payments],
        }),
        block: await chain.publicClient.getBlockNumber(),
      };
      const d = await cli(["deploy", manifest, "--json"]);
      expect(d.code).toBe(1);
      expect(d.err).toMatch(
        /is release devnet-insecure-dev .*which was revoked at .*: test: the devnet release is withdrawn/,
      );
      expect(JSON.parse(d.out).error).toMatchObject({
        code: "ATTESTATION_REFUSED",
        field: "release.revoked",
      });
      expect(d.err).not.toMatch(/quote|channel/i);
      // Nothing moved: balances and allowance as before, and no channel was opened on Payments since.
      expect(await tokenBalance(publisher)).toBe(before.publisher);
      expect(await tokenBalance(chain.contracts.payments)).toBe(before.payments);
      expect(
        await chain.publicClient.readContract({
          address: chain.contracts.token,
          abi: erc20Abi,
          functionName: "allowance",
          args: [publisher, chain.contracts.payments],
        }),
      ).toBe(before.allowance);
      const opened = await chain.publicClient.getContractEvents({
        address: chain.contracts.payments,
        abi: paymentsAbi,
        eventName: "ChannelOpened",
        // The revocation's block or a later empty one: no channel was opened there before the deploy.
        fromBlock: before.block,
      });
      expect(opened).toEqual([]);
    } finally {
      // The signers publish the same measurement again under a new version: the devnet accepts its provider
      // again (and the tests after this one deploy under it).
      const reinstated = await publishRelease(signer, {
        ...devnetReleaseInput(),
        version: "devnet-insecure-dev-2",
      });
      expect(reinstated.published).toBe(true);
    }
    const again = await cli(["verify", provider]);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/release devnet-insecure-dev-2/);
    expect(again.out).toMatch(
      /warning: the provider declares release [0-9a-f]{16}… in the Registry, but its evidence is release devnet-insecure-dev-2/,
    );
  }, 120_000);

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
    expect((await waitFor("kv", () => ok(`${base}/pass`))).trim()).toBe("s3cret-pass");
    expect((await getUrl(`${base}/v1`)).body.trim()).toBe("v1");
    const v2 = join(tmp, "kv2.yaml");
    await writeFile(v2, kvManifest("v2"));
    const u = await cli(["update", "kv", v2, "--json"]);
    expect(u.code, u.err).toBe(0);
    const upd = JSON.parse(u.out);
    expect(upd.rateChanged).toBe(true);
    const base2 = `http://${upd.endpoints.tcp[0].address}`;
    expect((await waitFor("kv v2", () => ok(`${base2}/v2`))).trim()).toBe("v2");
    // v1's file survived the update: the persistent volume was kept.
    expect((await getUrl(`${base2}/v1`)).body.trim()).toBe("v1");
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
          const r = await getUrl(out.endpoints.http[0]!);
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
      endpoints: { http: string[]; tcp: unknown[]; udp: unknown[] };
    };
    expect(Object.keys(out)).toEqual([
      "podId",
      "provider",
      "channel",
      "endpoints",
      "terms",
      "runway",
      "warnings",
    ]);
    const terms = (out as unknown as { terms: Record<string, unknown> }).terms;
    expect(terms).toMatchObject({
      token: getAddress(chain.contracts.token),
      deposit: (10n ** 15n).toString(),
      noticeSeconds: DEVNET_BILLING.minNoticeSeconds,
      minNoticeSeconds: DEVNET_BILLING.minNoticeSeconds,
      minDepositSeconds: DEVNET_BILLING.minDepositSeconds,
      minDepositQuoted: true,
      confirmations: 0,
    });
    expect(BigInt(terms.ratePerSecond as string)).toBeGreaterThan(0n);
    expect(Object.keys(out.endpoints)).toEqual(["http", "tcp", "udp"]);
    expect(out.endpoints.udp).toEqual([]);
    expect((await waitFor("the URL", () => ok(out.endpoints.http[0]!))).trim()).toBe("hello from the cli");
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
    const after = await getChannel(ctx, key);
    expect(after.deposit).toBe(3n * 10n ** 15n);
    // It says how long the pod now runs: what is left over the rate, read at the chain head after the top-up
    // (the test's own read is at most a block later, so at most a few seconds less).
    const funded = JSON.parse(f.out) as { remaining: string; secondsLeft: string };
    const left = BigInt(funded.remaining);
    expect(BigInt(funded.secondsLeft)).toBe(left / after.ratePerSecond);
    const spentNow = await accrued(ctx, key);
    expect(left).toBeLessThanOrEqual(after.deposit);
    expect(after.deposit - spentNow).toBeLessThanOrEqual(left);
    expect(after.deposit - spentNow).toBeGreaterThanOrEqual(left - 5n * after.ratePerSecond);
    const plain = await cli(["fund", "web", "0.000001"]);
    expect(plain.out).toMatch(
      /^added 0\.000001 \S+: deposit .*; .* left pays for \d+ (d|h|min|s)\b.* more$/m,
    );
    await advance(300);
    // tick() joins a pass already in progress (the top-up woke the billing loop), and that pass may have read
    // the chain before the advance: tick until a pass that began after it has claimed (a failed CI run).
    const owed = after.ratePerSecond * 300n;
    let claimed = 0n;
    for (let pass = 0; pass < 3 && claimed < owed; pass++) {
      await daemon.billing!.tick();
      claimed = (await getChannel(ctx, key)).claimed;
    }
    expect(claimed).toBeGreaterThanOrEqual(owed);
    // Delete: the provider removes the pod and the channel starts closing. The daemon's final claim at delete
    // may close the channel itself, so the refund can be due at once; otherwise after the notice period.
    // The balance before the delete: on a loaded machine the notice can pass before `tpod close` runs and the
    // provider then settles the channel itself ("settled"); either way the refund reaches the publisher once.
    const before = await tokenBalance(publisher);
    const del = await cli(["delete", "web", "--json"]);
    expect(del.code, del.err).toBe(0);
    expect(JSON.parse(del.out).deleted).toBe(true);
    let closed = JSON.parse((await cli(["close", "web", "--json"])).out);
    if (closed.state === "waiting") {
      await advance(Number(closed.secondsLeft) + 1);
      closed = JSON.parse((await cli(["close", "web", "--json"])).out);
    }
    expect(["refunded", "settled"]).toContain(closed.state);
    const refunded = BigInt(closed.refunded);
    expect(refunded).toBeGreaterThan(0n);
    expect(await tokenBalance(publisher)).toBe(before + refunded);
    // The channel's final settlement: everything the provider claimed plus the refund is the whole deposit.
    const history = await channelHistory(ctx, out.channel);
    const fin = history.find((e) => e.eventName === "ChannelFinalized")!.args as {
      claimed: bigint;
      refund: bigint;
    };
    expect(fin.refund).toBe(refunded);
    expect(fin.claimed + refunded).toBe(3n * 10n ** 15n + 10n ** 12n); // with the 0.000001 top-up
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
