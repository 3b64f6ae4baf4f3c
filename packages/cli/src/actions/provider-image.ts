import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CommandContext } from "../commands/index.js";
import type { ImageBuildOpts, ImageMeasureOpts } from "../commands/provider-image.js";
import { CliError, ExitCode } from "../errors.js";
import { printJson } from "../output.js";

const usage = (message: string) => new CliError(message, ExitCode.usage);

/** The repository this CLI runs from (packages/cli/dist/actions -> the root): the image is built from it. */
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

/** `tpod provider image build` */
export async function imageBuild({ io }: CommandContext, opts: ImageBuildOpts): Promise<void> {
  if (opts.lock === false && opts.updateLock) throw usage("--no-lock and --update-lock exclude each other");
  if (opts.expect !== undefined && !/^(sha256:)?[0-9a-f]{64}$/.test(opts.expect))
    throw usage("--expect must be a SHA-256 image digest (64 hex digits)");
  const { buildImage, ImageError } = await import("@trustedpods/provider-image");
  try {
    const r = await buildImage({
      repoRoot: REPO_ROOT,
      outDir: opts.out,
      ...(opts.workDir ? { workDir: opts.workDir } : {}),
      ...(opts.lock === false
        ? { lockFile: "" }
        : typeof opts.lock === "string"
          ? { lockFile: opts.lock }
          : {}),
      ...(opts.updateLock ? { updateLock: true } : {}),
      ...(opts.mirror ? { mirror: opts.mirror } : {}),
      ...(opts.expect ? { expectDigest: opts.expect } : {}),
      progress: (m) => io.err(m),
    });
    if (opts.json) return printJson(io, { ...r.manifest, outDir: r.outDir, seconds: r.seconds });
    const m = r.manifest;
    io.out(`image digest ${m.digest}`);
    io.out(`  commit     ${m.commit}${m.dirty ? " (with uncommitted changes)" : ""}`);
    io.out(`  root hash  ${m.rootHash} (dm-verity, on the kernel command line)`);
    for (const [name, f] of Object.entries(m.files))
      io.out(`  ${name.padEnd(14)} ${f.sha256}  ${f.size} bytes`);
    io.out(`  cmdline    ${m.cmdline}`);
    io.out(`built in ${r.seconds} s into ${r.outDir}`);
    if (r.installed.length) io.err(`installed from apt: ${r.installed.join(" ")}`);
  } catch (err) {
    if (err instanceof ImageError) throw new CliError(`${err.code}: ${err.message}`);
    throw err;
  }
}

/** "1-8", "2", "1,2,4" */
export function parseVcpuList(text: string): number[] {
  const out = new Set<number>();
  for (const part of text.split(",")) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    const a = Number(m?.[1]);
    const b = m?.[2] === undefined ? a : Number(m[2]);
    if (!m || a < 1 || b < a || b > 512)
      throw usage(`--vcpus must be N, A-B or a comma list of them (1..512), got "${text}"`);
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

/** `tpod provider image measure` */
export async function imageMeasure(
  { io, setExitCode }: CommandContext,
  opts: ImageMeasureOpts,
): Promise<void> {
  const vcpus = parseVcpuList(opts.vcpus);
  if (opts.kvmInit !== "init2" && opts.kvmInit !== "legacy")
    throw usage("--kvm-init must be init2 or legacy");
  const hexDigits = (flag: string, v: string, re: RegExp) => {
    const d = v.replace(/^0x/i, "");
    if (!re.test(d)) throw usage(`${flag}: not valid hex`);
    return d;
  };
  const ovmfHash =
    opts.ovmfHash === undefined
      ? undefined
      : Uint8Array.from(Buffer.from(hexDigits("--ovmf-hash", opts.ovmfHash, /^[0-9a-fA-F]{96}$/), "hex"));
  const guestFeatures =
    opts.guestFeatures === undefined
      ? undefined
      : BigInt(`0x${hexDigits("--guest-features", opts.guestFeatures, /^[0-9a-fA-F]{1,16}$/)}`);
  const ovmf = new Uint8Array(
    await readFile(opts.ovmf).catch((err: Error) => {
      throw new CliError(`OVMF image ${opts.ovmf} cannot be read: ${err.message}`);
    }),
  );
  const { measureImage, ImageError } = await import("@trustedpods/provider-image");
  const { MeasureError } = await import("@trustedpods/attestation");
  try {
    const r = await measureImage({
      imageDir: opts.image,
      ovmf,
      vcpus,
      kvmInit: opts.kvmInit,
      ...(ovmfHash ? { ovmfHash } : {}),
      ...(opts.vcpuType?.length ? { vcpuTypes: opts.vcpuType } : {}),
      ...(guestFeatures !== undefined ? { guestFeatures } : {}),
    });
    if (opts.json) return printJson(io, r);
    io.out(`image ${r.image.digest} (commit ${r.image.commit}${r.image.dirty ? ", dirty" : ""})`);
    io.out(`firmware sha256 ${r.firmware.sha256}`);
    io.out(`SEV-SNP, QEMU, kvm ${r.kvmInit}, guest features ${r.guestFeatures}, measured direct boot`);
    for (const m of r.measurements)
      io.out(`${m.vcpuType.padEnd(12)} ${String(m.vcpus).padStart(3)} vCPU  ${m.measurement}`);
  } catch (err) {
    if (err instanceof ImageError) throw new CliError(`${err.code}: ${err.message}`);
    if (err instanceof MeasureError) {
      io.err(`error: ${err.code}: ${err.message}`);
      if (opts.json) printJson(io, { error: err.code, message: err.message });
      setExitCode(
        err.code === "INVALID_ARGUMENT" || err.code === "UNKNOWN_VCPU_TYPE"
          ? ExitCode.usage
          : ExitCode.failure,
      );
      return;
    }
    throw err;
  }
}
