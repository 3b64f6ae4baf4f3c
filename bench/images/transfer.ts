// Image transfer benchmark: a publisher node (child process) and a provider node (this process) on loopback.
// Compares, in the same run, a plain TCP copy of the layer into a file (the floor), our pull over the fast path
// (/trusted-pods/blob/1.0.0 handing out a bulk-channel ticket: TLS-PSK or plain TCP; or every byte inside the
// libp2p stream), and a pull through stock Helia bitswap. Run after `npm run build`:
//   node bench/images/transfer.ts [--mib 256] [--runs 3] [--methods tcp,tls,plain,libp2p,bitswap]
//        [--no-bitswap] [--dir /dev/shm] [--verbose] [--cpu-prof-dir DIR]
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, open, rm, stat, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { connect, createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pipeline } from "node:stream/promises";
import { createIpfsNode, pullImageToLayout, pushImage } from "@trustedpods/ipfs";
import { openOciLayout } from "@trustedpods/oci";
import { makeLayout } from "../../test-support/oci-layout.ts";

const MiB = 1024 * 1024;
const args = process.argv.slice(2);
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const SIZE = flag("--mib", 256) * MiB;
const RUNS = flag("--runs", 3);
const sarg = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const ALL_METHODS = ["tcp", "tls", "plain", "libp2p", "bitswap"] as const;
type Method = (typeof ALL_METHODS)[number];
const METHODS = (sarg("--methods")?.split(",") ?? ALL_METHODS).filter(
  (m): m is Method =>
    (ALL_METHODS as readonly string[]).includes(m) && !(m === "bitswap" && args.includes("--no-bitswap")),
);
const PROF_DIR = sarg("--cpu-prof-dir");

