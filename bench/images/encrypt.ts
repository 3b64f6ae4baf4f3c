// Image encryption benchmark: ours (library and CLI) against skopeo 1.9.3 on the same 256 MiB image in the
// same run, with raw `openssl enc -aes-256-ctr` as the floor. Run after `npm run build`:
//   node bench/images/encrypt.ts [--size-mib 256] [--runs 3] [--dir /path/on/disk]
// Prints a table and writes bench/results/images-encrypt.json. Not part of the test run.
import { execFile, spawn } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createGzip } from "node:zlib";
import {
  decryptLayout,
  encryptLayout,
  inspectImage,
  openOciLayout,
  parsePrivateKey,
  parsePublicKey,
} from "@trustedpods/oci";

const exec = promisify(execFile);
const repo = resolve(import.meta.dirname, "../..");
const MiB = 1024 * 1024;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const sizeMiB = Number(arg("size-mib", "256"));
const runs = Number(arg("runs", "3"));
const baseDir = arg("dir", process.env.TPOD_BENCH_DIR ?? tmpdir());

/** A tar with one file of random bytes, wrapped in gzip level 0 (stored blocks: cheap, still real gzip),
 *  so skopeo keeps the layer as it is instead of recompressing it. */
async function writeLayer(path: string, bytes: number): Promise<{ diffId: string }> {
  const chunk = randomBytes(MiB);
  const tarHash = createHash("sha256");
  async function* tar() {
    const header = Buffer.alloc(512);
    header.write("data.bin", 0);
    header.write("0000644\0", 100);
    header.write("0000000\0", 108);
    header.write("0000000\0", 116);
    header.write(`${bytes.toString(8).padStart(11, "0")}\0`, 124);
    header.write("00000000000\0", 136);
    header.fill(0x20, 148, 156);
    header.write("0", 156);
    header.write("ustar\x0000", 257);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    tarHash.update(header);
    yield header;
    for (let done = 0; done < bytes; done += MiB) {
      const part = chunk.subarray(0, Math.min(MiB, bytes - done));
      tarHash.update(part);
      yield part;
    }
    const tail = Buffer.alloc(((512 - (bytes % 512)) % 512) + 1024);
    tarHash.update(tail);
    yield tail;
  }
  await pipeline(tar, createGzip({ level: 0 }), createWriteStream(path));
  return { diffId: `sha256:${tarHash.digest("hex")}` };
}

async function sha256File(path: string): Promise<string> {
  const { stdout } = await exec("sha256sum", [path]);
  return `sha256:${stdout.split(" ")[0]}`;
}

async function putJson(dir: string, obj: unknown): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(obj));
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  await writeFile(join(dir, "blobs/sha256", digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

async function makeImage(dir: string, bytes: number): Promise<void> {
  await mkdir(join(dir, "blobs/sha256"), { recursive: true });
  const tmp = join(dir, "layer.tmp");
  const { diffId } = await writeLayer(tmp, bytes);
  const digest = await sha256File(tmp);
  const { size } = await stat(tmp);
  await rename(tmp, join(dir, "blobs/sha256", digest.slice(7)));
  const config = await putJson(dir, {
    architecture: "amd64",
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: [diffId] },
  });
  const manifest = await putJson(dir, {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest, size }],
  });
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest }],
    }),
  );
}

interface Sample {
  wall: number;
  /** user + system CPU seconds, all threads: robust when other processes compete for the cores. */
  cpu: number;
}

let childCpu = 0;

/** Times fn: wall clock, plus CPU of this process (in-process work) and of the children run() starts. */
async function timed(fn: () => Promise<unknown>): Promise<Sample> {
  childCpu = 0;
  const cpu0 = process.cpuUsage();
  const t = performance.now();
  await fn();
  const wall = (performance.now() - t) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { wall, cpu: (cpu.user + cpu.system) / 1e6 + childCpu };
}

