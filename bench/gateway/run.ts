// Gateway benchmark: requests/s and p50/p99 latency through the gateway against the container's own port,
// in the same run (wrk), and cold start from zero through the gateway against `podman start` + first answer.
//
//   npm run build && node bench/gateway/run.ts [--seconds 10] [--rounds 2] [--cold 5] [--json]
//
// Needs root, podman, buildah, /bin/busybox and wrk (apt; in scripts/setup.sh's APT_PACKAGES).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { createGateway, engineWaker, PodmanEngine, type PodWaker } from "@trustedpods/provider";

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    rounds: { type: "string", default: "2" },
    cold: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const COLD = Number(args.cold);
const uid = randomBytes(4).toString("hex");
const image = `localhost/tpod-gwbench-${uid}:web`;
const podId = `gwbench-${uid}`;
const log = (msg: string) => process.stderr.write(`[bench/gateway] ${msg}\n`);

interface WrkResult {
  rps: number;
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

async function wrk(url: string, connections: number, host?: string): Promise<WrkResult> {
  const argv = ["-t", "1", "-c", String(connections), "-d", `${SECONDS}s`, "--latency"];
  if (host) argv.push("-H", `Host: ${host}`);
  const { stdout } = await run("wrk", [...argv, url], { maxBuffer: 1 << 20 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(stdout)?.[1] ?? "");
  const p99 = toMs(/\s99%\s+(\S+)/.exec(stdout)?.[1] ?? "");
  const errLine = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const errors = (errLine ? errLine.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + non2xx;
  return { rps, p50, p99, errors };
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

async function buildImage(dir: string): Promise<void> {
  const { stdout } = await run("buildah", ["from", "scratch"]);
  const ctr = stdout.trim();
  try {
    await writeFile(path.join(dir, "index.html"), "hello from the pod\n");
    await run("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await run("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await run("buildah", ["copy", ctr, path.join(dir, "index.html"), "/www/index.html"]);
    await run("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await run("buildah", ["commit", "-q", ctr, image]);
  } finally {
    await run("buildah", ["rm", ctr]).catch(() => {});
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-gwbench-"));
  log("building the busybox httpd image");
  await buildImage(tmp);
  const engine = await PodmanEngine.open({
    runDir: path.join(tmp, "run"),
    secretsDir: `/dev/shm/tpod-gwbench-${uid}`,
    owner: `b${uid}`,
  });
  // The engine's Init (tini) makes stops quick; without it busybox httpd as PID 1 waits the full timeout.
  const spec = {
    podId,
    containers: [
      {
        name: "web",
        image,
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"],
        ports: [{ containerPort: 8080, protocol: "http" as const }],
        resources: { cpuMillis: 1000, memoryBytes: 128 * 1024 * 1024, pids: 256 },
      },
    ],
  };
  let sleepCalls = 0;
  const inner = engineWaker(engine);
  const waker: PodWaker = {
    wake: inner.wake,
    sleep: async (id) => {
      sleepCalls++;
      await inner.sleep(id);
    },
  };
  const gw = await createGateway({
    engine,
    waker,
    listen: { host: "127.0.0.1", port: 0 },
    baseDomain: "localhost",
  });
  const host = gw.hostnameFor(`bench-${uid}`);
  try {
    const st = await engine.apply(spec);
    const ip = st.containers[0]!.ip!;
    const direct = `http://${ip}:8080/index.html`;
    const via = `http://127.0.0.1:${gw.address.port}/index.html`;
    gw.setRoutes(podId, [{ hostname: host, container: "web", containerPort: 8080 }], {});
    await firstAnswer(direct);
    await firstAnswer(via, host);

    // ---------------------------------------------------------------- steady state
    const load: Record<string, { direct: WrkResult[]; gateway: WrkResult[] }> = {};
    for (const c of [1, 16]) {
      load[`c${c}`] = { direct: [], gateway: [] };
      for (let r = 0; r < ROUNDS; r++) {
        log(`wrk ${SECONDS}s, ${c} connection(s), round ${r + 1}/${ROUNDS}: direct, then gateway`);
        load[`c${c}`]!.direct.push(await wrk(direct, c));
        load[`c${c}`]!.gateway.push(await wrk(via, c, host));
      }
    }

    // ---------------------------------------------------------------- cold start
    const name = engine.containerName(podId, "web");
    const coldPodman: number[] = [];
    const coldEngine: number[] = [];
    const coldGateway: number[] = [];
    for (let i = 0; i < COLD; i++) {
      log(`cold start ${i + 1}/${COLD}`);
      // Baseline: the podman CLI.
      await engine.stop(podId);
      let t = performance.now();
      await run("podman", ["start", name]);
      const ipNow = (await engine.status(podId)).containers[0]!.ip!;
      await firstAnswer(`http://${ipNow}:8080/index.html`);
      coldPodman.push(performance.now() - t);
      // The engine API alone (what the gateway's default waker calls), for reference.
      await engine.stop(podId);
      t = performance.now();
      await engine.start(podId);
      const ipE = (await engine.status(podId)).containers[0]!.ip!;
      await firstAnswer(`http://${ipE}:8080/index.html`);
      coldEngine.push(performance.now() - t);
      // Through the gateway: let scale-to-zero stop it, then one request wakes it.
      const before = sleepCalls;
      gw.setRoutes(podId, [{ hostname: host, container: "web", containerPort: 8080 }], {
        scaleToZero: { idleMs: 200 },
      });
      while (
        !(
          sleepCalls > before &&
          gw.podState(podId)?.state === "asleep" &&
          !(await engine.status(podId)).running
        )
      ) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 200)); // let the stop call return
      t = performance.now();
      const status = await get(via, host);
      coldGateway.push(performance.now() - t);
      if (status !== 200) throw new Error(`cold request answered ${status}`);
      gw.setRoutes(podId, [{ hostname: host, container: "web", containerPort: 8080 }], {});
    }

    // ---------------------------------------------------------------- report
    const rows: string[] = [];
    const summary: Record<string, unknown> = {};
    rows.push("| load | path | requests/s | p50 ms | p99 ms | errors |", "|---|---|---:|---:|---:|---:|");
    for (const [k, v] of Object.entries(load)) {
      for (const which of ["direct", "gateway"] as const) {
        const xs = v[which];
        rows.push(
          `| ${k.slice(1)} conn | ${which} | ${median(xs.map((x) => x.rps)).toFixed(0)} | ${median(xs.map((x) => x.p50)).toFixed(3)} | ${median(xs.map((x) => x.p99)).toFixed(3)} | ${xs.reduce((a, x) => a + x.errors, 0)} |`,
        );
      }
      const ratio = median(v.gateway.map((x) => x.rps)) / median(v.direct.map((x) => x.rps));
      const p99Delta = median(v.gateway.map((x) => x.p99)) - median(v.direct.map((x) => x.p99));
      summary[k] = { ratio, p99DeltaMs: p99Delta, runs: v };
    }
    rows.push("");
    for (const [k, v] of Object.entries(summary) as [string, { ratio: number; p99DeltaMs: number }][]) {
      rows.push(
        `${k.slice(1)} connection(s): gateway/direct requests/s = ${v.ratio.toFixed(2)}x (target >= 0.8x), p99 +${v.p99DeltaMs.toFixed(3)} ms (target <= 1 ms)`,
      );
    }
    const cold = {
      podmanStartMs: median(coldPodman),
      engineStartMs: median(coldEngine),
      gatewayMs: median(coldGateway),
      samples: { podman: coldPodman, engine: coldEngine, gateway: coldGateway },
    };
    rows.push(
      "",
      "| cold start (median of " + COLD + ") | ms |",
      "|---|---:|",
      `| podman start + first answer | ${cold.podmanStartMs.toFixed(0)} |`,
      `| engine.start() + first answer | ${cold.engineStartMs.toFixed(0)} |`,
      `| first request through the gateway, pod scaled to zero | ${cold.gatewayMs.toFixed(0)} |`,
      "",
      `cold start through the gateway / podman start = ${(cold.gatewayMs / cold.podmanStartMs).toFixed(2)}x (target <= 1.5x)`,
    );
    if (args.json) console.log(JSON.stringify({ load: summary, cold }, null, 2));
    else console.log(rows.join("\n"));
  } finally {
    await gw.close();
    await engine.remove(podId).catch(() => {});
    await engine.close();
    await run("podman", ["rmi", "-f", image]).catch(() => {});
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
