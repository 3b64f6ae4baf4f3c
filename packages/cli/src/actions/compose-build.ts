/**
 * Builds the images of a Compose project's `build:` services with `podman build` (Podman's build is buildah's
 * library), as `docker compose up --build` would, into the local store; deploy then pushes them to IPFS like
 * any local image. Nothing is ever pulled: every base image must already be in the local store, and a missing
 * one is named before the build starts (and `--pull=never` keeps podman from trying, should the check miss it).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import type { ComposeBuild } from "@trustedpods/protocol/compose";

export type ComposeBuildErrorCode = "BASE_IMAGE_MISSING" | "BUILD_FAILED" | "PODMAN_MISSING";

/** A build that cannot run or failed; the message names the service, and the image or step at fault. */
export class ComposeBuildError extends Error {
  override readonly name = "ComposeBuildError";
  constructor(
    readonly code: ComposeBuildErrorCode,
    message: string,
    readonly service: string,
  ) {
    super(message);
  }
}

export interface BuildIo {
  /** One line of build progress (podman's output, prefixed by the service). */
  progress(line: string): void;
}

/** The Containerfile a build uses: dockerfile:, else Containerfile when present, else Dockerfile (podman's order). */
export function containerfileOf(b: ComposeBuild, baseDir: string): string {
  const context = resolve(baseDir, b.context);
  if (b.dockerfile) return isAbsolute(b.dockerfile) ? b.dockerfile : join(context, b.dockerfile);
  for (const name of ["Containerfile", "Dockerfile"]) {
    const path = join(context, name);
    try {
      readFileSync(path);
      return path;
    } catch {}
  }
  return join(context, "Dockerfile");
}

/**
 * The base images a Containerfile names, with the line of each FROM: stage names and `scratch` are not images,
 * and ${ARG} references take the build's args or the ARG defaults written before the first FROM.
 */
export function baseImages(text: string, args: Record<string, string>): { image: string; line: number }[] {
  const defaults: Record<string, string> = {};
  const stages = new Set<string>();
  const out: { image: string; line: number }[] = [];
  let seenFrom = false;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const arg = /^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/i.exec(line);
    if (arg && !seenFrom) {
      defaults[arg[1]!] = (arg[2] ?? "").replace(/^["']|["']$/g, "");
      return;
    }
    const from = /^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (!from) return;
    seenFrom = true;
    const image = from[1]!.replace(
      /\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}?/g,
      (_, name: string, fallback?: string) => args[name] ?? defaults[name] ?? fallback ?? "",
    );
    const isImage = image !== "scratch" && !stages.has(image.toLowerCase());
    if (from[2]) stages.add(from[2].toLowerCase());
    if (isImage) out.push({ image, line: i + 1 });
  });
  return out;
}

function run(
  cmd: string,
  argv: string[],
  onLine?: (line: string) => void,
): Promise<{ code: number; tail: string[] }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
    const tail: string[] = [];
    const take = (chunk: Buffer, rest: { s: string }) => {
      rest.s += chunk.toString("utf8");
      const parts = rest.s.split("\n");
      rest.s = parts.pop() ?? "";
      for (const l of parts) {
        tail.push(l);
        if (tail.length > 20) tail.shift();
        onLine?.(l);
      }
    };
    const out = { s: "" };
    const err = { s: "" };
    child.stdout.on("data", (c: Buffer) => take(c, out));
    child.stderr.on("data", (c: Buffer) => take(c, err));
    child.on("error", reject);
    child.on("close", (code) => {
      for (const r of [out, err]) if (r.s) tail.push(r.s);
      resolvePromise({ code: code ?? 1, tail });
    });
  });
}

async function imageExists(ref: string): Promise<boolean> {
  return (await run("podman", ["image", "exists", ref])).code === 0;
}

/** Builds one service's image; throws ComposeBuildError with the missing base image or podman's last lines. */
export async function buildOne(b: ComposeBuild, baseDir: string, io: BuildIo): Promise<void> {
  const context = resolve(baseDir, b.context);
  let tmp: string | undefined;
  let file: string;
  if (b.dockerfileInline !== undefined) {
    tmp = mkdtempSync(join(tmpdir(), "tpod-build-"));
    file = join(tmp, "Containerfile");
    writeFileSync(file, b.dockerfileInline);
  } else file = containerfileOf(b, baseDir);
  try {
    const text = readFileSync(file, "utf8");
    for (const base of baseImages(text, b.args)) {
      if (await imageExists(base.image)) continue;
      throw new ComposeBuildError(
        "BASE_IMAGE_MISSING",
        `service "${b.service}": base image ${base.image} (${file}:${base.line}) is not in the local image store, and nothing is pulled from registries: build or load it first (podman load, buildah), or change FROM`,
        b.service,
      );
    }
    const argv = ["build", "--pull=never", "--layers", "-f", file, "-t", b.image];
    for (const [k, v] of Object.entries(b.args)) argv.push("--build-arg", `${k}=${v}`);
    for (const [k, v] of Object.entries(b.labels)) argv.push("--label", `${k}=${v}`);
    if (b.target) argv.push("--target", b.target);
    if (b.noCache) argv.push("--no-cache");
    argv.push(context);
    io.progress(`building ${b.image} for service ${b.service} (${file})`);
    const r = await run("podman", argv, (l) => io.progress(`  ${b.service}: ${l}`)).catch((err: unknown) => {
      throw new ComposeBuildError(
        "PODMAN_MISSING",
        `podman build could not start: ${String(err)}`,
        b.service,
      );
    });
    if (r.code !== 0)
      throw new ComposeBuildError(
        "BUILD_FAILED",
        `service "${b.service}": podman build failed (exit ${r.code}):\n${r.tail.slice(-6).join("\n")}`,
        b.service,
      );
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/** Builds every image of a Compose project in service order. */
export async function buildComposeImages(
  builds: readonly ComposeBuild[],
  baseDir: string,
  io: BuildIo,
): Promise<void> {
  for (const b of builds) await buildOne(b, baseDir, io);
}
