// The billing tick alone with N channels: real anvil, real contracts, the daemon's SQLite settings, no Podman.
//
//   npm run build && node bench/scale/tick.ts [--n 200] [--ticks 5] [--profile out.cpuprofile]
//
// Opens N channels (one publisher, one provider), registers them with Billing as provisioned pods, then runs
// `--ticks` ticks that find nothing due (the steady state between claims) and one tick that claims every channel,
// reporting wall time and this process's CPU time per pod (anvil runs in its own process: its CPU is not counted).
// `--profile` writes a CPU profile of the measured ticks (node:inspector), for chrome://inspect or speedscope.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { ensureAllowance, openChannel } from "@trustedpods/chain";
import { startDevChain } from "@trustedpods/chain/node";
import { Billing, quotePod, StateDb } from "@trustedpods/provider";
import { type Address, keccak256, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const N = Number(arg("n", "200"));
const TICKS = Number(arg("ticks", "5"));
const PROFILE = arg("profile", "");
const log = (m: string) => console.error(`[tick ${new Date().toISOString().slice(11, 19)}] ${m}`);

const pod = {
  name: "web",
  containers: [
    {
      name: "web",
      image: { kind: "local" as const, name: "busybox" },
      command: [],
      args: [],
      env: [],
      ports: [],
      volumeMounts: [],
      resources: { cpuMillis: 10n, memoryBytes: 16n << 20n, storageBytes: 16n << 20n, gpu: 0n },
    },
  ],
  volumes: [],
  replicas: { min: 1, max: 1, idleSeconds: 0n },
};

async function main() {
  const tmp = await mkdtemp(join(tmpdir(), "tpod-bench-tick-"));
  const chain = await startDevChain();
  try {
    const provider = chain.context(1, 1);
    const publisher = chain.context(2, 1);
    const providerAddr = chain.accounts[1]!.address as Address;
    const publisherAddr = chain.accounts[2]!.address as Address;
    const token = chain.contracts.token as Address;
    await ensureAllowance(publisher, token, 2n ** 200n);
    const state = StateDb.open(join(tmp, "data"));
    const billing = new Billing({
      db: state.db,
      chain: provider,
      chainId: BigInt(chain.chainId),
      lifecycle: { stop: async () => {}, start: async () => {}, remove: async () => {} },
      token,
      pricing: { token, prices: { cpu: 1n, memory: 1n, storage: 1n } },
      // A large minimum claim keeps the measured ticks claim-free; the claim tick lowers it.
      config: { confirmations: 1, minRunSeconds: 60n, minNoticeSeconds: 60n, minClaimAmount: 10n ** 30n },
    });
    log(`opening ${N} channels (load ${loadavg()[0]!.toFixed(1)})`);
    for (let i = 0; i < N; i++) {
      const podId = keccak256(toHex(`tick-${process.pid}-${i}`));
      const now = (await chain.publicClient.getBlock()).timestamp;
      const signed = await quotePod(provider, {
        pod,
        pricing: { token, prices: { cpu: 1n, memory: 1n, storage: 1n } },
        signer: privateKeyToAccount(chain.accounts[1]!.privateKey),
        provider: providerAddr,
        publisher: publisherAddr,
        podId,
        minNoticeSeconds: 60,
        royalties: [],
        now,
        ttlSeconds: 3600n,
      });
      await openChannel(publisher, {
        quote: signed.quote,
        quoteSignature: signed.signature,
        podId,
        deposit: signed.quote.ratePerSecond * 1_000_000n,
        noticeSeconds: 600,
        royalties: [],
        approve: false,
      });
      await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
      await billing.gate.checkProvision({
        publisher: publisherAddr,
        podId,
        pod,
        quotedRatePerSecond: signed.quote.ratePerSecond,
        channel: { chainId: BigInt(chain.chainId), paymentsContract: chain.contracts.payments } as never,
      });
      await billing.gate.onProvisioned(podId.toLowerCase());
    }
    await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await billing.tick(); // warm-up: JIT, statement caches, reservations filled
    const session = new Session();
    if (PROFILE) {
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.setSamplingInterval", { interval: 200 });
      await session.post("Profiler.start");
    }
    const idle: { wall: number; cpu: number }[] = [];
    for (let i = 0; i < TICKS; i++) {
      await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await billing.tick();
      const wall = performance.now() - t0;
      const c = process.cpuUsage(c0);
      if (!r.ok || r.pods !== N) throw new Error(`tick failed: ${JSON.stringify(r.errors.slice(0, 3))}`);
      idle.push({ wall, cpu: (c.user + c.system) / 1000 });
    }
    // One tick that claims every channel (batched, receipts awaited).
    (billing.config as { minClaimAmount: bigint }).minClaimAmount = 1n;
    await chain.publicClient.request({ method: "evm_increaseTime" as never, params: [toHex(600)] as never });
    await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await billing.tick();
    const claimWall = performance.now() - t0;
    const cc = process.cpuUsage(c0);
    const claimCpu = (cc.user + cc.system) / 1000;
    if (PROFILE) {
      const { profile } = await session.post("Profiler.stop");
      await writeFile(PROFILE, JSON.stringify(profile));
      session.disconnect();
      log(`profile written to ${PROFILE}`);
    }
    const claims = billing.store.allPods().reduce((s, p) => s + billing.store.claims(p.podKey).length, 0);
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(
      `\nN = ${N} channels, load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")} (2 cores)\n`,
    );
    console.log("| tick | wall ms | wall ms/pod | CPU ms | CPU ms/pod |");
    console.log("|---|---:|---:|---:|---:|");
    const w = med(idle.map((x) => x.wall));
    const cpu = med(idle.map((x) => x.cpu));
    console.log(
      `| nothing due (median of ${TICKS}) | ${w.toFixed(0)} | ${(w / N).toFixed(2)} | ${cpu.toFixed(0)} | ${(cpu / N).toFixed(2)} |`,
    );
    console.log(
      `| claims every channel (${claims} claims, ok=${r.ok}) | ${claimWall.toFixed(0)} | ${(claimWall / N).toFixed(2)} | ${claimCpu.toFixed(0)} | ${(claimCpu / N).toFixed(2)} |`,
    );
    await billing.stop();
    state.db.close();
  } finally {
    await chain.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