/** --cpu-prof-dir: a CPU profile of each measured transfer only (not the set-up), per process. */
async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (!PROF_DIR) return fn();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  try {
    return await fn();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    await mkdir(PROF_DIR, { recursive: true });
    await writeFile(join(PROF_DIR, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

interface PublisherInfo {
  cid: string;
  addrs: string[];
  tcpPort: number;
  layerPath: string;
  pushSeconds: number;
}

/** Child: builds a SIZE-byte single-layer image, pushes it to its own node, serves it and a plain TCP copy. */
async function publisher(dir: string): Promise<void> {
  const layerPath = join(dir, "layer.bin");
  const fh = await open(layerPath, "w");
  for (let done = 0; done < SIZE; done += 4 * MiB)
    await fh.write(randomBytes(Math.min(4 * MiB, SIZE - done)));
  await fh.close();
  const layout = join(dir, "layout");
  await makeLayout(layout, [createReadStream(layerPath, { highWaterMark: MiB })]);
  const node = await createIpfsNode({ dataDir: join(dir, "node"), bulk: ["tls", "plain"] });
  const t0 = performance.now();
  const { cid } = await pushImage(node, await openOciLayout(layout));
  const pushSeconds = (performance.now() - t0) / 1000;
  const server = createServer((sock) => {
    createReadStream(layerPath, { highWaterMark: MiB }).pipe(sock);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const tcpPort = (server.address() as { port: number }).port;
  const info: PublisherInfo = {
    cid: cid.toString(),
    addrs: node.multiaddrs(),
    tcpPort,
    layerPath,
    pushSeconds,
  };
  process.stdout.write(`${JSON.stringify(info)}\n`);
  // Answer "cpu [NAME]" lines with this process's CPU time (and, with --cpu-prof-dir, start a profile named
  // NAME-send that the next "cpu" line stops); serve until the parent closes our stdin.
  const lines = createInterface({ input: process.stdin });
  let stopProfile: (() => void) | undefined;
  lines.on("line", (line) => {
    const c = process.cpuUsage();
    process.stdout.write(`${JSON.stringify({ cpu: (c.user + c.system) / 1e6 })}\n`);
    const name = line.split(" ")[1];
    if (stopProfile) {
      stopProfile();
      stopProfile = undefined;
    } else if (name && PROF_DIR) {
      let release!: () => void;
      const done = new Promise<void>((r) => {
        release = r;
      });
      stopProfile = release;
      void profiled(`${name}-send`, () => done);
    }
  });
  await new Promise((r) => lines.once("close", r));
  server.close();
  await node.stop();
}

/** Runs `fn` (the transfer alone) inside the CPU and time window. */
type Window = (fn: () => Promise<unknown>) => Promise<void>;

async function tcpCopy(port: number, file: string, window: Window): Promise<void> {
  await window(async () => {
    const sock = connect(port, "127.0.0.1");
    await pipeline(sock, createWriteStream(file));
  });
  if ((await stat(file)).size !== SIZE) throw new Error("tcp copy is short");
  await rm(file);
}

/**
 * Pulls the image with a fresh provider node (started and stopped outside the measured window); `method` picks
 * the path, and the run fails if any other path carried the layer.
 */
async function pull(
  dir: string,
  info: PublisherInfo,
  method: Method,
  run: number,
  window: Window,
): Promise<void> {
  const nodeDir = join(dir, `provider-${method}-${run}`);
  const node = await createIpfsNode({ dataDir: nodeDir });
  try {
    const dst = join(dir, `pulled-${method}-${run}`);
    let last = 0;
    const seen = new Set<string>();
    await window(() =>
      pullImageToLayout(node, info.cid, dst, {
        peers: info.addrs,
        fastPath: method !== "bitswap",
        bulk: method === "tls" || method === "plain" ? [method] : [],
        timeoutMs: 120_000,
        // --verbose: progress every 32 MiB on stderr, to see where a slow or stuck transfer is.
        onProgress: (p) => {
          if (p.bytesTotal >= MiB) seen.add(p.via === "peer" ? (p.transport ?? "peer") : "bitswap");
          if (!args.includes("--verbose") || p.bytesDone - last < 32 * MiB) return;
          last = p.bytesDone;
          console.error(
            `${new Date().toISOString()} ${method} ${p.via} ${p.transport ?? ""} ${p.bytesDone >> 20} MiB`,
          );
        },
      }),
    );
    // A measurement only counts for the path it names: a silent fallback would mislabel the numbers.
    if (seen.size !== 1 || !seen.has(method))
      throw new Error(`${method} pull went through ${[...seen].join("+")}`);
    await rm(dst, { recursive: true, force: true });
  } finally {
    await node.stop();
    await rm(nodeDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Sample {
  seconds: number;
  /** CPU seconds used by the receiving (provider) and sending (publisher) processes. */
  recvCpu: number;
  sendCpu: number;
}

async function main(): Promise<void> {
  if (args[0] === "publisher") return publisher(args[1]!);
  const dirArg = args.indexOf("--dir");
  const base = dirArg >= 0 ? args[dirArg + 1]! : tmpdir();
  const dir = await mkdtemp(join(base, "tpod-bench-transfer-"));
  const child = spawn(
    process.execPath,
    [...process.execArgv, process.argv[1]!, "publisher", join(dir, "pub"), ...args],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  try {
    await import("node:fs/promises").then((fs) => fs.mkdir(join(dir, "pub")));
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`publisher exited with ${code}`)));
    });
    const info = JSON.parse(line) as PublisherInfo;
    const replies = createInterface({ input: child.stdout! });
    const publisherCpu = (name = "") =>
      new Promise<number>((resolve) => {
        replies.once("line", (l) => resolve((JSON.parse(l) as { cpu: number }).cpu));
        child.stdin!.write(`cpu ${name}\n`);
      });
    // CPU of both processes and wall-clock time over the transfer only (not node start-up or clean-up).
    const measure = async (name: string, fn: (window: Window) => Promise<void>): Promise<Sample> => {
      let sample: Sample | undefined;
      await fn(async (transfer) => {
        const send0 = await publisherCpu(name);
        const recv0 = process.cpuUsage();
        const t0 = performance.now();
        await profiled(`${name}-recv`, transfer);
        const seconds = (performance.now() - t0) / 1000;
        const r = process.cpuUsage(recv0);
        sample = { seconds, recvCpu: (r.user + r.system) / 1e6, sendCpu: (await publisherCpu()) - send0 };
      });
      return sample!;
    };
    const mib = SIZE / MiB;
    console.log(
      `load average at the start: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")} on ${cpus().length} cores`,
    );
    console.log(
      `image: one ${mib} MiB layer; push (import into the publisher's blockstore): ${(mib / info.pushSeconds).toFixed(0)} MiB/s`,
    );
    const results: Record<Method, Sample[]> = { tcp: [], tls: [], plain: [], libp2p: [], bitswap: [] };
    const failures: Record<Method, number> = { tcp: 0, tls: 0, plain: 0, libp2p: 0, bitswap: 0 };
    // Interleaved rounds, so a burst of load on the machine hits every method alike.
    for (let run = 0; run < RUNS; run++) {
      for (const m of METHODS) {
        try {
          results[m].push(
            await measure(`${m}-${run}`, (window) =>
              m === "tcp"
                ? tcpCopy(info.tcpPort, join(dir, `tcp-${run}.bin`), window)
                : pull(dir, info, m, run, window),
            ),
          );
        } catch (err) {
          // A failed or timed-out transfer is reported with its path, not allowed to hide the other numbers.
          failures[m]++;
          console.error(`${m} round ${run} failed: ${(err as Error).message}`);
        }
      }
    }
    const floor = results.tcp.length > 0 ? mib / median(results.tcp.map((x) => x.seconds)) : Number.NaN;
    const rows: [Method, string][] = [
      ["tcp", "plain TCP copy into a file (floor)"],
      ["tls", "pull, fast path, bulk TLS-PSK"],
      ["plain", "pull, fast path, bulk plain TCP"],
      ["libp2p", "pull, fast path, inside libp2p stream"],
      ["bitswap", "pull, stock Helia bitswap"],
    ];
    console.log(
      `${RUNS} rounds, median; ratio = throughput / plain TCP copy; CPU s per GiB moved (receiver/sender)`,
    );
    for (const [method, name] of rows) {
      const xs = results[method];
      if (failures[method] > 0)
        console.log(`${name.padEnd(40)} ${failures[method]} of ${RUNS} rounds failed (see stderr)`);
      if (xs.length === 0) continue;
      const rate = mib / median(xs.map((x) => x.seconds));
      const all = xs.map((x) => (mib / x.seconds).toFixed(0)).join(", ");
      const perGiB = (v: number) => ((v * 1024) / mib).toFixed(2);
      const cpu = `${perGiB(median(xs.map((x) => x.recvCpu)))}/${perGiB(median(xs.map((x) => x.sendCpu)))}`;
      console.log(
        `${name.padEnd(40)} ${rate.toFixed(0).padStart(5)} MiB/s  ratio ${(rate / floor).toFixed(2)}  cpu ${cpu}  (runs: ${all})`,
      );
    }
    console.log(
      `load average at the end: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")} on ${cpus().length} cores`,
    );
  } finally {
    child.stdin!.end();
    await new Promise((r) => child.once("exit", r));
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
