/**
 * The image's release notes: its digest and the SEV-SNP launch measurement for each supported launch
 * configuration, written next to the image as a release file release signers publish as is
 * (`tpod release publish DIR/release.json`) and as text for people (RELEASE-NOTES.md).
 *
 * The measurements need the firmware the provider launches with (an OvmfPkg/AmdSev build): without one the
 * notes say so and list no measurement, and no release file is written (a release must list at least one).
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { ImageError } from "./errors.js";
import type { ImageManifest } from "./manifest.js";
import { DEFAULT_VCPU_TYPES, type ImageMeasurements } from "./measure.js";

export const RELEASE_FILE = "release.json";
export const RELEASE_NOTES_FILE = "RELEASE-NOTES.md";

/**
 * The launch configurations a release of the image lists: the CPU models of Milan and Genoa hosts (and QEMU's
 * generic EPYC-v4) at the vCPU counts a provider sizes VMs by. A release holds at most 16 measurements
 * (contracts/Releases.sol MAX_MEASUREMENTS), so this is a choice, not every possible launch.
 */
export const SUPPORTED_VCPUS = [1, 2, 4, 8] as const;
export const SUPPORTED_VCPU_TYPES = DEFAULT_VCPU_TYPES;
export const SUPPORTED_VMM_TYPES = ["qemu"] as const;
export const MAX_RELEASE_MEASUREMENTS = 16;

/** One measured configuration as a release file lists it (publisher parseReleaseFile's format). */
export interface ReleaseFileMeasurement {
  tee: "snp";
  /** At most 64 characters (the contract's limit). */
  config: string;
  measurement: string;
  /** SHA-256 of the firmware binary the measurement was computed with. */
  firmware: string;
}

export interface ReleaseFile {
  version: string;
  imageDigest: string;
  source: string;
  measurements: ReleaseFileMeasurement[];
}

/** The version a release of this image is published under: the image digest's first 12 hex digits. */
export function imageReleaseVersion(m: Pick<ImageManifest, "digest">): string {
  return `provider-image-${m.digest.slice(0, 12)}`;
}

/**
 * "EPYC-Milan, 4 vCPU, qemu, fw 1a2b3c4d": what a launch needs to reproduce the measurement (the firmware's
 * SHA-256, or "pages 086e2e91" for its SNP page digest when only that is known).
 */
export function configLabel(vcpuType: string, vcpus: number, vmmType: string, firmware: string): string {
  const fw = firmware.startsWith("pages ") ? firmware.slice(0, 14) : firmware.slice(0, 8);
  return `${vcpuType}, ${vcpus} vCPU, ${vmmType}, fw ${fw}`;
}

/** The release file of an image and its measurements (undefined measurements: none, no firmware given). */
export function releaseFileOf(manifest: ImageManifest, measured?: ImageMeasurements): ReleaseFile {
  // The firmware field names the whole firmware binary; from its last pages alone it is unknown (zero).
  const firmware = measured?.firmware.partial ? "0".repeat(64) : (measured?.firmware.sha256 ?? "");
  const fwLabel = measured?.firmware.partial ? `pages ${measured.firmware.ovmfHash}` : firmware;
  const measurements = (measured?.measurements ?? []).map(
    (x): ReleaseFileMeasurement => ({
      tee: "snp",
      config: configLabel(x.vcpuType, x.vcpus, x.vmmType, fwLabel),
      measurement: x.measurement,
      firmware,
    }),
  );
  if (measurements.length > MAX_RELEASE_MEASUREMENTS)
    throw new ImageError(
      "TOO_MANY_MEASUREMENTS",
      `a release lists at most ${MAX_RELEASE_MEASUREMENTS} measured configurations, got ${measurements.length}: measure fewer vCPU counts or CPU models`,
    );
  return {
    version: imageReleaseVersion(manifest),
    imageDigest: manifest.digest,
    source: `tpod provider image build, commit ${manifest.commit}${manifest.dirty ? " (dirty)" : ""}`,
    measurements,
  };
}

function notesText(manifest: ImageManifest, release: ReleaseFile, measured?: ImageMeasurements): string {
  const lines = [
    `# Provider image ${release.version}`,
    "",
    `- image digest: \`${manifest.digest}\` (rebuild and compare: \`tpod provider image build --expect ${manifest.digest}\`)`,
    `- commit: \`${manifest.commit}\`${manifest.dirty ? " (with uncommitted changes: not reproducible from the commit)" : ""}`,
    `- kernel ${manifest.kernel}, Node ${manifest.node}`,
    `- dm-verity root hash: \`${manifest.rootHash}\` (on the kernel command line, so inside the measurement)`,
    `- kernel command line: \`${manifest.cmdline}\``,
    "",
  ];
  if (!measured) {
    lines.push(
      "## SEV-SNP measurements",
      "",
      "None: the build was given no firmware. The measurement depends on the firmware the provider launches",
      "with (an OvmfPkg/AmdSev build, docs/provider-image.md); compute them with",
      "`tpod provider image measure --image DIR --ovmf FILE --write-notes`, which rewrites these notes and",
      `writes ${RELEASE_FILE}.`,
      "",
    );
    return `${lines.join("\n")}`;
  }
  lines.push(
    "## SEV-SNP measurements (measured direct boot)",
    "",
    measured.firmware.partial
      ? `Firmware: SNP page digest \`${measured.firmware.ovmfHash}\` (computed from the firmware's last pages and that digest: the whole file's SHA-256 was not given, so release.json lists it as zero),`
      : `Firmware SHA-256 \`${measured.firmware.sha256}\` (its SNP page digest \`${measured.firmware.ovmfHash}\`),`,
    ...firmwareOrigin(measured.firmware),
    `KVM ${measured.kvmInit}, guest features ${measured.guestFeatures}. Launch with exactly this kernel, initrd and`,
    "command line (QEMU `-kernel -initrd -append`, `kernel-hashes=on`).",
    "",
    "| CPU model | vCPUs | VMM | MEASUREMENT |",
    "|---|---|---|---|",
    ...measured.measurements.map(
      (x) => `| ${x.vcpuType} | ${x.vcpus} | ${x.vmmType} | \`${x.measurement}\` |`,
    ),
    "",
    `Release signers publish these with \`tpod release publish ${RELEASE_FILE}\`.`,
    "",
  );
  return lines.join("\n");
}

/** Where the firmware comes from, as far as this repository knows: its lock's reproducible build or not. */
function firmwareOrigin(fw: ImageMeasurements["firmware"]): string[] {
  if (fw.partial) return [];
  if (fw.locked)
    return [
      `the reproducible ${fw.build} build that \`packages/provider-image/firmware/amdsev-ovmf.lock\` pins`,
      "(rebuild it with `packages/provider-image/firmware/build-amdsev-ovmf.sh OUT_DIR` and compare the SHA-256),",
    ];
  return [
    "not the build `packages/provider-image/firmware/amdsev-ovmf.lock` pins: the provider must say where this",
    "firmware comes from and how to rebuild it,",
  ];
}

/** Writes RELEASE-NOTES.md, and release.json when there are measurements; returns the release file. */
export async function writeReleaseNotes(
  dir: string,
  manifest: ImageManifest,
  measured?: ImageMeasurements,
): Promise<ReleaseFile> {
  const release = releaseFileOf(manifest, measured);
  if (release.measurements.length > 0)
    await writeFile(path.join(dir, RELEASE_FILE), `${JSON.stringify(release, null, 2)}\n`);
  await writeFile(path.join(dir, RELEASE_NOTES_FILE), notesText(manifest, release, measured));
  return release;
}
