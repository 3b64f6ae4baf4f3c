// Gateway benchmark: requests/s and p50/p99 latency through the gateway against the container's own port, in
// the same run (wrk), with each data plane (the Node gateway alone, and nginx in front of it) and a bare Node
// TCP pipe as a floor, for a keep-alive upstream (Node in the pod, the default) and busybox httpd (closes every
// connection); cold start from zero against `podman start`.
//
//   npm run build && node bench/gateway/run.ts [--seconds 5] [--rounds 2] [--connections 1,8,16,64]
//     [--upstream keepalive,busybox] [--work-us 0] [--pod-cpu 1000] [--cold 5] [--json]
//
// --work-us N: the keep-alive upstream burns N µs of CPU per request (an application doing some work);
// --pod-cpu M: the pod's CPU limit in millicores (what a manifest asks for).
//
// Needs root, podman, buildah, /bin/busybox and wrk (apt; in scripts/setup.sh's APT_PACKAGES).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import {
  createGateway,
  engineWaker,
  findNginx,
  type Gateway,
  HostFirewall,
  nginxDirFor,
  PodmanEngine,
  type PodSpec,
  type PodWaker,
} from "@trustedpods/provider";

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "2" },
    connections: { type: "string", default: "1,8,16,64" },
    upstream: { type: "string", default: "keepalive,busybox" },
    "work-us": { type: "string", default: "0" },
    "pod-cpu": { type: "string", default: "1000" },
    cold: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const COLD = Number(args.cold);
const CONNECTIONS = args.connections.split(",").map(Number);
const WORK_US = Number(args["work-us"]);
const POD_CPU = Number(args["pod-cpu"]);
type Kind = "keepalive" | "busybox";
const KINDS = args.upstream.split(",") as Kind[];
for (const k of KINDS) if (k !== "keepalive" && k !== "busybox") throw new Error(`unknown upstream ${k}`);
const uid = randomBytes(4).toString("hex");
const images: Record<Kind, string> = {
  keepalive: `localhost/tpod-gwbench-${uid}:node`,
  busybox: `localhost/tpod-gwbench-${uid}:busybox`,
};
const log = (msg: string) => process.stderr.write(`[bench/gateway] ${msg}\n`);
const NGINX = findNginx();
if (!NGINX) throw new Error("nginx is not installed (apt install nginx; scripts/setup.sh does)");
/** direct: the container; node: the gateway serving the port itself; nginx: the native data plane in front. */
const PATHS = ["direct", "node", "nginx", "bare-tcp"] as const;
type PathName = (typeof PATHS)[number];
const viaGateway = (p: PathName) => p === "node" || p === "nginx";

interface WrkResult {
  rps: number;
  requests: number;
  /** CPU of this process (gateway or bare proxy; ~0 for direct) per request, µs. */
  proxyCpuUs: number;
  /** CPU of the container per request (cgroup cpuacct), µs; NaN when the cgroup file is not found. */
  podCpuUs: number;
  p50: number;
  p99: number;
  errors: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) throw new Error(`cannot parse wrk latency ${v}`);
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000;
}

/** cpuacct.usage (ns) of a container, cgroup v1 as Podman lays it out here. */
async function podCpuFile(containerName: string): Promise<string | null> {
  const id = (await run("podman", ["inspect", containerName, "--format", "{{.Id}}"])).stdout.trim();
  for (const parent of ["libpod_parent", "machine.slice", "system.slice"]) {
    for (const name of [`libpod-${id}`, `libpod-${id}.scope`]) {
      const f = `/sys/fs/cgroup/cpuacct/${parent}/${name}/cpuacct.usage`;
      if (
        await readFile(f).then(
          () => true,
          () => false,
        )
      )
        return f;
    }
  }
  return null;
}

/** CPU time (µs) of nginx's master and workers, from /proc: the nginx path's proxy CPU besides ours. */
async function nginxCpuUs(dir: string): Promise<number> {
  const master = (await readFile(path.join(dir, "nginx.pid"), "utf8")).trim();
  const children = (await readFile(`/proc/${master}/task/${master}/children`, "utf8")).trim().split(/\s+/);
  const tick = 1e6 / 100; // USER_HZ
  let total = 0;
  for (const pid of [master, ...children.filter(Boolean)]) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total += (Number(f[11]) + Number(f[12])) * tick;
  }
  return total;
}

const readNs = async (f: string | null) => (f ? Number((await readFile(f, "utf8")).trim()) : Number.NaN);