/** Runs a command under /usr/bin/time to learn its CPU seconds. */
async function run(cmd: string, args: string[]): Promise<void> {
  const timeFile = join(work, "time.out");
  await new Promise<void>((ok, fail) => {
    const p = spawn("/usr/bin/time", ["-f", "%U %S", "-o", timeFile, cmd, ...args], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    p.on("error", fail);
    p.on("exit", (code) => (code === 0 ? ok() : fail(new Error(`${cmd} exited ${code}`))));
  });
  const [user, sys] = (await readFile(timeFile, "utf8")).trim().split(/\s+/).slice(-2).map(Number);
  childCpu += (user ?? 0) + (sys ?? 0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const work = await mkdtemp(join(baseDir, "tpod-bench-images-"));
try {
  const keys = join(work, "keys");
  await mkdir(keys);
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pubPem = pair.publicKey.export({ type: "spki", format: "pem" }) as string;
  const privPem = pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  await writeFile(join(keys, "pub.pem"), pubPem);
  await writeFile(join(keys, "priv.pem"), privPem, { mode: 0o600 });
  const pub = await parsePublicKey(pubPem);
  const priv = await parsePrivateKey(privPem);

  const src = join(work, "src");
  process.stderr.write(`building a ${sizeMiB} MiB single-layer image in ${work}\n`);
  await makeImage(src, sizeMiB * MiB);
  const layer = (await inspectImage(await openOciLayout(src))).manifests[0]!.layers[0]!;
  const layerMiB = layer.size / MiB;
  const layerPath = join(src, "blobs/sha256", layer.digest.slice(7));

  // One skopeo-encrypted image that every decryptor reads, so all decrypt the same bytes.
  const skEncShared = join(work, "sk-enc-shared");
  await run("skopeo", [
    "copy",
    "-q",
    "--encryption-key",
    `jwe:${join(keys, "pub.pem")}`,
    `oci:${src}`,
    `oci:${skEncShared}`,
  ]);

  const cli = join(repo, "packages/cli/dist/main.js");
  const times: Record<string, Sample[]> = {};
  const record = (k: string, t: Sample) => {
    times[k] = [...(times[k] ?? []), t];
  };
  for (let i = 0; i < runs; i++) {
    const d = (n: string) => join(work, `${n}-${i}`);
    // Interleaved so load from other processes hits every contender alike.
    record("ours-lib encrypt", await timed(() => encryptLayout(src, d("lib-enc"), [pub])));
    record(
      "ours-cli encrypt",
      await timed(() =>
        run(process.execPath, [
          cli,
          "image",
          "encrypt",
          "-q",
          "--recipient",
          join(keys, "pub.pem"),
          src,
          d("cli-enc"),
        ]),
      ),
    );
    record(
      "skopeo encrypt",
      await timed(() =>
        run("skopeo", [
          "copy",
          "-q",
          "--encryption-key",
          `jwe:${join(keys, "pub.pem")}`,
          `oci:${src}`,
          `oci:${d("sk-enc")}`,
        ]),
      ),
    );
    record(
      "openssl aes-256-ctr",
      await timed(() =>
        run("openssl", [
          "enc",
          "-aes-256-ctr",
          "-K",
          randomBytes(32).toString("hex"),
          "-iv",
          randomBytes(16).toString("hex"),
          "-in",
          layerPath,
          "-out",
          d("openssl"),
        ]),
      ),
    );
    record("ours-lib decrypt", await timed(() => decryptLayout(skEncShared, d("lib-dec"), [priv])));
    record(
      "ours-cli decrypt",
      await timed(() =>
        run(process.execPath, [
          cli,
          "image",
          "decrypt",
          "-q",
          "--key",
          join(keys, "priv.pem"),
          skEncShared,
          d("cli-dec"),
        ]),
      ),
    );
    record(
      "skopeo decrypt",
      await timed(() =>
        run("skopeo", [
          "copy",
          "-q",
          "--decryption-key",
          join(keys, "priv.pem"),
          `oci:${skEncShared}`,
          `oci:${d("sk-dec")}`,
        ]),
      ),
    );
    for (const n of ["lib-enc", "cli-enc", "sk-enc", "openssl", "lib-dec", "cli-dec", "sk-dec"])
      await rm(d(n), { recursive: true, force: true });
  }

  const wallMibs = Object.fromEntries(
    Object.entries(times).map(([k, ts]) => [k, layerMiB / median(ts.map((t) => t.wall))]),
  );
  const cpuMibs = Object.fromEntries(
    Object.entries(times).map(([k, ts]) => [k, layerMiB / median(ts.map((t) => t.cpu))]),
  );
  const baseline = (k: string) => (k.includes("decrypt") ? "skopeo decrypt" : "skopeo encrypt");
  console.table(
    Object.keys(times).map((k) => ({
      what: k,
      "MiB/s wall (median)": wallMibs[k]!.toFixed(0),
      "best wall s": Math.min(...times[k]!.map((t) => t.wall)).toFixed(2),
      "wall vs skopeo": (wallMibs[k]! / wallMibs[baseline(k)]!).toFixed(2),
      "MiB per CPU-s": cpuMibs[k]!.toFixed(0),
      "CPU vs skopeo": (cpuMibs[k]! / cpuMibs[baseline(k)]!).toFixed(2),
    })),
  );
  const ratio = (m: Record<string, number>, a: string, b: string) => m[a]! / m[b]!;
  const result = {
    date: new Date().toISOString(),
    layerMiB,
    runs,
    dir: baseDir,
    loadAverage: (await import("node:os")).loadavg(),
    wallMibPerSecond: wallMibs,
    mibPerCpuSecond: cpuMibs,
    ratios: {
      encryptLibVsSkopeoWall: ratio(wallMibs, "ours-lib encrypt", "skopeo encrypt"),
      encryptCliVsSkopeoWall: ratio(wallMibs, "ours-cli encrypt", "skopeo encrypt"),
      decryptLibVsSkopeoWall: ratio(wallMibs, "ours-lib decrypt", "skopeo decrypt"),
      decryptCliVsSkopeoWall: ratio(wallMibs, "ours-cli decrypt", "skopeo decrypt"),
      encryptCliVsSkopeoCpu: ratio(cpuMibs, "ours-cli encrypt", "skopeo encrypt"),
      decryptCliVsSkopeoCpu: ratio(cpuMibs, "ours-cli decrypt", "skopeo decrypt"),
      encryptLibVsOpensslFloorWall: ratio(wallMibs, "ours-lib encrypt", "openssl aes-256-ctr"),
    },
    samples: times,
  };
  const out = join(repo, "bench/results/images-encrypt.json");
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result.ratios, null, 2));
} finally {
  await rm(work, { recursive: true, force: true });
}
