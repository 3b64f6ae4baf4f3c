import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import {
  billedUnits,
  type Container,
  formatBytes,
  formatCpu,
  formatDiagnostic,
  formatDuration,
  formatTokenAmount,
  ManifestError,
  type Pod,
  PricingError,
  type PricingFile,
  parseDotEnv,
  podPrice,
  type Volume,
} from "@trustedpods/protocol";
import { type ComposeImport, importCompose, looksLikeCompose } from "@trustedpods/protocol/compose";
import { loadManifest, loadPricing, readYamlFile } from "@trustedpods/protocol/node";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import { type Io, printJson } from "../output.js";
import { buildComposeImages, ComposeBuildError } from "./compose-build.js";

/** Prints each error as `FILE:LINE:COL: message` on stderr; rethrows anything that is not a manifest error. */
function reportManifestError(io: Io, err: unknown): void {
  if (!(err instanceof ManifestError)) throw err;
  for (const d of err.diagnostics) io.err(formatDiagnostic(d));
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function describeImage(c: Container): string {
  const i = c.image;
  if (i.kind === "local") return `${i.name} (local image)`;
  if (i.kind === "ipfs") return `ipfs ${i.cid} ${i.digest}`;
  return `marketplace listing ${i.listingId}`;
}

function describeVolume(v: Volume): string {
  if (v.kind === "emptyDir") return "emptyDir";
  if (v.kind === "persistent") return `persistent ${formatBytes(v.sizeBytes)}`;
  return v.source.kind === "file"
    ? `secret from file ${v.source.path}`
    : `secret ${v.source.cid} (key ${v.source.keyRef})`;
}

/** Shell-style quoting for display; multi-line arguments stay on one line as $'...\n...'. */
function quoteArg(a: string): string {
  if (/^[\w@%+=:,./-]+$/.test(a)) return a;
  if (/[\n\t\\]/.test(a))
    return `$'${a.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n").replace(/\t/g, "\\t")}'`;
  return `'${a.replace(/'/g, `'\\''`)}'`;
}

function describeContainer(c: Container): string[] {
  const lines = [`  container ${c.name}: ${describeImage(c)}`];
  const argv = [...c.command, ...c.args];
  if (argv.length)
    lines.push(
      `    run:       ${c.command.length ? "" : "(image entrypoint) "}${argv.map(quoteArg).join(" ")}`,
    );
  if (c.workingDir) lines.push(`    workdir:   ${c.workingDir}`);
  for (const p of c.ports) {
    const name = p.name ? ` (${p.name})` : "";
    const target =
      p.protocol === "http" ? `http, hostname ${p.hostname ?? "assigned by the provider"}` : p.protocol;
    lines.push(`    port:      ${p.containerPort}${name} ${target}`);
  }
  // Names only: values may be credentials.
  if (c.env.length)
    lines.push(
      `    env:       ${c.env.map((e) => (e.kind === "secret" ? `${e.name} (from secret ${e.secret})` : e.name)).join(", ")}`,
    );
  for (const m of c.volumeMounts)
    lines.push(`    mount:     ${m.name} at ${m.mountPath}${m.readOnly ? " (read-only)" : ""}`);
  const r = c.resources;
  lines.push(
    `    resources: cpu ${formatCpu(r.cpuMillis)}, memory ${formatBytes(r.memoryBytes)}, storage ${formatBytes(r.storageBytes)}${r.gpu ? `, gpu ${r.gpu}` : ""}`,
  );
  const h = c.healthCheck;
  if (h) {
    const probe =
      h.probe.kind === "http"
        ? `GET :${h.probe.port}${h.probe.path}`
        : `exec ${h.probe.command.map(quoteArg).join(" ")}`;
    lines.push(
      `    health:    ${probe} every ${formatDuration(h.intervalMs)}, timeout ${formatDuration(h.timeoutMs)}, ${plural(h.retries, "retry").replace("retrys", "retries")}${h.startPeriodMs ? `, grace ${formatDuration(h.startPeriodMs)}` : ""}`,
    );
  }
  return lines;
}

function describeReplicas(pod: Pod): string {
  const r = pod.replicas;
  if (r.min === r.max) return plural(r.max, "replica");
  const zero = r.min === 0 ? `, scale to zero after ${formatDuration(r.idleSeconds * 1000n)} idle` : "";
  return `${r.min}-${r.max} replicas${zero}`;
}

function priceJson(pod: Pod, pricing: PricingFile) {
  const price = podPrice(pod, pricing);
  return {
    token: pricing.token,
    symbol: pricing.symbol,
    decimals: pricing.decimals,
    replicasBilled: price.replicas,
    lines: price.lines,
    perSecond: price.perSecond,
    perHour: price.perSecond * 3600n,
  };
}

function describePrice(pod: Pod, pricing: PricingFile): string[] {
  const price = podPrice(pod, pricing);
  const fmt = (n: bigint) => formatTokenAmount(n, pricing.decimals, pricing.symbol);
  const lines = [`price (billed for ${plural(price.replicas, "replica")}, token ${pricing.token}):`];
  for (const l of price.lines) {
    if (l.units === 0n) continue;
    lines.push(
      `  ${l.resource.padEnd(8)} ${l.units} ${l.unit} × ${fmt(l.unitPrice)}/s = ${fmt(l.perSecond * 3600n)}/hour`,
    );
  }
  lines.push(`  total    ${fmt(price.perSecond)}/s = ${fmt(price.perSecond * 3600n)}/hour`);
  return lines;
}

export function describePod(pod: Pod, pricing?: PricingFile): string {
  const lines = [`pod ${pod.name}: ${plural(pod.containers.length, "container")}, ${describeReplicas(pod)}`];
  for (const c of pod.containers) lines.push(...describeContainer(c));
  for (const v of pod.volumes) lines.push(`  volume ${v.name}: ${describeVolume(v)}`);
  const u = billedUnits(pod);
  lines.push(
    `billed: cpu ${u.cpu} millicores, memory ${u.memory} MiB, storage ${u.storage} GiB${u.gpu ? `, ${u.gpu} GPU` : ""}`,
  );
  if (pricing) lines.push(...describePrice(pod, pricing));
  return lines.join("\n");
}

function validate(io: Io, files: string[], json: boolean): boolean {
  const pods: Pod[] = [];
  let ok = true;
  for (const file of files) {
    try {
      const pod = loadManifest(file);
      pods.push(pod);
      if (!json) io.out(`${file}: valid pod ${pod.name} (${plural(pod.containers.length, "container")})`);
    } catch (err) {
      reportManifestError(io, err);
      ok = false;
    }
  }
  // One file prints its pod; several print an array in argument order. Nothing when any file is invalid.
  if (json && ok) printJson(io, files.length === 1 ? pods[0] : pods);
  return ok;
}

/**
 * Imports a Compose file the way `docker compose` reads it from its directory: `.env` there supplies variables,
 * env_file and bind-mount paths are relative to it. Exported for tests.
 */
export function importComposeFile(file: string): ComposeImport {
  const text = readYamlFile(file);
  const base = dirname(file);
  const dotEnv = join(base, ".env");
  const env = existsSync(dotEnv) ? parseDotEnv(readFileSync(dotEnv, "utf8")).vars : {};
  return importCompose(text, file, {
    env,
    projectName: basename(resolve(base)),
    readFile: (p) => {
      try {
        return readYamlFile(resolve(base, p));
      } catch {
        return undefined;
      }
    },
    listFiles: (p) => listFiles(resolve(base, p)),
    pathKind: (p) => {
      try {
        return statSync(resolve(base, p)).isDirectory() ? "directory" : "file";
      } catch {
        return "missing";
      }
    },
  });
}

/** The files under a directory, relative to it, sorted; undefined when it is not a readable directory. */
function listFiles(dir: string): string[] | undefined {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => relative(dir, join(d.parentPath, d.name)))
      .sort();
  } catch {
    return undefined;
  }
}

/** `tpod manifest validate FILE...` */
export function manifestValidate(
  { io, setExitCode }: CommandContext,
  files: string[],
  opts: { json?: boolean },
): void {
  if (!validate(io, files, opts.json === true)) setExitCode(ExitCode.failure);
}

/**
 * Whether a file is a Compose file rather than a pod manifest: by its name (compose.yaml, docker-compose.yml,
 * ...), else by its content (top-level services: and no kind: Pod).
 */
export function isComposeFile(file: string): boolean {
  if (/(^|[-.])compose\.ya?ml$/.test(basename(file))) return true;
  try {
    return looksLikeCompose(readFileSync(file, "utf8"));
  } catch {
    return false;
  }
}

/**
 * Imports a Compose file for deploy (warnings and errors on stderr, as `tpod manifest import` prints them) and
 * builds the images of its build: services. Throws a CliError when the file does not import or a build fails.
 */
export async function loadComposeProject(io: Io, file: string): Promise<ComposeImport> {
  let result: ComposeImport;
  try {
    result = importComposeFile(file);
  } catch (err) {
    if (err instanceof ManifestError)
      throw new CliError(err.diagnostics.map(formatDiagnostic).join("\n"), ExitCode.failure);
    throw err;
  }
  for (const d of result.diagnostics) io.err(formatDiagnostic(d));
  if (result.manifest === undefined)
    throw new CliError(`${file}: not imported (fix the errors above)`, ExitCode.failure);
  await buildProjectImages(io, file, result);
  return result;
}

/** Builds a Compose project's build: images with progress on stderr; a failed build is a CliError with its code. */
async function buildProjectImages(io: Io, file: string, result: ComposeImport): Promise<void> {
  if (result.builds.length === 0) return;
  const start = Date.now();
  io.err(
    `… building ${plural(result.builds.length, "image")} (podman build, base images from the local store)`,
  );
  try {
    await buildComposeImages(result.builds, dirname(resolve(file)), { progress: (l) => io.err(l) });
  } catch (err) {
    if (err instanceof ComposeBuildError) throw new CliError(`${err.code}: ${err.message}`, ExitCode.failure);
    throw err;
  }
  io.err(`✓ built ${result.builds.map((b) => b.image).join(", ")} (${Date.now() - start} ms)`);
}

/** `tpod manifest import COMPOSE_FILE` */
export async function manifestImport(
  { io, setExitCode }: CommandContext,
  file: string,
  opts: { build?: boolean } = {},
): Promise<void> {
  let result: ComposeImport;
  try {
    result = importComposeFile(file);
  } catch (err) {
    reportManifestError(io, err);
    setExitCode(ExitCode.failure);
    return;
  }
  for (const d of result.diagnostics) io.err(formatDiagnostic(d));
  if (result.manifest === undefined) {
    setExitCode(ExitCode.failure);
    return;
  }
  if (opts.build !== false) await buildProjectImages(io, file, result);
  io.out(result.manifest);
}

/** `tpod manifest show FILE` */
export function manifestShow(
  { io, setExitCode }: CommandContext,
  file: string,
  opts: { pricing?: string; json?: boolean },
): void {
  let pod: Pod;
  let pricing: PricingFile | undefined;
  try {
    pod = loadManifest(file);
    if (opts.pricing) pricing = loadPricing(opts.pricing);
  } catch (err) {
    reportManifestError(io, err);
    setExitCode(ExitCode.failure);
    return;
  }
  try {
    if (opts.json) {
      const { replicas, ...billed } = billedUnits(pod);
      printJson(io, {
        pod,
        billed: { replicas, ...billed },
        ...(pricing ? { price: priceJson(pod, pricing) } : {}),
      });
    } else io.out(describePod(pod, pricing));
  } catch (err) {
    if (err instanceof PricingError) throw new CliError(err.message);
    throw err;
  }
}
