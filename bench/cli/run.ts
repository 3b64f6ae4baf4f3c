// CLI start-up benchmark: how long a fresh `tpod` process takes for light commands, against a bare `node -e 0`
// measured in the same run (the floor every Node CLI pays). Run after `npm run build`:
//   node bench/cli/run.ts [--runs 15] [--main packages/cli/dist/main.js]
// --main picks the CLI entry point to time (e.g. an older build copied elsewhere in the repository, to compare).
// Prints a table and writes bench/results/cli-startup.json. Not part of the test run.
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { makeLayout } from "../../test-support/oci-layout.ts";

const repo = resolve(import.meta.dirname, "../..");

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const runs = Number(arg("runs", "15"));
const main = resolve(repo, arg("main", "packages/cli/dist/main.js"));
const bin = resolve(repo, "packages/cli/bin/tpod");

interface Sample {
  wall: number;
  /** user + system CPU seconds of the child (all its threads), from /usr/bin/time. */
  cpu: number;
}

/** Runs a command under /usr/bin/time; resolves to its wall and CPU seconds. Fails on a non-zero exit. */
async function timed(cmd: string, args: string[], timeFile: string): Promise<Sample> {
  const t = performance.now();
  await new Promise<void>((ok, fail) => {
    const p = spawn("/usr/bin/time", ["-f", "%U %S", "-o", timeFile, cmd, ...args], {
      cwd: repo,
      stdio: ["ignore", "ignore", "inherit"],
    });
    p.on("error", fail);
    p.on("exit", (code) => (code === 0 ? ok() : fail(new Error(`${cmd} ${args.join(" ")} exited ${code}`))));
  });
  const wall = (performance.now() - t) / 1000;
  const [user, sys] = (await readFile(timeFile, "utf8")).trim().split(/\s+/).slice(-2).map(Number);
  return { wall, cpu: (user ?? 0) + (sys ?? 0) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** A small one-layer OCI layout (64 KiB layer) and an RSA-2048 recipient key, for `tpod image encrypt`. */
async function makeImage(dir: string): Promise<{ layout: string; pub: string }> {
  const layout = join(dir, "plain");
  await makeLayout(layout, [new Uint8Array(64 * 1024).fill(1)]);
  const pub = join(dir, "pub.pem");
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  await writeFile(pub, pair.publicKey.export({ type: "spki", format: "pem" }));
  return { layout, pub };
}

const work = await mkdtemp(join(tmpdir(), "tpod-bench-cli-"));
try {
  const { layout, pub } = await makeImage(work);
  const timeFile = join(work, "time.out");
  const node = process.execPath;
  let encryptRun = 0;
  const cases: { name: string; cmd: string; args: () => string[] }[] = [
    { name: "baseline: node -e 0", cmd: node, args: () => ["-e", "0"] },
    { name: "tpod --version", cmd: node, args: () => [main, "--version"] },
    { name: "tpod --help", cmd: node, args: () => [main, "--help"] },
    {
      name: "tpod manifest validate examples/hello/pod.yaml",
      cmd: node,
      args: () => [main, "manifest", "validate", "examples/hello/pod.yaml"],
    },
    {
      name: "tpod image encrypt (64 KiB layer, RSA-2048)",
      cmd: node,
      args: () => [
        main,
        "image",
        "encrypt",
        layout,
        join(work, `enc-${encryptRun++}`),
        "--recipient",
        pub,
        "-q",
      ],
    },
  ];
  // What a user types: the bin wrapper (a shell script that picks a Node >= 22) in front of the same CLI. It
  // always runs packages/cli/dist, so it is timed only when --main is that build.
  if (main === resolve(repo, "packages/cli/dist/main.js"))
    cases.push({ name: "bin/tpod --version (wrapper + CLI)", cmd: bin, args: () => ["--version"] });
  const samples = new Map<string, Sample[]>(cases.map((c) => [c.name, []]));
  // Warm the page cache once, then interleave the cases so they share whatever load the machine has.
  for (const c of cases) await timed(c.cmd, c.args(), timeFile);
  const load0 = loadavg()[0]!;
  for (let i = 0; i < runs; i++) {
    for (const c of cases) samples.get(c.name)!.push(await timed(c.cmd, c.args(), timeFile));
  }
  const load1 = loadavg()[0]!;
  const base = samples.get(cases[0]!.name)!;
  const baseWall = median(base.map((s) => s.wall));
  const baseCpu = median(base.map((s) => s.cpu));
  const rows = cases.map((c) => {
    const s = samples.get(c.name)!;
    const wall = median(s.map((x) => x.wall));
    const cpu = median(s.map((x) => x.cpu));
    return {
      case: c.name,
      wallMs: Math.round(wall * 1000),
      cpuMs: Math.round(cpu * 1000),
      wallX: wall / baseWall,
      cpuX: cpu / baseCpu,
    };
  });
  console.log(
    `main ${main}; ${runs} runs each, median; load average ${load0.toFixed(2)} -> ${load1.toFixed(2)}`,
  );
  console.log("| case | wall ms | vs node -e 0 | CPU ms | vs node -e 0 |");
  console.log("|---|---:|---:|---:|---:|");
  for (const r of rows)
    console.log(`| ${r.case} | ${r.wallMs} | ${r.wallX.toFixed(2)}x | ${r.cpuMs} | ${r.cpuX.toFixed(2)}x |`);
  await mkdir(join(repo, "bench/results"), { recursive: true });
  await writeFile(
    join(repo, "bench/results/cli-startup.json"),
    JSON.stringify({ main, runs, loadAverage: [load0, load1], node: process.version, rows }, null, 2),
  );
} finally {
  await rm(work, { recursive: true, force: true });
}
