// One provider daemon with N small pods (busybox httpd, 1m CPU) deployed through the real protocol, measured.
//
//   npm run build && node bench/scale/run.ts [--n 200] [--at 50,100] [--parallel 8] [--seconds 10] [--idle 60]
//
// The devnet (anvil, the devnet IPFS node, Podman) runs in this process; its provider daemon is moved into its
// own process (`tpod provider serve` on the devnet's provider config, same ports and keys), so its RSS and CPU
// are the daemon's alone. Publishers deploy exactly as `tpod deploy` does (upload IPFS node, libp2p node, quote,
// channel, provision): the first pods one by one, the rest from `--parallel` publishers (dev accounts 2..9) at
// once. At each checkpoint (`--at`, and N): daemon RSS/CPU at idle, the billing tick (its metrics: wall and CPU),
// gateway requests/s spread over all pods against the same requests sent directly to the pods' addresses,
// `tpod provider pods` and status latency, a daemon restart's time to ready (it reconciles every pod before it
// answers; the reconciliation's own time is read from its log) and that every pod still answers, and Podman's
// own per-container cost (conmon RSS, container memory, `podman run -d`) as the floor; then deploys continue.
// Every pod is removed at the end by the provider's owner label; the image by its name.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { startDevnet } from "@trustedpods/devnet";
import { createIpfsNode, type IpfsNode } from "@trustedpods/ipfs";
import { createP2PNode } from "@trustedpods/p2p";
import { parseManifest } from "@trustedpods/protocol";
import { connectNetwork, DEVNET_POLICY, podConnection, podStatus } from "@trustedpods/publisher";
import { deploy } from "@trustedpods/publisher/node";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { buildBusyboxHttpdImage } from "../busybox-httpd.ts";

const exec = promisify(execFile);
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg("n", 50);
const PARALLEL = arg("parallel", 8);
const LOAD_SECONDS = arg("seconds", 10);
const IDLE_SECONDS = arg("idle", 60);
/** Pod counts at which everything is measured on the way to N (`--at 50,100,200`); N is always one. */
const CHECKPOINTS = [
  ...new Set([
    ...(process.argv.includes("--at")
      ? process.argv[process.argv.indexOf("--at") + 1]!.split(",").map(Number)
      : []),
    N,
  ]),
]
  .filter((x) => x > 0 && x <= N)
  .sort((a, b) => a - b);
const SEQUENTIAL = Math.min(10, CHECKPOINTS[0]!);
/** What the daemon's log says: each provision's stage timings, the last start-up reconciliation's time. */
const provisions: Record<string, number>[] = [];
let recoveredMs: number | undefined;
function daemonLogLine(line: string): void {
  if (!line.startsWith("{")) return;
  try {
    const o = JSON.parse(line) as { msg?: string; ms?: number | Record<string, number> };
    if (o.msg === "provisioned" && typeof o.ms === "object") provisions.push(o.ms);
    if (o.msg === "recovered" && typeof o.ms === "number") recoveredMs = o.ms;
  } catch {
    // not a log line of ours
  }
}
const uid = randomBytes(4).toString("hex");
const IMAGE = `localhost/tpod-bench-scale-${uid}:latest`;
const OWNER = `scale${uid}`;
const CLI = resolve("packages/cli/dist/main.js");
const log = (m: string) => console.error(`[scale ${new Date().toISOString().slice(11, 19)}] ${m}`);

const manifest = (name: string) => `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: ${name}
spec:
  containers:
    - name: web
      image: ${IMAGE}
      ports:
        - containerPort: 8080
          http: {}
      resources: {cpu: 1m, memory: 16Mi, storage: 16Mi}
`;

function getOnce(port: number, host: string, timeout = 5000, connectTo = "127.0.0.1"): Promise<number> {
  return new Promise((done) => {
    const req = http.get(
      { host: connectTo, port, path: "/", headers: { host }, timeout, agent: false },
      (res) => {
        res.resume();
        res.on("end", () => done(res.statusCode ?? 0));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => done(0));
  });
}

/** Requests/s over `seconds` with `conns` concurrent loops, each request to the next target (round robin). */
async function load(
  targets: { port: number; host: string; connectTo?: string }[],
  seconds: number,
  conns = 16,
) {
  if (targets.length === 0) return { rps: 0, failed: 0 };
  let next = 0;
  let ok = 0;
  let failed = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (performance.now() < end) {
        const t = targets[next++ % targets.length]!;
        if ((await getOnce(t.port, t.host, 5000, t.connectTo)) === 200) ok++;
        else failed++;
      }
    }),
  );
  return { rps: ok / seconds, failed };
}

