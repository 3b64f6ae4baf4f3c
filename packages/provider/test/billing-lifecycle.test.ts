// Billing end to end on the real dev chain (anvil, time driven with evm_increaseTime) and real Podman (a busybox
// httpd built with buildah from scratch): exact payment, close, run-out and top-up, chain outage, provider restart.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { promisify } from "node:util";
import {
  type ChainContext,
  getChannel,
  paymentsAbi,
  paymentsEvents,
  refund,
  requestClose,
  topUp,
  withdraw,
} from "@trustedpods/chain";
import { type DevChain, startAnvil, startDevChain } from "@trustedpods/chain/node";
import { Registry } from "prom-client";
import { type Hex, parseEventLogs } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Billing,
  type BillingConfig,
  EngineLifecycle,
  type PodLifecycle,
  PodmanEngine,
  type PodSpec,
} from "../src/index.js";
import {
  chainNow,
  channelRef,
  increaseTime,
  memoryLogger,
  openFor,
  type Parties,
  parties,
  setNextTimestamp,
  tokenBalance,
  until,
} from "./billing-helpers.js";

const run = promisify(execFile);
const haveTools = ["/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox"].every((f) => existsSync(f));
const uid = randomBytes(4).toString("hex");
const image = `localhost/tpod-billingtest-${uid}:base`;
let seq = 0;
const podKey = () => `bl-${uid}-${seq++}`;

let chain: DevChain;
let p: Parties;
let engine: PodmanEngine;
let tmp: string;
let archive: string;
const created = new Set<string>();

/** Records the order of lifecycle calls and delegates to the real engine. */
class RecordingLifecycle implements PodLifecycle {
  readonly calls: string[] = [];
  private readonly inner: EngineLifecycle;
  constructor() {
    this.inner = new EngineLifecycle(engine);
  }
  async stop(id: string) {
    this.calls.push(`stop ${id}`);
    await this.inner.stop(id);
  }
  async start(id: string) {
    this.calls.push(`start ${id}`);
    await this.inner.start(id);
  }
  async remove(id: string) {
    this.calls.push(`remove ${id}`);
    await this.inner.remove(id);
  }
}

function httpdPod(id: string, imageRef: string): PodSpec {
  return {
    podId: id,
    containers: [
      {
        name: "web",
        image: imageRef,
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"],
        ports: [{ containerPort: 8080, protocol: "http", hostPort: 0, hostIp: "127.0.0.1" }],
        mounts: [{ volume: "www", path: "/www" }],
        resources: { cpuMillis: 100, memoryBytes: 128 * 1024 * 1024, pids: 64 },
      },
    ],
    volumes: [{ name: "www", kind: "persistent", sizeBytes: 10 * 1024 * 1024 }],
  };
}

const baseConfig: Partial<BillingConfig> = {
  confirmations: 0,
  minRunSeconds: 100n,
  minNoticeSeconds: 600n,
  warnSeconds: 3600n,
};

function makeBilling(
  keys: Map<string, string>,
  opts: { db?: DatabaseSync; config?: Partial<BillingConfig>; ctx?: ChainContext; registry?: Registry } = {},
) {
  const lifecycle = new RecordingLifecycle();
  const log = memoryLogger();
  const billing = new Billing({
    db: opts.db ?? new DatabaseSync(":memory:"),
    chain: opts.ctx ?? p.provider,
    chainId: BigInt(chain.chainId),
    lifecycle,
    usage: engine,
    token: p.token,
    logger: log.logger,
    config: { ...baseConfig, ...opts.config },
    podKeyOf: (podId: Hex) => keys.get(podId.toLowerCase()) ?? podId,
    ...(opts.registry ? { registry: opts.registry } : {}),
  });
  return { billing, lifecycle, log };
}

/** What the daemon does: check the channel, start the pod on the engine, tell billing it runs. */
async function provision(
  billing: Billing,
  keys: Map<string, string>,
  ch: Awaited<ReturnType<typeof openFor>>,
) {
  const key = podKey();
  keys.set(ch.podId.toLowerCase(), key);
  await billing.gate.checkProvision({
    publisher: p.publisherAddr,
    podId: ch.podId,
    pod: ch.pod,
    quotedRatePerSecond: ch.quotedRate,
    channel: channelRef(chain),
  });
  created.add(key);
  // Each pod loads its own copy of the image (as the daemon does), so no other test's image cleanup can take it.
  const img = await engine.loadImage(key, "web", { kind: "archive", path: archive });
  const st = await engine.apply(httpdPod(key, img.ref));
  expect(st.running).toBe(true);
  await billing.gate.onProvisioned(key);
  return key;
}

