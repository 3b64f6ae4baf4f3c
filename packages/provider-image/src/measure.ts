/**
 * `tpod provider image measure`: the SEV-SNP launch digests a provider's guest will report when it launches
 * this image with measured direct boot (QEMU -kernel/-initrd/-append with kernel-hashes=on), for the vCPU
 * counts and CPU models it may use. The kernel command line holds the dm-verity root hash, so the digest
 * covers the whole read-only root file system.
 *
 * The firmware must carry a kernel hashes table (an OvmfPkg/AmdSev build): with one that does not (Debian's
 * OvmfPkgX64 `ovmf` package), a kernel is loaded unmeasured and the digest would say nothing about the image,
 * so this refuses it.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { MeasureError, measureSev, snpOvmfHash, toHex, type VmmType } from "@trustedpods/attestation";
import { ImageError } from "./errors.js";
import { type FirmwareProvenance, firmwareProvenance } from "./firmware.js";
import { type ImageManifest, readManifest } from "./manifest.js";

/** The CPU models a provider usually launches SNP guests with (Milan and Genoa hosts; EPYC-v4 is QEMU's generic). */
export const DEFAULT_VCPU_TYPES = ["EPYC-v4", "EPYC-Milan", "EPYC-Genoa"] as const;
export const DEFAULT_MAX_VCPUS = 8;

export interface ImageMeasureOptions {
  imageDir: string;
  /** The firmware given to QEMU (-bios), or its last pages when ovmfHash is given. */
  ovmf: Uint8Array;
  /** SNP digest over the firmware pages (tpod measure snp --ovmf-hash-only), when ovmf is only its end. */
  ovmfHash?: Uint8Array;
  vcpus?: number[];
  vcpuTypes?: string[];
  /**
   * The VMMs the guest may be launched by (default qemu). QEMU puts the vCPU model's CPUID signature in the
   * VMSA, so each model gets its own digest; ec2 uses a fixed value, so it is measured once per vCPU count.
   */
  vmmTypes?: VmmType[];
  guestFeatures?: bigint;
  kvmInit?: "init2" | "legacy";
}

export interface ImageMeasurement {
  vcpus: number;
  /** The QEMU CPU model; "any" for ec2 (its VMSA does not depend on the model). */
  vcpuType: string;
  vmmType: VmmType;
  /** SHA-384 launch digest, hex: the report's MEASUREMENT. */
  measurement: string;
}

export interface ImageMeasurements {
  image: { digest: string; commit: string; dirty: boolean; rootHash: string; cmdline: string };
  /**
   * sha256: of the firmware file given; partial: it was only the firmware's last pages (ovmfHash given), so
   * that sha256 is not the firmware's and says nothing to a provider comparing its file. locked: the whole
   * firmware is the reproducible build firmware/amdsev-ovmf.lock pins (build: which one).
   */
  firmware: { sha256: string; ovmfHash: string; partial: boolean } & FirmwareProvenance;
  mode: "snp";
  vmmTypes: VmmType[];
  kvmInit: "init2" | "legacy";
  guestFeatures: string;
  measurements: ImageMeasurement[];
}

export async function measureImage(o: ImageMeasureOptions): Promise<ImageMeasurements> {
  const manifest: ImageManifest = await readManifest(o.imageDir);
  const kernel = new Uint8Array(await readFile(path.join(o.imageDir, "vmlinuz")));
  const initrd = new Uint8Array(await readFile(path.join(o.imageDir, "initrd.img")));
  // The files must be the ones the manifest names, or the digests would describe another image.
  for (const [name, data] of [
    ["vmlinuz", kernel],
    ["initrd.img", initrd],
  ] as const) {
    const sha = createHash("sha256").update(data).digest("hex");
    if (sha !== manifest.files[name]?.sha256)
      throw new ImageError("DIGEST_MISMATCH", `${name} in ${o.imageDir} is not the one manifest.json names`);
  }
  const vcpus = o.vcpus ?? Array.from({ length: DEFAULT_MAX_VCPUS }, (_, i) => i + 1);
  const vcpuTypes = o.vcpuTypes ?? [...DEFAULT_VCPU_TYPES];
  const kvmInit = o.kvmInit ?? "init2";
  const guestFeatures = o.guestFeatures ?? 0x1n;
  const ovmfHash = o.ovmfHash ?? (await snpOvmfHash(o.ovmf));
  const boot = { kernel, initrd, append: manifest.cmdline };
  const vmmTypes = o.vmmTypes ?? ["qemu"];
  const configs = vmmTypes.flatMap((vmmType) =>
    (vmmType === "qemu" ? vcpuTypes : ["any"]).flatMap((vcpuType) =>
      vcpus.map((n) => ({ vmmType, vcpuType, vcpus: n })),
    ),
  );
  const measurements: ImageMeasurement[] = [];
  for (const c of configs) {
    try {
      const m = await measureSev({
        mode: "snp",
        ovmf: o.ovmf,
        ovmfHash,
        vcpus: c.vcpus,
        ...(c.vmmType === "qemu" ? { vcpuType: c.vcpuType } : {}),
        vmmType: c.vmmType,
        kvmInit,
        guestFeatures,
        boot,
      });
      measurements.push({ ...c, measurement: toHex(m.digest) });
    } catch (err) {
      if (err instanceof MeasureError && err.code === "OVMF_NO_KERNEL_HASHES")
        throw new MeasureError(
          err.code,
          "this firmware has no kernel hashes table, so the kernel, initrd and command line (and with them the root file system) would not be measured: launch the image with an OvmfPkg/AmdSev build (docs/provider-image.md)",
        );
      throw err;
    }
  }
  return {
    image: {
      digest: manifest.digest,
      commit: manifest.commit,
      dirty: manifest.dirty,
      rootHash: manifest.rootHash,
      cmdline: manifest.cmdline,
    },
    firmware: firmwareOf(o.ovmf, ovmfHash, o.ovmfHash !== undefined),
    mode: "snp",
    vmmTypes,
    kvmInit,
    guestFeatures: `0x${guestFeatures.toString(16)}`,
    measurements,
  };
}

function firmwareOf(ovmf: Uint8Array, ovmfHash: Uint8Array, partial: boolean): ImageMeasurements["firmware"] {
  const sha256 = createHash("sha256").update(ovmf).digest("hex");
  return {
    sha256,
    ovmfHash: toHex(ovmfHash),
    partial,
    ...(partial ? { locked: false } : firmwareProvenance(sha256)),
  };
}