interface Proc {
  rssKiB: number;
  cpuTicks: number;
}
async function procStat(pid: number): Promise<Proc> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const stat = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return {
    rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0),
    cpuTicks: Number(stat[11]) + Number(stat[12]),
  };
}
const TICKS = 100; // USER_HZ

/** The provider daemon in its own process; resolves once it printed its ready line. */
async function startDaemon(
  config: string,
): Promise<{ child: ChildProcess; ms: number; info: { metricsUrl: string } }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [CLI, "provider", "serve", "--config", config, "--json"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  let partial = "";
  child.stderr!.on("data", (d) => {
    err = (err + d).slice(-4000);
    const lines = (partial + d).split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) daemonLogLine(l);
  });
  const info = await new Promise<{ metricsUrl: string }>((ok, fail) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const line = out.split("\n").find((l) => l.startsWith("{") && l.includes('"ready"'));
      if (line) ok(JSON.parse(line));
    });
    child.on("exit", (code) => fail(new Error(`daemon exited ${code}: ${err}`)));
  });
  return { child, ms: performance.now() - t0, info };
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const gone = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([gone, new Promise((r) => setTimeout(r, 30_000))]);
  if (child.exitCode === null) child.kill("SIGKILL");
}

async function metric(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(url)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Our pods' running containers (by the provider's owner label), and where each pod's web server answers directly:
 * its infra container's address on the pod's bridge network, port 8080 (http ports are not published on the host;
 * nginx reaches the pods at the same addresses).
 */
async function ourContainers(): Promise<{ ids: string[]; direct: { host: string; port: number }[] }> {
  const ps = async (...filters: string[]) =>
    (await exec("podman", ["ps", "-q", "--no-trunc", ...filters.flatMap((f) => ["--filter", f])])).stdout
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  const ids = await ps(`label=io.trustedpods.owner=${OWNER}`);
  const infra = await ps(`label=io.trustedpods.owner=${OWNER}`, "label=io.trustedpods.infra=true");
  const direct: { host: string; port: number }[] = [];
  if (infra.length) {
    const { stdout } = await exec(
      "podman",
      ["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", ...infra],
      { maxBuffer: 64 << 20 },
    );
    for (const line of stdout.split("\n")) {
      const ip = line.trim().split(" ")[0];
      if (ip) direct.push({ host: ip, port: 8080 });
    }
  }
  return { ids, direct };
}

/** Podman's floor per container: conmon RSS and the container's own memory (cgroup v1). */
async function podmanFloor(ids: string[]) {
  const { stdout } = await exec("ps", ["-C", "conmon", "-o", "rss=,args="]);
  let conmon = 0;
  let conmons = 0;
  for (const line of stdout.split("\n")) {
    const [rss, ...rest] = line.trim().split(/\s+/);
    const args = rest.join(" ");
    if (ids.some((id) => args.includes(id))) {
      conmon += Number(rss);
      conmons++;
    }
  }
  let mem = 0;
  let mems = 0;
  for (const id of ids) {
    for (const f of [
      `/sys/fs/cgroup/memory/libpod_parent/libpod-${id}/memory.usage_in_bytes`,
      `/sys/fs/cgroup/memory/machine.slice/libpod-${id}.scope/memory.usage_in_bytes`,
    ]) {
      const v = await readFile(f, "utf8").catch(() => undefined);
      if (v) {
        mem += Number(v);
        mems++;
        break;
      }
    }
  }
  return {
    conmonKiBPerContainer: conmons ? conmon / conmons : Number.NaN,
    containerMiBPerContainer: mems ? mem / mems / 2 ** 20 : Number.NaN,
    conmons,
    mems,
  };
}