async function wrk(
  url: string,
  connections: number,
  host: string | undefined,
  cpuFile: string | null,
  otherCpuUs?: () => Promise<number>,
): Promise<WrkResult> {
  const argv = ["-t", "1", "-c", String(connections), "-d", `${SECONDS}s`, "--latency"];
  if (host) argv.push("-H", `Host: ${host}`);
  const pod0 = await readNs(cpuFile);
  const other0 = (await otherCpuUs?.()) ?? 0;
  const cpu0 = process.cpuUsage();
  const { stdout } = await run("wrk", [...argv, url], { maxBuffer: 1 << 20 });
  const cpu = process.cpuUsage(cpu0);
  const otherUs = ((await otherCpuUs?.()) ?? 0) - other0;
  const podNs = (await readNs(cpuFile)) - pod0;
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(stdout)?.[1] ?? "");
  const p99 = toMs(/\s99%\s+(\S+)/.exec(stdout)?.[1] ?? "");
  const errLine = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const errors = (errLine ? errLine.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + non2xx;
  return {
    rps,
    requests,
    proxyCpuUs: (cpu.user + cpu.system + otherUs) / requests,
    podCpuUs: podNs / 1000 / requests,
    p50,
    p99,
    errors,
  };
}

function get(url: string, host?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: host ? { host } : {} }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
  });
}

