import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { ImageBuildOpts, ImageMeasureOpts } from "../options/provider-image.js";
import { printJson } from "../output.js";

const usage = (message: string) => new CliError(message, ExitCode.usage);

/** The repository this CLI runs from (packages/cli/dist/actions -> the root): the image is built from it. */
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

/** `tpod provider image build` */
export async function imageBuild({ io }: CommandContext, opts: ImageBuildOpts): Promise<void> {
  if (opts.lock === false && opts.updateLock) throw usage("--no-lock and --update-lock exclude each other");
  if (opts.expect !== undefined && !/^(sha256:)?[0-9a-f]{64}$/.test(opts.expect))
    throw usage("--expect must be a SHA-256 image digest (64 hex digits)");
  const fw = await readFirmware(opts);
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
      ...fw,
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
    io.out(
      r.release.measurements.length > 0
        ? `  release    ${r.release.version}: ${r.release.measurements.length} SEV-SNP measurements in release.json and RELEASE-NOTES.md`
        : `  release    ${r.release.version}: no measurements (no --ovmf given); RELEASE-NOTES.md says how to add them`,
    );
    io.out(`built in ${r.seconds} s into ${r.outDir}`);
    if (r.installed.length) io.err(`installed from apt: ${r.installed.join(" ")}`);
  } catch (err) {
    if (err instanceof ImageError) throw new CliError(`${err.code}: ${err.message}`);
    throw err;
  }
}

/** --ovmf and --ovmf-hash, read and checked (nothing when --ovmf is absent). */
async function readFirmware(opts: {
  ovmf?: string;
  ovmfHash?: string;
}): Promise<{ ovmf?: Uint8Array; ovmfHash?: Uint8Array }> {
  if (opts.ovmfHash !== undefined && opts.ovmf === undefined)
    throw usage("--ovmf-hash needs --ovmf (the firmware's last pages at least)");
  if (opts.ovmf === undefined) return {};
  let ovmfHash: Uint8Array | undefined;
  if (opts.ovmfHash !== undefined) {
    const d = opts.ovmfHash.replace(/^0x/i, "");
    if (!/^[0-9a-fA-F]{96}$/.test(d)) throw usage("--ovmf-hash: must be 48 bytes of hex");
    ovmfHash = Uint8Array.from(Buffer.from(d, "hex"));
  }
  const ovmf = new Uint8Array(
    await readFile(opts.ovmf).catch((err: Error) => {
      throw new CliError(`OVMF image ${opts.ovmf} cannot be read: ${err.message}`);
    }),
  );
  return { ovmf, ...(ovmfHash ? { ovmfHash } : {}) };
}

/** Whether the firmware is the reproducible build the repository's firmware lock pins. */
function firmwareNote(fw: { partial: boolean; locked: boolean; build?: string }): string {
  if (fw.partial) return " (of the pages given: --ovmf-hash)";
  return fw.locked
    ? ` (the reproducible ${fw.build} build amdsev-ovmf.lock pins)`
    : " (not the build packages/provider-image/firmware/amdsev-ovmf.lock pins)";
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
  const guestFeatures =
    opts.guestFeatures === undefined
      ? undefined
      : BigInt(`0x${hexDigits("--guest-features", opts.guestFeatures, /^[0-9a-fA-F]{1,16}$/)}`);
  const vmmTypes = opts.vmmType ?? ["qemu"];
  for (const v of vmmTypes)
    if (v !== "qemu" && v !== "ec2") throw usage(`--vmm-type must be qemu or ec2, got "${v}"`);
  const { ovmf, ovmfHash } = await readFirmware(opts);
  const { measureImage, readManifest, writeImageReleaseNotes, ImageError } = await import(
    "@trustedpods/provider-image"
  );
  const { MeasureError } = await import("@trustedpods/attestation");
  try {
    const r = await measureImage({
      imageDir: opts.image,
      ovmf: ovmf!,
      vcpus,
      vmmTypes: vmmTypes as ("qemu" | "ec2")[],
      kvmInit: opts.kvmInit,
      ...(ovmfHash ? { ovmfHash } : {}),
      ...(opts.vcpuType?.length ? { vcpuTypes: opts.vcpuType } : {}),
      ...(guestFeatures !== undefined ? { guestFeatures } : {}),
    });
    const notes = opts.writeNotes
      ? await writeImageReleaseNotes(opts.image, await readManifest(opts.image), {
          ovmf: ovmf!,
          ...(ovmfHash ? { ovmfHash } : {}),
        })
      : undefined;
    if (opts.json) return printJson(io, notes ? { ...r, release: notes } : r);
    io.out(`image ${r.image.digest} (commit ${r.image.commit}${r.image.dirty ? ", dirty" : ""})`);
    io.out(`firmware sha256 ${r.firmware.sha256}${firmwareNote(r.firmware)}`);
    io.out(`SEV-SNP, kvm ${r.kvmInit}, guest features ${r.guestFeatures}, measured direct boot`);
    for (const m of r.measurements)
      io.out(
        `${m.vmmType.padEnd(5)} ${m.vcpuType.padEnd(12)} ${String(m.vcpus).padStart(3)} vCPU  ${m.measurement}`,
      );
    if (notes)
      io.out(
        `wrote RELEASE-NOTES.md and release.json (${notes.version}, ${notes.measurements.length} configurations) into ${opts.image}`,
      );
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