/** Containers, networks and per-pod images of this run's provider (owner label), never anything else. */
async function removeLeftovers(): Promise<void> {
  const label = `label=io.trustedpods.owner=${OWNER}`;
  const list = async (args: string[]) =>
    (await exec("podman", args)).stdout
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  const pods = await list([
    "ps",
    "-a",
    "--filter",
    label,
    "--format",
    '{{index .Labels "io.trustedpods.pod"}}',
  ]);
  const ids = await list(["ps", "-aq", "--filter", label]);
  if (ids.length) await exec("podman", ["rm", "-f", "-t", "0", "--depend", ...ids]);
  for (const n of await list(["network", "ls", "-q", "--filter", label]))
    await exec("podman", ["network", "rm", n]);
  for (const v of await list(["volume", "ls", "-q", "--filter", label]))
    await exec("podman", ["volume", "rm", "-f", v]);
  // The daemon's host firewall rules of these pods (comment tpod:<pod id> in its two chains): the daemon is stopped
  // with its pods still there, so nothing else removes them.
  let rules = 0;
  for (const chain of ["TPOD_INPUT", "TPOD_FORWARD"]) {
    const { stdout } = await exec("iptables", ["-w", "5", "-S", chain]).catch(() => ({ stdout: "" }));
    for (const line of stdout.split("\n")) {
      const m = /--comment "?tpod:([a-z0-9]+)"?/.exec(line);
      if (!line.startsWith("-A ") || !m || !pods.includes(m[1]!)) continue;
      const spec = line
        .slice(3)
        .match(/"[^"]*"|\S+/g)!
        .map((t) => t.replace(/^"|"$/g, ""));
      await exec("iptables", ["-w", "5", "-D", ...spec]).then(
        () => rules++,
        () => {},
      );
    }
  }
  const images = await list(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
  const ours = images.filter((i) => [...new Set(pods)].some((p) => i.startsWith(`localhost/tpod-${p}/`)));
  if (ours.length) await exec("podman", ["rmi", "-f", ...ours]);
  log(
    `cleanup: removed ${ids.length} containers, ${ours.length} images and ${rules} firewall rules left over`,
  );
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await fn();
  return [v, performance.now() - t];
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), "tpod-bench-scale-"));
  // A Podman store of its own (buildah, the devnet's and the daemon's Podman services, the podman CLI here all read
  // CONTAINERS_STORAGE_CONF): other sessions' containers on this shared machine neither slow its listings nor
  // break them (a foreign container stuck in "Removing" made every create fail in the shared store).
  const storageConf = join(tmp, "storage.conf");
  await writeFile(
    storageConf,
    `[storage]\ndriver = "overlay"\ngraphroot = "${join(tmp, "storage/root")}"\nrunroot = "${join(tmp, "storage/run")}"\n`,
  );
  process.env.CONTAINERS_STORAGE_CONF = storageConf;
  const load0 = loadavg()[0]!;
  log(
    `N = ${N}, load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
  );
  await buildBusyboxHttpdImage(tmp, IMAGE);
  const devnet = await startDevnet({
    home: join(tmp, "home"),
    gatewayPort: 0,
    chainPort: 0,
    engineOwner: OWNER,
    logLevel: "error",
  });
  const chain = devnet.chain;
  const providerInfo = devnet.daemon.info();
  const gwPort = devnet.info.gateway.port;
  const configFile = devnet.info.provider.config;
  // Move the daemon into its own process on the same ports (the Registry lists its multiaddrs).
  const port = (a: string) => /\/tcp\/(\d+)/.exec(a)?.[1];
  const p2pPorts = [...new Set(providerInfo.multiaddrs.map((a) => a.replace(/\/p2p\/.*/, "")))];
  const ipfsPorts = [...new Set(providerInfo.ipfs.map((a) => a.replace(/\/p2p\/.*/, "")))];
  await devnet.daemon.stop();
  let yaml = await readFile(configFile, "utf8");
  yaml = yaml
    .replace(/p2p:\n {2}listen: \[[^\]]*\]/, `p2p:\n  listen: ${JSON.stringify(p2pPorts)}`)
    .replace(/gateway:\n {2}listen: 127\.0\.0\.1:\d+/, `gateway:\n  listen: 127.0.0.1:${gwPort}`)
    .replace(/( {4}listen: )\["\/ip4\/127\.0\.0\.1\/tcp\/0"\]/, `$1${JSON.stringify(ipfsPorts)}`)
    // info: the provision and recovery timings are read from the daemon's log.
    .replace(/log:\n {2}level: \w+/, "log:\n  level: info")
    // Provisions queue behind each other in Podman: on a loaded machine 8 at once take minutes.
    .replace(/provisionTimeoutSeconds: \d+/, "provisionTimeoutSeconds: 900")
    // The daemon's default cap is 100 pods (limits.maxPods): a run to N must allow N.
    .replace(/limits:\n/, `limits:\n  maxPods: ${Math.max(N, 100)}\n`);
  if (!yaml.includes(`maxPods: ${Math.max(N, 100)}`))
    throw new Error(`cannot set limits.maxPods in ${configFile}`);
  await writeFile(configFile, yaml, { mode: 0o600 });
  log(`daemon moved to its own process: p2p ${p2pPorts.map(port).join(",")}, gateway ${gwPort}`);
  let daemon = await startDaemon(configFile);
  const network = {
    name: "devnet",
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    contracts: chain.contracts,
    isDevnet: true,
    sources: { rpcUrl: "bench", contracts: "bench" },
  };
  const deployed: { podId: Hex; host: string; publisher: number }[] = [];
  const publishers: {
    index: number;
    account: ReturnType<typeof privateKeyToAccount>;
    ipfs: IpfsNode;
    node: Awaited<ReturnType<typeof createP2PNode>>;
    clients: Awaited<ReturnType<typeof connectNetwork>>;
  }[] = [];
  // The table: a row per measure, a column per checkpoint (value, with its note in parentheses).
  const columns: string[] = [];
  const table = new Map<string, string[]>();
  const cell = (col: number, what: string, value: string, note = "") => {
    const r = table.get(what) ?? [];
    r[col] = note ? `${value} (${note})` : value;
    table.set(what, r);
    log(`[${columns[col]}] ${what}: ${value} ${note}`);
  };
  try {
    for (let i = 0; i < PARALLEL; i++) {
      const index = 2 + i;
      const account = privateKeyToAccount(chain.accounts[index]!.privateKey);
      const [ipfs, node] = await Promise.all([
        createIpfsNode({ dataDir: join(tmp, `pub-${i}`), listen: ["/ip4/127.0.0.1/tcp/0"] }),
        createP2PNode(),
      ]);
      for (const a of providerInfo.ipfs) await ipfs.dial(a).catch(() => {});
      publishers.push({ index, account, ipfs, node, clients: await connectNetwork(network, { account }) });
    }
    const stepTimes: Record<string, number>[] = [];
    const deployOne = async (pub: (typeof publishers)[number], name: string) => {
      const r = await deploy({
        pod: parseManifest(manifest(name), `${name}.yaml`),
        network,
        clients: pub.clients,
        account: pub.account,
        policy: { policy: DEVNET_POLICY, source: "devnet default" },
        node: pub.node,
        ipfs: pub.ipfs,
        minDepositSeconds: devnet.info.provider.minDepositSeconds,
        provisionTimeoutMs: 1_000_000,
      });
      deployed.push({ podId: r.podId, host: new URL(r.endpoints.http[0]!).host, publisher: pub.index });
      stepTimes.push(r.timings as Record<string, number>);
    };

    /** Everything but deploys, with `n` pods running. */
    const measure = async (col: number, n: number) => {
      const row = (what: string, value: string, note = "") => cell(col, what, value, note);
      row("load average (1 min) at this checkpoint", loadavg()[0]!.toFixed(1));
      const containers = await ourContainers();
      row("containers running (with the provider's label)", `${containers.ids.length}`, `${n} pods deployed`);

      // Idle: RSS and CPU of the daemon process over IDLE_SECONDS (its billing tick and usage meter run).
      const a = await procStat(daemon.child.pid!);
      await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
      const b = await procStat(daemon.child.pid!);
      row("daemon RSS at idle", `${(b.rssKiB / 1024).toFixed(0)} MiB`, "target at N=200: <= 300 MiB");
      // What of the RSS is V8's heap (JS objects), and what the rest (native buffers, malloc arenas, code).
      const heapUsed = await metric(daemon.info.metricsUrl, "tpod_provider_nodejs_heap_size_used_bytes");
      const heapTotal = await metric(daemon.info.metricsUrl, "tpod_provider_nodejs_heap_size_total_bytes");
      row(
        "daemon V8 heap at idle, used / total",
        `${((heapUsed ?? Number.NaN) / 2 ** 20).toFixed(0)} / ${((heapTotal ?? Number.NaN) / 2 ** 20).toFixed(0)} MiB`,
      );
      row(
        "daemon CPU at idle",
        `${(((b.cpuTicks - a.cpuTicks) / TICKS / IDLE_SECONDS) * 100).toFixed(1)} % of a core`,
        `over ${IDLE_SECONDS} s`,
      );

      // Billing tick (the daemon's own metrics): the first tick that went over every pod.
      const metricsUrl = daemon.info.metricsUrl;
      let tickPods = await metric(metricsUrl, "tpod_billing_last_tick_pods");
      const waitTick = performance.now();
      while ((tickPods ?? 0) < deployed.length && performance.now() - waitTick < 90_000) {
        await new Promise((r) => setTimeout(r, 2000));
        tickPods = await metric(metricsUrl, "tpod_billing_last_tick_pods");
      }
      const tickS = (await metric(metricsUrl, "tpod_billing_last_tick_seconds")) ?? Number.NaN;
      const tickCpuS = (await metric(metricsUrl, "tpod_billing_last_tick_cpu_seconds")) ?? Number.NaN;
      const pods = tickPods || 1;
      row(
        "billing tick, CPU",
        `${((tickCpuS * 1000) / pods).toFixed(2)} ms/pod`,
        `${(tickCpuS * 1000).toFixed(0)} ms CPU for ${tickPods} pods; target <= 5 ms/pod`,
      );
      row(
        "billing tick, wall",
        `${((tickS * 1000) / pods).toFixed(2)} ms/pod`,
        `${(tickS * 1000).toFixed(0)} ms, claims and receipts included`,
      );
      row("claims confirmed so far", `${(await metric(metricsUrl, "tpod_billing_claims_total")) ?? 0}`);

      // Every pod answers through the gateway: one request each, in turn. This also warms the gateway: after a
      // provision or a restart it learns a pod's address at the first request, and nginx is reloaded to route it
      // directly; the spread load below is then the steady state, not a storm of first lookups.
      let answering = 0;
      const [, firstMs] = await timed(async () => {
        for (const d of deployed) if ((await getOnce(gwPort, d.host, 10_000)) === 200) answering++;
      });
      row(
        "pods answering one request through the gateway",
        `${answering}/${deployed.length}`,
        `${(firstMs / deployed.length).toFixed(0)} ms each, first requests since provision or restart`,
      );
      await new Promise((r) => setTimeout(r, 5000)); // nginx's debounced reload of the learnt addresses

      // Requests/s spread over every pod, round robin: direct (the pods' bridge addresses), through the gateway,
      // direct again; the ratio is against the mean of the two direct runs.
      const directTargets = containers.direct.map((d) => ({ port: d.port, host: d.host, connectTo: d.host }));
      const direct = await load(directTargets, LOAD_SECONDS);
      const gw = await load(
        deployed.map((d) => ({ port: gwPort, host: d.host })),
        LOAD_SECONDS,
      );
      const direct2 = await load(directTargets, LOAD_SECONDS);
      const directRps = (direct.rps + direct2.rps) / 2;
      row(
        "requests/s over all pods, direct",
        directRps.toFixed(0),
        `${direct.rps.toFixed(0)} and ${direct2.rps.toFixed(0)}, ${direct.failed + direct2.failed} failed; 16 connections`,
      );
      row(
        "requests/s over all pods, gateway",
        gw.rps.toFixed(0),
        `${gw.failed} failed; **${(gw.rps / directRps).toFixed(2)}x** direct`,
      );

      // `tpod provider pods` (a fresh CLI process) and status over libp2p.
      const cliRuns: number[] = [];
      const cliCpu: number[] = [];
      let listed = 0;
      for (let i = 0; i < 3; i++) {
        // /usr/bin/time reports the CLI process's CPU seconds (user + system) on stderr's last line.
        const [out, ms] = await timed(() =>
          exec(
            "/usr/bin/time",
            ["-f", "%U %S", process.execPath, CLI, "provider", "pods", "--config", configFile, "--json"],
            { maxBuffer: 64 << 20 },
          ),
        );
        cliRuns.push(ms);
        const [u, sys] = (out.stderr.trim().split("\n").at(-1) ?? "").split(" ").map(Number);
        cliCpu.push(((u ?? 0) + (sys ?? 0)) * 1000);
        listed = (JSON.parse(out.stdout) as unknown[]).length;
      }
      row(
        "`tpod provider pods --json` (a fresh CLI process)",
        `${median(cliRuns).toFixed(0)} ms wall`,
        `${median(cliCpu).toFixed(0)} ms CPU; ${listed} pods listed; median of 3`,
      );
      const pub0 = publishers[0]!;
      const conn = podConnection(
        pub0.node,
        {
          provider: devnet.info.provider.address,
          multiaddrs: providerInfo.multiaddrs,
          chainId: chain.chainId,
        },
        pub0.account,
      );
      const mine = deployed.filter((d) => d.publisher === pub0.index).slice(0, 10);
      const statusMs: number[] = [];
      for (const d of mine) statusMs.push((await timed(() => podStatus(conn, d.podId)))[1]);
      row("pod status over libp2p", `${median(statusMs).toFixed(0)} ms`, `median of ${statusMs.length}`);

      // Restart: SIGTERM, start again; ready = every pod reconciled. Then every pod must answer.
      await stopDaemon(daemon.child);
      recoveredMs = undefined;
      daemon = await startDaemon(configFile);
      const atReady = await procStat(daemon.child.pid!);
      row(
        "daemon restart → ready",
        `${(daemon.ms / 1000).toFixed(1)} s`,
        `${(atReady.cpuTicks / TICKS).toFixed(1)} s CPU in the new process (Node start included)`,
      );
      row(
        "start-up reconciliation of every pod (inside the above)",
        recoveredMs !== undefined ? `${(recoveredMs / 1000).toFixed(2)} s` : "not logged",
        "target at N=200: <= 10 s",
      );
      answering = 0;
      for (const d of deployed) if ((await getOnce(gwPort, d.host, 10_000)) === 200) answering++;
      row("pods answering through the gateway after the restart", `${answering}/${deployed.length}`);
      row(
        "daemon RSS after the restart (every pod answered once)",
        `${((await procStat(daemon.child.pid!)).rssKiB / 1024).toFixed(0)} MiB`,
      );

      // Podman's floor: its per-container memory, and `podman run -d` of the same image at this load.
      const floor = await podmanFloor(containers.ids);
      const name = `tpod-bench-scale-run-${uid}-${n}`;
      const [, runMs] = await timed(() =>
        exec("podman", ["run", "-d", "--init", "--name", name, "--cpus", "0.01", IMAGE]),
      );
      await exec("podman", ["rm", "-f", "-t", "0", name]).catch(() => {});
      row(
        "floor: `podman run -d` of the same image",
        `${(runMs / 1000).toFixed(1)} s`,
        "one run, at this load",
      );
      row(
        "floor: conmon RSS per container",
        `${(floor.conmonKiBPerContainer / 1024).toFixed(2)} MiB`,
        `${floor.conmons} conmons`,
      );
      row(
        "floor: container memory (cgroup) per container",
        `${floor.containerMiBPerContainer.toFixed(2)} MiB`,
        `${floor.mems} cgroups`,
      );
      row(
        "daemon RSS per pod vs Podman's floor per pod",
        `${(b.rssKiB / deployed.length).toFixed(0)} KiB/pod`,
        `floor ${((floor.conmonKiBPerContainer + (floor.containerMiBPerContainer * 1024 || 0)) * 2).toFixed(0)} KiB/pod (2 containers)`,
      );
    };

    // Deploys: the first pods one by one, then from the parallel publishers up to each checkpoint, where
    // everything is measured with that many pods (a run to 200 also reports 50 and 100).
    let seqDone = false;
    for (const at of CHECKPOINTS) {
      const col = columns.length;
      columns.push(`N = ${at}`);
      const segStart = deployed.length;
      if (!seqDone) {
        seqDone = true;
        let seqFailures = 0;
        const [, seqMs] = await timed(async () => {
          for (let i = 0; i < SEQUENTIAL; i++) {
            await deployOne(publishers[0]!, `s${i}`)
              .then(() => log(`deployed ${deployed.length}/${N}: ${JSON.stringify(stepTimes.at(-1))}`))
              .catch((err) => {
                seqFailures++;
                log(`deploy s${i} failed: ${(err as Error).message.split("\n")[0]}`);
              });
          }
        });
        cell(
          col,
          "deploy, sequential (1 publisher)",
          `${((SEQUENTIAL / seqMs) * 60_000).toFixed(1)} pods/min`,
          `${SEQUENTIAL} pods, ${(seqMs / SEQUENTIAL).toFixed(0)} ms each, ${seqFailures} failed`,
        );
        const steps = Object.keys(stepTimes[0] ?? {});
        cell(
          col,
          "deploy steps, publisher side, sequential (median ms)",
          steps.map((k) => `${k} ${median(stepTimes.map((t) => t[k] ?? 0)).toFixed(0)}`).join(", "),
        );
      }
      const rest = at - deployed.length;
      const parStart = deployed.length;
      if (rest > 0) {
        let next = 0;
        let failures = 0;
        const [, parMs] = await timed(() =>
          Promise.all(
            publishers.map(async (pub) => {
              for (;;) {
                const i = next++;
                if (i >= rest) return;
                await deployOne(pub, `p${segStart}-${i}`).catch((err) => {
                  failures++;
                  log(`deploy p${segStart}-${i} failed: ${(err as Error).message.split("\n")[0]}`);
                });
                if (deployed.length % 10 === 0) log(`deployed ${deployed.length}/${N}`);
              }
            }),
          ),
        );
        cell(
          col,
          `deploy, ${PARALLEL} publishers in parallel`,
          `${((rest / parMs) * 60_000).toFixed(1)} pods/min`,
          `${rest} pods (${parStart + 1}..${parStart + rest}), ${failures} failed`,
        );
        // Measuring "N pods" with fewer running would report numbers for the wrong N.
        if (failures > 0) throw new Error(`${failures} of ${rest} deploys failed on the way to ${at} pods`);
      }
      const segProvisions = provisions.splice(0);
      const keys = [...new Set(segProvisions.flatMap((m) => Object.keys(m)))];
      cell(
        col,
        "provision stages, daemon side (median ms)",
        keys.map((k) => `${k} ${median(segProvisions.map((m) => m[k] ?? 0)).toFixed(0)}`).join(", "),
        `${segProvisions.length} provisions`,
      );
      await measure(col, at);
    }
  } catch (err) {
    log(`failed: ${(err as Error).stack ?? err}`);
    process.exitCode = 1;
  } finally {
    await stopDaemon(daemon.child).catch(() => {});
    for (const p of publishers) await Promise.all([p.ipfs.stop(), p.node.stop()]).catch(() => {});
    await devnet.stop().catch((e) => log(`devnet stop: ${e}`));
    // Whatever is left of ours, by the provider's owner label only (and the images named after its pods).
    await removeLeftovers().catch((e) => log(`cleanup: ${e}`));
    await exec("buildah", ["rmi", "-f", IMAGE]).catch(() => {});
    // A stopped Helia node's peer store may still write a file: retry the removal.
    await rm(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 }).catch(() => {});
  }
  console.log(
    `\nN = ${CHECKPOINTS.join(", ")} pods; load average at start ${load0.toFixed(1)}, at end ${loadavg()[0]!.toFixed(1)} (2 cores)\n`,
  );
  console.log(`| measure | ${columns.join(" | ")} |`);
  console.log(`|---|${columns.map(() => "---:").join("|")}|`);
  for (const [w, v] of table) console.log(`| ${w} | ${columns.map((_, i) => v[i] ?? "").join(" | ")} |`);
}

await main();
