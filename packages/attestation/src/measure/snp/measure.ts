// The expected launch measurement of an AMD SEV-SNP or SEV-ES guest booted by OVMF, as the AMD secure
// processor computes it from what the VMM loads before launch. Pure TypeScript on WebCrypto: runs in browsers.
import { concat } from "../../bytes.js";
import { sha256 } from "../../crypto.js";
import { measureFail } from "../errors.js";
import { type DirectBoot, kernelHashesPage, kernelHashesTable, PADDED_TABLE_SIZE } from "./kernel-hashes.js";
import { LAUNCH_DIGEST_SIZE, SnpLaunchDigest } from "./launch-digest.js";
import { type OvmfImage, PAGE_SIZE, parseOvmf, type SnpSection } from "./ovmf.js";
import { vcpuSignature } from "./vcpu.js";
import { type KvmInit, type VmmType, vmsaPages } from "./vmsa.js";

export type SevMode = "snp" | "seves";
export const SEV_MODES: readonly SevMode[] = ["snp", "seves"];

export const MAX_VCPUS = 4096;
/** SNPActive alone: what QEMU asks for unless told otherwise. */
export const DEFAULT_GUEST_FEATURES = 0x1n;

export interface SevMeasureOptions {
  /** Default "snp". */
  mode?: SevMode;
  /** The firmware image exactly as given to QEMU (`-bios` or the code flash). */
  ovmf: Uint8Array;
  /** SNP only: the digest over the firmware pages computed earlier (see snpOvmfHash); `ovmf` then only
   *  supplies the metadata (its last pages are enough). */
  ovmfHash?: Uint8Array;
  /** Measured direct boot (`-kernel`, `-initrd`, `-append`); needs a firmware with a kernel hashes table. */
  boot?: DirectBoot;
  vcpus: number;
  /** A QEMU CPU model (VCPU_TYPES) or its CPUID signature; one of them is needed for the QEMU VMM type. */
  vcpuType?: string;
  vcpuSig?: number;
  /** Default "qemu". */
  vmmType?: VmmType;
  /** Default "init2". */
  kvmInit?: KvmInit;
  /** SNP only: the VMSA SEV_FEATURES (default 0x1, SNPActive). */
  guestFeatures?: bigint;
}

/**
 * - measured: the kernel, initrd and command-line hashes are part of the digest.
 * - not-given: the firmware can check a kernel, but none was given (SNP measures the hashes page as zeros).
 * - unsupported: the firmware has no kernel hashes table: a kernel, initrd and command line given to QEMU
 *   are not covered by the digest at all.
 */
export type KernelHashesStatus = "measured" | "not-given" | "unsupported";

export interface SevMeasurement {
  mode: SevMode;
  /** SNP: 48-byte SHA-384 launch digest (the report's MEASUREMENT). SEV-ES: 32-byte SHA-256. */
  digest: Uint8Array;
  /** SNP: the launch digest after the firmware pages alone (what --ovmf-hash takes). */
  ovmfHash?: Uint8Array;
  vcpus: number;
  /** The CPUID signature put in RDX (QEMU); undefined for VMM types that use a fixed value. */
  vcpuSig?: number;
  vmmType: VmmType;
  kvmInit: KvmInit;
  guestFeatures: bigint;
  kernelHashes: KernelHashesStatus;
  /** The firmware's SEV metadata sections (SNP). */
  sections: SnpSection[];
}

/** The SNP launch digest over the firmware pages alone, to reuse as `ovmfHash` with a shortened image. */
export async function snpOvmfHash(ovmf: Uint8Array): Promise<Uint8Array> {
  const image = parseOvmf(ovmf);
  const ld = new SnpLaunchDigest();
  await ld.normalPages(image.gpa, image.data);
  return ld.value();
}