/** Polls until the server answers 200 (the "first answer" of a cold start). */
async function firstAnswer(url: string, host?: string): Promise<void> {
  for (;;) {
    const ok = await get(url, host).then(
      (s) => s === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function commit(ctr: string, tag: string, cmd: string[]): Promise<void> {
  await run("buildah", ["config", "--entrypoint", "[]", "--cmd", JSON.stringify(cmd), ctr]);
  await run("buildah", ["commit", "-q", ctr, tag]);
}

async function buildBusybox(dir: string): Promise<void> {
  const ctr = (await run("buildah", ["from", "scratch"])).stdout.trim();
  try {
    await writeFile(path.join(dir, "index.html"), "hello from the pod\n");
    await run("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await run("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await run("buildah", ["copy", ctr, path.join(dir, "index.html"), "/www/index.html"]);
    await commit(ctr, images.busybox, ["/bin/sh"]);
  } finally {
    await run("buildah", ["rm", ctr]).catch(() => {});
  }
}

/** Scratch + this Node binary + the shared libraries ldd lists + upstream.mjs: nothing is pulled. */
async function buildKeepAlive(): Promise<void> {
  const node = process.execPath;
  const libs = [...(await run("ldd", [node])).stdout.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]!);
  const ctr = (await run("buildah", ["from", "scratch"])).stdout.trim();
  try {
    await run("buildah", ["copy", ctr, node, "/bin/node"]);
    for (const lib of new Set(libs)) await run("buildah", ["copy", ctr, lib, lib]);
    await run("buildah", ["copy", ctr, path.join(import.meta.dirname, "upstream.mjs"), "/srv/upstream.mjs"]);
    await commit(ctr, images.keepalive, ["/bin/node", "/srv/upstream.mjs"]);
  } finally {
    await run("buildah", ["rm", ctr]).catch(() => {});
  }
}

function podSpec(kind: Kind, podId: string): PodSpec {
  const resources = { cpuMillis: POD_CPU, memoryBytes: 256 * 1024 * 1024, pids: 256 };
  const ports = [{ containerPort: 8080, protocol: "http" as const }];
  // The engine's Init (tini) makes stops quick; without it busybox httpd as PID 1 waits the full timeout.
  const container =
    kind === "busybox"
      ? {
          name: "web",
          image: images.busybox,
          command: ["httpd", "-f", "-p", "8080", "-h", "/www"],
          ports,
          resources,
        }
      : { name: "web", image: images.keepalive, env: { WORK_US: String(WORK_US) }, ports, resources };
  return { podId, containers: [container] };
}

/** The least any proxy in Node does: one upstream TCP connection per client connection, bytes piped. */
async function bareTcpProxy(target: { host: string; port: number }): Promise<net.Server> {
  const server = net.createServer({ noDelay: true }, (s) => {
    const u = net.connect({ ...target, noDelay: true });
    s.pipe(u);
    u.pipe(s);
    s.on("error", () => u.destroy());
    u.on("error", () => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return server;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

type Runs = Record<PathName, WrkResult[]>;

interface Row {
  rps: number;
  proxyCpuUs: number;
  podCpuUs: number;
  p50: number;
  p99: number;
  errors: number;
}

function summarize(xs: WrkResult[]): Row {
  return {
    rps: median(xs.map((x) => x.rps)),
    proxyCpuUs: median(xs.map((x) => x.proxyCpuUs)),
    podCpuUs: median(xs.map((x) => x.podCpuUs)),
    p50: median(xs.map((x) => x.p50)),
    p99: median(xs.map((x) => x.p99)),
    errors: xs.reduce((a, x) => a + x.errors, 0),
  };
}

async function steadyState(
  kind: Kind,
  engine: PodmanEngine,
  gws: Record<"node" | "nginx", Gateway>,
  nginxDir: string,
) {
  const gw = gws.node;
  const podId = `gwbench-${kind.slice(0, 2)}-${uid}`;
  const host = gw.hostnameFor(`bench-${kind.slice(0, 2)}-${uid}`);
  const st = await engine.apply(podSpec(kind, podId));
  const target = { host: st.containers[0]!.ip!, port: 8080 };
  const file = kind === "busybox" ? "/index.html" : "/";
  for (const g of Object.values(gws))
    g.setRoutes(podId, [{ hostname: host, container: "web", containerPort: 8080 }], {});
  const bareTcp = await bareTcpProxy(target);
  const urls: Record<PathName, string> = {
    direct: `http://${target.host}:${target.port}${file}`,
    node: `http://127.0.0.1:${gws.node.address.port}${file}`,
    nginx: `http://127.0.0.1:${gws.nginx.address.port}${file}`,
    "bare-tcp": `http://127.0.0.1:${(bareTcp.address() as net.AddressInfo).port}${file}`,
  };
  try {
    const cpuFile = await podCpuFile(engine.containerName(podId, "web"));
    await firstAnswer(urls.direct);
    await firstAnswer(urls.node, host);
    // The first request looks the pod up; nginx then sends the host straight to the container.
    await firstAnswer(urls.nginx, host);
    await gws.nginx.settled();
    // Warm up (JIT, pools) outside the measurement.
    for (const p of PATHS) {
      await run("wrk", ["-t1", "-c8", "-d2s", ...(viaGateway(p) ? ["-H", `Host: ${host}`] : []), urls[p]]);
    }
    const load: Record<string, Runs> = {};
    for (const c of CONNECTIONS) {
      const runs: Runs = { direct: [], node: [], nginx: [], "bare-tcp": [] };
      load[c] = runs;
      for (let r = 0; r < ROUNDS; r++) {
        log(
          `${kind}: wrk ${SECONDS}s, ${c} connection(s), round ${r + 1}/${ROUNDS} (load ${os.loadavg()[0]!.toFixed(2)})`,
        );
        for (const p of PATHS)
          runs[p].push(
            await wrk(
              urls[p],
              c,
              viaGateway(p) ? host : undefined,
              cpuFile,
              p === "nginx" ? () => nginxCpuUs(nginxDir) : undefined,
            ),
          );
      }
    }
    return { podId, host, load };
  } finally {
    bareTcp.close();
  }
}

async function coldStart(
  engine: PodmanEngine,
  gw: Gateway,
  podId: string,
  host: string,
  sleepCalls: () => number,
  wakeLog: { startMs: number; readyMs: number }[],
) {
  const file = podId.includes("-bu-") ? "/index.html" : "/";
  const via = `http://127.0.0.1:${gw.address.port}${file}`;
  const name = engine.containerName(podId, "web");
  const coldPodman: number[] = [];
  const coldEngine: number[] = [];
  const coldGateway: number[] = [];
  // engine.start() refreshes the pod's iptables rules before starting (they do not survive a reboot): timed
  // alone, with the same call on the same bridge.
  const firewallMs: number[] = [];
  const bridge = (
    await run("podman", [
      "network",
      "inspect",
      engine.networkName(podId),
      "--format",
      "{{.NetworkInterface}}",
    ])
  ).stdout.trim();
  const firewall = new HostFirewall();
  const route = [{ hostname: host, container: "web", containerPort: 8080 }];
  wakeLog.length = 0;
  for (let i = 0; i < COLD; i++) {
    log(`cold start ${i + 1}/${COLD} (load ${os.loadavg()[0]!.toFixed(2)})`);
    // Baseline: the podman CLI.
    await engine.stop(podId);
    let t = performance.now();
    await run("podman", ["start", name]);
    const ipNow = (await engine.status(podId)).containers[0]!.ip!;
    await firstAnswer(`http://${ipNow}:8080${file}`);
    coldPodman.push(performance.now() - t);
    // The engine API alone (what the gateway's default waker calls), for reference.
    await engine.stop(podId);
    t = performance.now();
    await engine.start(podId);
    const ipE = (await engine.status(podId)).containers[0]!.ip!;
    await firstAnswer(`http://${ipE}:8080${file}`);
    coldEngine.push(performance.now() - t);
    // Through the gateway: let scale-to-zero stop it, then one request wakes it.
    const before = sleepCalls();
    gw.setRoutes(podId, route, { scaleToZero: { idleMs: 200 } });
    // Asleep, the stop call finished (requests would wait for it), the container stopped.
    for (;;) {
      const st = gw.podState(podId);
      if (sleepCalls() > before && st?.state === "asleep" && st.changing === null) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if ((await engine.status(podId)).running) throw new Error("pod still running after scale to zero");
    t = performance.now();
    const status = await get(via, host);
    coldGateway.push(performance.now() - t);
    if (status !== 200) throw new Error(`cold request answered ${status}`);
    gw.setRoutes(podId, route, {});
    if (process.getuid?.() === 0) {
      t = performance.now();
      await firewall.allowPod(podId, bridge);
      firewallMs.push(performance.now() - t);
    }
  }
  return {
    podmanStartMs: median(coldPodman),
    engineStartMs: median(coldEngine),
    gatewayMs: median(coldGateway),
    wakeStartMs: median(wakeLog.map((w) => w.startMs)),
    wakeReadyMs: median(wakeLog.map((w) => w.readyMs)),
    firewallMs: firewallMs.length ? median(firewallMs) : null,
    samples: { podman: coldPodman, engine: coldEngine, gateway: coldGateway, firewall: firewallMs },
  };
}

function report(
  kind: Kind,
  load: Record<string, Runs>,
  rows: string[],
  summary: Record<string, unknown>,
): void {
  rows.push(
    "",
    `### upstream: ${kind === "keepalive" ? `keep-alive (Node http in the pod${WORK_US ? `, ${WORK_US} µs of work per request` : ""})` : "busybox httpd (closes every connection)"}, pod limited to ${POD_CPU / 1000} CPU`,
    "",
    "| conns | path | requests/s | ratio to direct | p50 ms | p99 ms | p99 - direct ms | proxy CPU µs/req | pod CPU µs/req | errors |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  const out: Record<string, unknown> = {};
  for (const [c, runs] of Object.entries(load)) {
    const d = summarize(runs.direct);
    const per: Record<string, unknown> = {};
    for (const p of PATHS) {
      const s = summarize(runs[p]);
      const ratio = s.rps / d.rps;
      const p99Delta = s.p99 - d.p99;
      per[p] = { ...s, ratio, p99DeltaMs: p99Delta, runs: runs[p] };
      rows.push(
        `| ${c} | ${p} | ${s.rps.toFixed(0)} | ${p === "direct" ? "" : `${ratio.toFixed(2)}x`} | ${s.p50.toFixed(3)} | ${s.p99.toFixed(3)} | ${p === "direct" ? "" : `${p99Delta >= 0 ? "+" : ""}${p99Delta.toFixed(3)}`} | ${p === "direct" ? "" : s.proxyCpuUs.toFixed(0)} | ${Number.isNaN(s.podCpuUs) ? "n/a" : s.podCpuUs.toFixed(0)} | ${s.errors} |`,
      );
    }
    out[`c${c}`] = per;
  }
  summary[kind] = out;
  rows.push("");
  for (const [c, per] of Object.entries(out) as [
    string,
    Record<PathName, { ratio: number; p99DeltaMs: number }>,
  ][]) {
    const g = per.nginx;
    rows.push(
      `${c.slice(1)} conn: gateway (nginx data plane) ${g.ratio.toFixed(2)}x direct requests/s (target >= 0.8x: ${g.ratio >= 0.8 ? "met" : "not met"}), p99 ${g.p99DeltaMs >= 0 ? "+" : ""}${g.p99DeltaMs.toFixed(3)} ms (target <= +1 ms: ${g.p99DeltaMs <= 1 ? "met" : "not met"}); Node data plane ${per.node.ratio.toFixed(2)}x, bare Node TCP pipe ${per["bare-tcp"].ratio.toFixed(2)}x`,
    );
  }
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-gwbench-"));
  const loadBefore = os.loadavg();
  log(`load average ${loadBefore.map((x) => x.toFixed(2)).join(" ")}; building images`);
  if (KINDS.includes("busybox")) await buildBusybox(tmp);
  if (KINDS.includes("keepalive")) await buildKeepAlive();
  const engine = await PodmanEngine.open({
    runDir: path.join(tmp, "run"),
    secretsDir: `/dev/shm/tpod-gwbench-${uid}`,
    owner: `b${uid}`,
  });
  let sleepCalls = 0;
  const inner = engineWaker(engine);
  const waker: PodWaker = {
    wake: inner.wake,
    sleep: async (id) => {
      sleepCalls++;
      await inner.sleep(id);
    },
  };
  const wakeLog: { startMs: number; readyMs: number }[] = [];
  const gwLog = {
    info: (o: object) => {
      if ("readyMs" in o) wakeLog.push(o as { startMs: number; readyMs: number });
    },
    warn: (o: object, m?: string) => log(`${m} ${JSON.stringify(o)}`),
  };
  const nginxDir = nginxDirFor(tmp);
  const common = {
    engine,
    waker,
    log: gwLog,
    listen: { host: "127.0.0.1", port: 0 },
    baseDomain: "localhost",
  };
  const gws = {
    node: await createGateway(common),
    nginx: await createGateway({ ...common, nginx: { binary: NGINX, dir: nginxDir } }),
  };
  // Cold start through what the daemon runs when nginx is installed.
  const gw = gws.nginx;
  const pods: string[] = [];
  try {
    const rows: string[] = [];
    const summary: Record<string, unknown> = {};
    let coldPod: { podId: string; host: string } | null = null;
    for (const kind of KINDS) {
      const r = await steadyState(kind, engine, gws, nginxDir);
      pods.push(r.podId);
      report(kind, r.load, rows, summary);
      // Cold start on busybox when measured (what earlier runs used), else on the keep-alive pod.
      if (!coldPod || kind === "busybox") coldPod = { podId: r.podId, host: r.host };
    }
    let cold: Awaited<ReturnType<typeof coldStart>> | null = null;
    if (COLD > 0 && coldPod) {
      for (const p of pods) if (p !== coldPod.podId) await engine.remove(p).catch(() => {});
      cold = await coldStart(engine, gw, coldPod.podId, coldPod.host, () => sleepCalls, wakeLog);
      rows.push(
        "",
        `| cold start (${coldPod.podId.includes("-bu-") ? "busybox" : "keep-alive"} pod, median of ${COLD}) | ms |`,
        "|---|---:|",
        `| podman start + first answer | ${cold.podmanStartMs.toFixed(0)} |`,
        `| engine.start() + first answer | ${cold.engineStartMs.toFixed(0)} |`,
        `| first request through the gateway, pod scaled to zero | ${cold.gatewayMs.toFixed(0)} |`,
        `| of which: status + engine.start() + status, median | ${cold.wakeStartMs.toFixed(0)} |`,
        `| of which: until the port accepted a connection, median | ${cold.wakeReadyMs.toFixed(0)} |`,
        `| iptables refresh inside engine.start() (HostFirewall.allowPod) alone | ${cold.firewallMs?.toFixed(0) ?? "n/a"} |`,
        "",
        `cold start through the gateway / podman start = ${(cold.gatewayMs / cold.podmanStartMs).toFixed(2)}x (target <= 1.5x)`,
      );
    }
    const loadAfter = os.loadavg();
    rows.unshift(
      `load average before ${loadBefore.map((x) => x.toFixed(2)).join(" ")}, after ${loadAfter.map((x) => x.toFixed(2)).join(" ")}; ${os.cpus().length} cores; wrk -t1 ${SECONDS}s x ${ROUNDS} rounds, medians`,
    );
    if (args.json) console.log(JSON.stringify({ loadBefore, loadAfter, load: summary, cold }, null, 2));
    else console.log(rows.join("\n"));
  } finally {
    await gws.node.close();
    await gws.nginx.close();
    for (const p of pods) await engine.remove(p).catch(() => {});
    await engine.close();
    await run("podman", ["rmi", "-f", ...KINDS.map((k) => images[k])]).catch(() => {});
    await rm(tmp, { recursive: true, force: true });
    await rm(`/dev/shm/tpod-gwbench-${uid}`, { recursive: true, force: true });
  }
}

await main();