async function ourPods(): Promise<string[]> {
  return (await engine.listPods()).map((x) => x.podId);
}

/** Empties the provider's internal balance so a test can measure exactly what it earns. */
async function drainProvider(): Promise<void> {
  await withdraw(p.provider, p.token).catch(() => {});
}

async function claimedEvents(channelId: Hex) {
  const logs = await chain.publicClient.getLogs({ address: chain.contracts.payments, fromBlock: 0n });
  return parseEventLogs({ abi: paymentsAbi, logs, eventName: "Claimed" }).filter(
    (e) => e.args.channelId.toLowerCase() === channelId.toLowerCase(),
  );
}

async function buildImage(): Promise<void> {
  const { stdout } = await run("buildah", ["from", "scratch"]);
  const ctr = stdout.trim();
  try {
    await run("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await run("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await run("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await run("buildah", ["commit", "-q", ctr, image]);
  } finally {
    await run("buildah", ["rm", ctr]).catch(() => {});
  }
}

describe.skipIf(!haveTools)("billing with the real dev chain and real Podman", () => {
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-billing-test-"));
    chain = await startDevChain({ args: ["--dump-state", path.join(tmp, "anvil-state.json")] });
    p = await parties(chain);
    await buildImage();
    archive = path.join(tmp, "busybox.tar");
    await run("podman", ["save", "-q", "-o", archive, image]);
    engine = await PodmanEngine.open({
      runDir: path.join(tmp, "run"),
      secretsDir: `/dev/shm/tpod-billingtest-${uid}`,
      owner: `b${uid}`,
      hostFirewall: false,
    });
  }, 180_000);

  afterAll(async () => {
    if (engine) {
      for (const id of await engine
        .listPods()
        .then((l) => l.map((x) => x.podId))
        .catch(() => []))
        await engine.remove(id, { images: true }).catch(() => {});
      for (const id of created) await engine.remove(id, { images: true }).catch(() => {});
      await engine.close();
    }
    await run("podman", ["rmi", "-f", image]).catch(() => {});
    await chain?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
    await rm(`/dev/shm/tpod-billingtest-${uid}`, { recursive: true, force: true });
  }, 120_000);

  it("bills exactly rate x seconds the contract saw, meters usage, and ends a closed channel: stop, claim, remove", async () => {
    await drainProvider();
    const keys = new Map<string, string>();
    const registry = new Registry();
    const { billing, lifecycle } = makeBilling(keys, { registry });
    const ch = await openFor(p, { notice: 600 });
    const key = await provision(billing, keys, ch);

    expect((await billing.tick()).ok).toBe(true);
    await increaseTime(chain, 1000);
    const t1 = await chainNow(chain);
    expect((await billing.tick()).ok).toBe(true);
    // The loop claimed what accrued up to the head it read, to the second and the wei.
    const afterFirst = await getChannel(p.provider, {
      publisher: p.publisherAddr,
      provider: p.providerAddr,
      podId: ch.podId,
    });
    expect(afterFirst.claimed).toBe(ch.quotedRate * (t1 - ch.openedAt));

    // Usage: traffic to the published port, then samples.
    const st = await engine.status(key);
    const port = st.containers[0]!.ports[0]!.hostPort;
    for (let i = 0; i < 3; i++)
      await fetch(`http://127.0.0.1:${port}/`)
        .then((r) => r.arrayBuffer())
        .catch(() => {});
    await billing.sample();
    await billing.sample();
    const usage = billing.billingStatus(key).usage;
    expect(usage.samples).toBe(2);
    expect(usage.memoryBytes).toBeGreaterThan(0);
    expect(usage.rxBytes).toBeGreaterThan(0);
    const metrics = await registry.metrics();
    expect(metrics).toContain(`tpod_billing_reserved{pod="${key}",resource="cpu_millicores"} 100`);
    expect(metrics).toContain(`tpod_billing_claimed{pod="${key}"} ${afterFirst.claimed}`);
    expect(metrics).toMatch(/tpod_billing_claims_total\{result="confirmed"\} [1-9]/);

    // The publisher asks to close: the pod keeps running (and accruing) through the notice period.
    const close = await requestClose(p.publisher, p.providerAddr, ch.podId);
    const closeAt =
      (await chain.publicClient.getBlock({ blockNumber: close.receipt.blockNumber })).timestamp + 600n;
    await billing.tick();
    expect((await engine.status(key)).running).toBe(true);
    expect(billing.billingStatus(key).warnings.join()).toContain(`closes at ${closeAt}`);

    await increaseTime(chain, 700);
    await billing.tick();
    expect(lifecycle.calls).toEqual([`stop ${key}`, `remove ${key}`]);
    expect(await ourPods()).not.toContain(key);
    const status = billing.billingStatus(key);
    expect(status.state).toBe("settled");
    const billed = closeAt - ch.openedAt;
    expect(status.claimed).toBe(ch.quotedRate * billed);
    expect(status.reserved.seconds).toBeGreaterThan(0n);
    expect(status.reserved.seconds).toBeLessThanOrEqual(billed);

    // The provider's wallet grows by exactly rate x billed seconds after withdrawing.
    const before = await tokenBalance(chain, p.token, p.providerAddr);
    await withdraw(p.provider, p.token);
    const after = await tokenBalance(chain, p.token, p.providerAddr);
    expect(after - before).toBe(ch.quotedRate * billed);
    // Claims only ever went up, and every provider transaction succeeded.
    const events = await claimedEvents(ch.channelId);
    expect(events.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < events.length; i++)
      expect(events[i]!.args.cumulative > events[i - 1]!.args.cumulative).toBe(true);
  }, 120_000);

  it("stops a pod whose deposit ran out, restarts it after a top-up, and removes it only after the notice period", async () => {
    await drainProvider();
    const keys = new Map<string, string>();
    const { billing, lifecycle } = makeBilling(keys);
    const rate = 359n;
    const ch = await openFor(p, { deposit: rate * 200n, notice: 600 });
    const key = await provision(billing, keys, ch);
    await billing.tick();
    await increaseTime(chain, 150);
    await billing.tick();
    expect(billing.billingStatus(key).warnings.join()).toMatch(
      /low funds: the deposit pays for \d+ more seconds/,
    );

    await increaseTime(chain, 60);
    await billing.tick();
    expect(billing.billingStatus(key).state).toBe("stopped_funds");
    expect((await engine.status(key)).running).toBe(false);
    expect((await engine.listPods()).find((x) => x.podId === key)?.volumes.length).toBe(1);
    const key3 = { publisher: p.publisherAddr, provider: p.providerAddr, podId: ch.podId };
    expect((await getChannel(p.provider, key3)).claimed).toBe(rate * 200n);

    // A top-up restarts it.
    await topUp(p.publisher, p.providerAddr, ch.podId, rate * 1000n, false);
    await billing.tick();
    expect(billing.billingStatus(key).state).toBe("running");
    expect((await engine.status(key)).running).toBe(true);

    // Runs out again (the deposit pays 1200 s from the opening), stays stopped through the notice period...
    await increaseTime(chain, 1000);
    await billing.tick();
    expect(billing.billingStatus(key).state).toBe("stopped_funds");
    await increaseTime(chain, 300);
    await billing.tick();
    expect(await ourPods()).toContain(key);
    // ...and is removed once it passed without a top-up; the channel stops accruing (providerClose).
    await increaseTime(chain, 400);
    await billing.tick();
    expect(await ourPods()).not.toContain(key);
    expect(lifecycle.calls).toEqual([`stop ${key}`, `start ${key}`, `stop ${key}`, `remove ${key}`]);
    const final = await getChannel(p.provider, key3);
    expect(final.claimed).toBe(rate * 1200n);
    expect(final.closeAt).not.toBe(0n);
    expect(billing.billingStatus(key).state).toBe("settled");
    const before = await tokenBalance(chain, p.token, p.providerAddr);
    await withdraw(p.provider, p.token);
    expect((await tokenBalance(chain, p.token, p.providerAddr)) - before).toBe(rate * 1200n);
  }, 120_000);

  it("a top-up after a run-out bills nothing for the stopped time: claimed = rate x funded seconds, refund = deposits - claimed", async () => {
    await drainProvider();
    const keys = new Map<string, string>();
    const { billing, lifecycle } = makeBilling(keys);
    const rate = 359n;
    const ch = await openFor(p, { deposit: rate * 200n, notice: 600 });
    const key = await provision(billing, keys, ch);
    const chKey = { publisher: p.publisherAddr, provider: p.providerAddr, podId: ch.podId };
    await billing.tick();

    // Runs out at openedAt + 200: stopped, volumes kept, the whole deposit claimed.
    await increaseTime(chain, 250);
    await billing.tick();
    expect(billing.billingStatus(key).state).toBe("stopped_funds");
    expect((await engine.status(key)).running).toBe(false);
    expect((await getChannel(p.provider, chKey)).claimed).toBe(rate * 200n);

    // It stands stopped a while: nothing more is claimable, whatever the clock says.
    await increaseTime(chain, 300);
    await billing.tick();
    expect((await engine.status(key)).running).toBe(false);
    expect(billing.billingStatus(key).claimable).toBe(0n);
    expect(billing.billingStatus(key).warnings.join()).toContain("the stopped time is not charged");

    // The top-up: the contract freezes what is owed at the old deposit and restarts accrual at this block.
    const up = await topUp(p.publisher, p.providerAddr, ch.podId, rate * 5000n, false);
    const toppedUpAt = (await chain.publicClient.getBlock({ blockNumber: up.receipt.blockNumber })).timestamp;
    const restarted = paymentsEvents(p.publisher, up.receipt).find((e) => e.eventName === "AccrualRestarted");
    expect(restarted?.args).toMatchObject({ accruedBefore: rate * 200n, since: toppedUpAt });
    expect(toppedUpAt - ch.openedAt).toBeGreaterThanOrEqual(550n);
    await billing.tick();
    expect(billing.billingStatus(key).state).toBe("running");
    expect((await engine.status(key)).running).toBe(true);

    // Running again: billed from the top-up on, to the second the contract saw.
    await increaseTime(chain, 400);
    const t1 = await chainNow(chain);
    await billing.tick();
    expect((await getChannel(p.provider, chKey)).claimed).toBe(rate * (200n + (t1 - toppedUpAt)));
    expect(billing.billingStatus(key).runsOutAt).toBe(toppedUpAt + 5000n);

    // The publisher closes; at the close time the pod stops, the last accrual is claimed and the pod removed.
    const close = await requestClose(p.publisher, p.providerAddr, ch.podId);
    const closeAt =
      (await chain.publicClient.getBlock({ blockNumber: close.receipt.blockNumber })).timestamp + 600n;
    await increaseTime(chain, 700);
    await billing.tick();
    expect(lifecycle.calls).toEqual([`stop ${key}`, `start ${key}`, `stop ${key}`, `remove ${key}`]);
    expect(billing.billingStatus(key).state).toBe("settled");
    const funded = 200n + (closeAt - toppedUpAt);
    const claimed = (await getChannel(p.provider, chKey)).claimed;
    expect(claimed).toBe(rate * funded);
    // The stopped seconds (run-out at +200 to the top-up) were not paid.
    expect(claimed).toBeLessThan(rate * (closeAt - ch.openedAt));

    // The publisher's refund is exactly the deposits minus what was claimed; the provider got the rest.
    const pubBefore = await tokenBalance(chain, p.token, p.publisherAddr);
    const r = await refund(p.publisher, p.providerAddr, ch.podId);
    expect(r.result).toBe(rate * 5200n - claimed);
    expect((await tokenBalance(chain, p.token, p.publisherAddr)) - pubBefore).toBe(rate * 5200n - claimed);
    const provBefore = await tokenBalance(chain, p.token, p.providerAddr);
    await withdraw(p.provider, p.token);
    expect((await tokenBalance(chain, p.token, p.providerAddr)) - provBefore).toBe(rate * funded);
  }, 120_000);

  it("a running loop restarts a pod soon after its top-up, not a whole claim interval later", async () => {
    const keys = new Map<string, string>();
    // A claim interval far longer than the test: only the top-up watch can restart the pod in time.
    const { billing, lifecycle } = makeBilling(keys, {
      config: { claimIntervalMs: 600_000, restartPollMs: 100 },
    });
    const rate = 359n;
    const ch = await openFor(p, { deposit: rate * 200n, notice: 600 });
    const key = await provision(billing, keys, ch);
    billing.start();
    try {
      await billing.tick();
      await increaseTime(chain, 250);
      await billing.tick();
      expect(billing.billingStatus(key).state).toBe("stopped_funds");
      // Nothing to do while nobody tops up: the watch reads, and wakes nothing.
      expect(await billing.loop.checkTopUps()).toBe(false);
      await topUp(p.publisher, p.providerAddr, ch.podId, rate * 1000n, false);
      await until("the pod restarted by the top-up watch", async () => (await engine.status(key)).running);
      expect(billing.billingStatus(key).state).toBe("running");
      expect(lifecycle.calls).toEqual([`stop ${key}`, `start ${key}`]);
    } finally {
      await billing.stop();
    }
  }, 120_000);

  it("a provider restart over the same SQLite file never double claims, even with a claim left in flight", async () => {
    await drainProvider();
    const keys = new Map<string, string>();
    const dbFile = path.join(tmp, "restart.sqlite");
    // The first process loses the RPC right after sending a claim: it never sees the receipt.
    const flaky: ChainContext = {
      ...p.provider,
      publicClient: new Proxy(p.provider.publicClient, {
        get(target, prop, recv) {
          if (prop === "waitForTransactionReceipt")
            return async () => {
              throw new Error("socket hang up (simulated crash after sending)");
            };
          return Reflect.get(target, prop, recv);
        },
      }),
    };
    const db1 = new DatabaseSync(dbFile);
    const first = makeBilling(keys, { db: db1, ctx: flaky });
    const ch = await openFor(p, { notice: 600 });
    const key = await provision(first.billing, keys, ch);
    await increaseTime(chain, 100);
    const r = await first.billing.tick();
    expect(r.ok).toBe(false);
    const inFlight = first.billing.store.claims(key);
    expect(inFlight.map((c) => c.status)).toEqual(["sent"]);
    await first.billing.stop();
    db1.close();

    // A second process over the same file: it reconciles against the chain instead of claiming again.
    const db2 = new DatabaseSync(dbFile);
    const second = makeBilling(keys, { db: db2 });
    await second.billing.tick();
    // The claim the first process sent is found on chain and counted; nothing is claimed twice.
    const statuses = second.billing.store.claims(key).map((c) => c.status);
    expect(statuses[0]).toBe("confirmed");
    await increaseTime(chain, 50);
    const t = await chainNow(chain);
    await second.billing.tick();
    const key3 = { publisher: p.publisherAddr, provider: p.providerAddr, podId: ch.podId };
    const claimed = (await getChannel(p.provider, key3)).claimed;
    expect(claimed).toBe(ch.quotedRate * (t - ch.openedAt));
    const events = await claimedEvents(ch.channelId);
    // Every wei claimed once: the amounts add up to the cumulative total, which only ever grew.
    expect(events.reduce((sum, e) => sum + e.args.amount, 0n)).toBe(claimed);
    for (let i = 1; i < events.length; i++)
      expect(events[i]!.args.cumulative > events[i - 1]!.args.cumulative).toBe(true);
    // Nothing is left in flight, and every confirmed claim is exactly one Claimed event. (Under a slow RPC a claim
    // can time out before it is sent: it is then recorded as dropped and superseded, moving no money.)
    const final = second.billing.store.claims(key).map((c) => `${c.status}${c.error ? `: ${c.error}` : ""}`);
    expect(
      final.filter((c) => !c.startsWith("confirmed") && !c.startsWith("dropped")),
      final.join("; "),
    ).toEqual([]);
    expect(final.filter((c) => c.startsWith("confirmed")).length, final.join("; ")).toBe(events.length);
    expect(second.billing.billingStatus(key).state).toBe("running");
    await second.billing.stop();
    db2.close();
    await engine.remove(key, { images: true });
  }, 120_000);

  it("a chain node outage loses no money and deletes nothing", async () => {
    await drainProvider();
    const keys = new Map<string, string>();
    const { billing, lifecycle, log } = makeBilling(keys, {
      config: { claimIntervalMs: 100, maxBackoffMs: 400, meterIntervalMs: 100 },
    });
    const rate = 359n;
    const ch = await openFor(p, { deposit: rate * 400n, notice: 600 });
    const key = await provision(billing, keys, ch);
    await billing.tick();
    const last = await chainNow(chain);

    // The node goes away (its state is dumped on exit) while the timers run.
    await chain.anvil.stop();
    billing.start();
    const deadline = Date.now() + 20_000;
    while (log.lines.filter((l) => l.msg.includes("chain unreachable")).length < 3 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(log.lines.filter((l) => l.msg.includes("chain unreachable")).length).toBeGreaterThanOrEqual(3);
    expect(lifecycle.calls).toEqual([]);
    expect((await engine.status(key)).running).toBe(true);
    expect(billing.billingStatus(key).state).toBe("running");
    await billing.stop();

    // It comes back on the same port with its state, and time moved on past the run-out and the notice.
    chain.anvil = await startAnvil({
      port: chain.anvil.port,
      args: [
        "--load-state",
        path.join(tmp, "anvil-state.json"),
        "--dump-state",
        path.join(tmp, "anvil-state.json"),
      ],
    });
    await setNextTimestamp(chain, last + 500n);
    await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await billing.tick();
    // Ran out at 400 s: stopped (not removed: the notice period has not passed), and paid in full.
    expect(billing.billingStatus(key).state).toBe("stopped_funds");
    expect(lifecycle.calls).toEqual([`stop ${key}`]);
    const key3 = { publisher: p.publisherAddr, provider: p.providerAddr, podId: ch.podId };
    expect((await getChannel(p.provider, key3)).claimed).toBe(rate * 400n);
    const before = await tokenBalance(chain, p.token, p.providerAddr);
    await withdraw(p.provider, p.token);
    expect((await tokenBalance(chain, p.token, p.providerAddr)) - before).toBe(rate * 400n);
    await engine.remove(key, { images: true });
  }, 120_000);

  it("a delete stops billing at once (providerClose), keeps volumes for the notice, then removes", async () => {
    await drainProvider();
    const keys = new Map<string, string>();
    const { billing, lifecycle } = makeBilling(keys);
    const ch = await openFor(p, { notice: 600 });
    const key = await provision(billing, keys, ch);
    await increaseTime(chain, 300);
    // The daemon stops the pod's containers and tells billing.
    await engine.stop(key);
    await billing.gate.onDeleted(key);
    await billing.tick();
    const key3 = { publisher: p.publisherAddr, provider: p.providerAddr, podId: ch.podId };
    const closed = await getChannel(p.provider, key3);
    expect(closed.closeAt).toBeGreaterThan(ch.openedAt);
    expect(closed.claimed).toBe(ch.quotedRate * (closed.closeAt - ch.openedAt));
    expect(await ourPods()).toContain(key);
    expect(billing.billingStatus(key).warnings.join()).toContain("volumes are kept until");
    await increaseTime(chain, 700);
    await billing.tick();
    expect(await ourPods()).not.toContain(key);
    expect(lifecycle.calls).toEqual([`remove ${key}`]);
    expect(billing.billingStatus(key).state).toBe("settled");
  }, 120_000);

  it("an RPC that answers the head but fails channel reads changes nothing, even long past run-out and notice", async () => {
    const keys = new Map<string, string>();
    const ok = makeBilling(keys);
    const ch = await openFor(p, { deposit: 359n * 200n, notice: 600 });
    const key = await provision(ok.billing, keys, ch);
    await ok.billing.tick();
    // A second process over the same store whose RPC fails every contract read, and a leftover intent that
    // a crash left before sending (no hash).
    const broken: ChainContext = {
      ...p.provider,
      publicClient: new Proxy(p.provider.publicClient, {
        get(target, prop, recv) {
          // The tick reads channels in batches (multicall), single channels with readContract: fail both.
          if (prop === "readContract" || prop === "multicall")
            return async () => {
              throw new Error("fetch failed (simulated RPC error)");
            };
          return Reflect.get(target, prop, recv);
        },
      }),
    };
    const flaky = new Billing({
      db: ok.billing.store.db,
      chain: broken,
      chainId: BigInt(chain.chainId),
      lifecycle: ok.lifecycle,
      config: baseConfig,
    });
    ok.billing.store.addClaimIntent(key, ch.channelId, 359n * 150n);
    await increaseTime(chain, 5000);
    const r = await flaky.tick();
    expect(r.ok).toBe(false);
    expect(r.errors.join()).toContain("cannot read the payment channel");
    expect(ok.lifecycle.calls).toEqual([]);
    expect((await engine.status(key)).running).toBe(true);
    expect(flaky.billingStatus(key).lastError).toContain("simulated RPC error");
    // With the RPC back, the same facts lead to a stop, a full claim, and (notice long over) removal.
    await ok.billing.tick();
    expect(ok.lifecycle.calls).toEqual([`stop ${key}`, `remove ${key}`]);
    const claims = ok.billing.store.claims(key);
    expect(claims.map((c) => c.status)).toEqual(["dropped", "confirmed"]);
    expect(
      (
        await getChannel(p.provider, {
          publisher: p.publisherAddr,
          provider: p.providerAddr,
          podId: ch.podId,
        })
      ).claimed,
    ).toBe(359n * 200n);
  }, 120_000);
});