export async function measureSev(opts: SevMeasureOptions): Promise<SevMeasurement> {
  const mode = opts.mode ?? "snp";
  const vmmType = opts.vmmType ?? "qemu";
  const kvmInit = opts.kvmInit ?? "init2";
  // Every argument is checked before the firmware is read, so a usage mistake is reported as such.
  checkArguments(opts, mode);
  const vcpuSig = resolveVcpuSig(opts, vmmType);
  const image = parseOvmf(opts.ovmf);
  const resetEip = sevEsResetEip(image);
  if (mode === "seves") return measureSevEs(opts, image, resetEip, { vmmType, kvmInit, vcpuSig });

  const guestFeatures = opts.guestFeatures ?? DEFAULT_GUEST_FEATURES;
  if (!image.sections) {
    measureFail(
      "OVMF_NO_SNP_METADATA",
      "the OVMF image has no SEV-SNP metadata (OvmfSevMetadata): it cannot launch an SNP guest",
    );
  }
  const hashesPage = opts.boot ? await snpKernelHashesPage(image, opts.boot) : undefined;

  const ld = new SnpLaunchDigest(opts.ovmfHash);
  if (!opts.ovmfHash) await ld.normalPages(image.gpa, image.data);
  const ovmfHash = ld.value();
  await measureSections(ld, image.sections, hashesPage, vmmType);
  const base = { sevFeatures: guestFeatures, vcpuSig: vcpuSig ?? 0, vmm: vmmType, kvmInit };
  for (const page of vmsaPages(opts.vcpus, resetEip, base)) await ld.vmsaPage(page);

  return {
    mode,
    digest: ld.value(),
    ovmfHash,
    vcpus: opts.vcpus,
    ...(vcpuSig !== undefined ? { vcpuSig } : {}),
    vmmType,
    kvmInit,
    guestFeatures,
    kernelHashes: opts.boot
      ? "measured"
      : image.sections.some((s) => s.type === "SNP_KERNEL_HASHES")
        ? "not-given"
        : "unsupported",
    sections: image.sections,
  };
}

async function measureSections(
  ld: SnpLaunchDigest,
  sections: SnpSection[],
  hashesPage: Uint8Array | undefined,
  vmm: VmmType,
): Promise<void> {
  for (const s of sections) {
    switch (s.type) {
      case "SNP_SEC_MEM":
        // GCE accepts this memory unmeasured; QEMU and EC2 launch it as zero pages.
        if (vmm === "gce") await ld.unmeasuredPages(s.gpa, s.size);
        else await ld.zeroPages(s.gpa, s.size);
        break;
      case "SNP_SECRETS":
        await ld.secretsPage(s.gpa);
        break;
      case "CPUID":
        if (vmm !== "ec2") await ld.cpuidPage(s.gpa);
        break;
      case "SNP_KERNEL_HASHES":
        if (hashesPage) await ld.normalPages(s.gpa, hashesPage);
        else await ld.zeroPages(s.gpa, s.size);
        break;
      case "SVSM_CAA":
        await ld.zeroPages(s.gpa, s.size);
        break;
    }
  }
  // EC2 launches the CPUID page after every other firmware section.
  if (vmm === "ec2") {
    for (const s of sections) if (s.type === "CPUID") await ld.cpuidPage(s.gpa);
  }
}

async function snpKernelHashesPage(image: OvmfImage, boot: DirectBoot): Promise<Uint8Array> {
  const section = image.sections?.find((s) => s.type === "SNP_KERNEL_HASHES");
  if (!section) {
    measureFail(
      "OVMF_NO_KERNEL_HASHES",
      "a kernel was given but the OVMF has no SNP_KERNEL_HASHES section: this firmware does not measure " +
        "the kernel, initrd or command line (use an OvmfPkg/AmdSev build for measured direct boot)",
    );
  }
  const tableGpa = image.sevHashesTableGpa;
  if (tableGpa === undefined || tableGpa === 0) {
    measureFail(
      "OVMF_NO_KERNEL_HASHES",
      "the OVMF has an SNP_KERNEL_HASHES section but no hashes table address",
    );
  }
  const offset = tableGpa % PAGE_SIZE;
  // QEMU writes the table at its address; SNP measures the section's page, so both must be the same page.
  if (
    section.size !== PAGE_SIZE ||
    tableGpa - offset !== section.gpa ||
    offset + PADDED_TABLE_SIZE > PAGE_SIZE
  ) {
    measureFail(
      "OVMF_MALFORMED",
      `the kernel hashes table at 0x${tableGpa.toString(16)} does not fit the SNP_KERNEL_HASHES page ` +
        `at 0x${section.gpa.toString(16)} (size 0x${section.size.toString(16)})`,
    );
  }
  return kernelHashesPage(await kernelHashesTable(boot), offset);
}

/** SEV-ES: SHA-256 over the firmware, the kernel hashes table if any, then every VMSA. */
async function measureSevEs(
  opts: SevMeasureOptions,
  image: OvmfImage,
  resetEip: number,
  ctx: { vmmType: VmmType; kvmInit: KvmInit; vcpuSig: number | undefined },
): Promise<SevMeasurement> {
  const supportsHashes = image.sevHashesTableGpa !== undefined && image.sevHashesTableGpa !== 0;
  if (opts.boot && !supportsHashes) {
    measureFail(
      "OVMF_NO_KERNEL_HASHES",
      "a kernel was given but the OVMF has no SEV hashes table: this firmware does not measure " +
        "the kernel, initrd or command line",
    );
  }
  const table = opts.boot ? await kernelHashesTable(opts.boot) : new Uint8Array();
  const base = { sevFeatures: 0n, vcpuSig: ctx.vcpuSig ?? 0, vmm: ctx.vmmType, kvmInit: ctx.kvmInit };
  const vmsas = vmsaPages(opts.vcpus, resetEip, base);
  return {
    mode: "seves",
    digest: await sha256(concat(image.data, table, ...vmsas)),
    vcpus: opts.vcpus,
    ...(ctx.vcpuSig !== undefined ? { vcpuSig: ctx.vcpuSig } : {}),
    vmmType: ctx.vmmType,
    kvmInit: ctx.kvmInit,
    guestFeatures: 0n,
    kernelHashes: opts.boot ? "measured" : supportsHashes ? "not-given" : "unsupported",
    sections: image.sections ?? [],
  };
}

function checkArguments(opts: SevMeasureOptions, mode: SevMode): void {
  if (!SEV_MODES.includes(mode)) measureFail("INVALID_ARGUMENT", `unknown SEV mode ${String(mode)}`);
  if (!Number.isInteger(opts.vcpus) || opts.vcpus < 1 || opts.vcpus > MAX_VCPUS) {
    measureFail(
      "INVALID_ARGUMENT",
      `the vCPU count must be an integer from 1 to ${MAX_VCPUS}, got ${opts.vcpus}`,
    );
  }
  if (mode === "seves" && opts.ovmfHash) {
    measureFail("INVALID_ARGUMENT", "a precomputed OVMF hash applies to SNP only");
  }
  if (mode === "seves" && opts.guestFeatures !== undefined) {
    measureFail("INVALID_ARGUMENT", "guest features apply to SNP only");
  }
  if (opts.ovmfHash && opts.ovmfHash.length !== LAUNCH_DIGEST_SIZE) {
    measureFail("INVALID_ARGUMENT", `the OVMF hash must be ${LAUNCH_DIGEST_SIZE} bytes (SHA-384)`);
  }
  const features = opts.guestFeatures;
  if (features !== undefined && (features < 0n || features >= 1n << 64n)) {
    measureFail("INVALID_ARGUMENT", "guest features must fit in 64 bits");
  }
}

/** QEMU puts the vCPU's CPUID signature in RDX; EC2 and GCE use a fixed value, so no type is needed there. */
function resolveVcpuSig(opts: SevMeasureOptions, vmm: VmmType): number | undefined {
  if (opts.vcpuType !== undefined && opts.vcpuSig !== undefined) {
    measureFail("INVALID_ARGUMENT", "give a vCPU type or a vCPU signature, not both");
  }
  if (opts.vcpuSig !== undefined) {
    if (!Number.isInteger(opts.vcpuSig) || opts.vcpuSig < 0 || opts.vcpuSig > 0xffff_ffff) {
      measureFail("INVALID_ARGUMENT", "the vCPU signature must be a 32-bit unsigned integer");
    }
    return opts.vcpuSig;
  }
  if (opts.vcpuType !== undefined) return vcpuSignature(opts.vcpuType);
  if (vmm === "qemu") measureFail("INVALID_ARGUMENT", "the QEMU VMM type needs a vCPU type or signature");
  return undefined;
}

function sevEsResetEip(image: OvmfImage): number {
  if (!image.hasFooterTable) {
    measureFail("OVMF_NOT_SEV", "the OVMF image has no GUIDed footer table: it was not built for SEV guests");
  }
  if (image.sevEsResetEip === undefined) {
    measureFail("OVMF_NOT_SEV", "the OVMF image has no SEV-ES reset block: it cannot start SEV-ES/SNP vCPUs");
  }
  return image.sevEsResetEip;
}
