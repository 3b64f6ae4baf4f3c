// The initial VMSA (encrypted register state) of each vCPU, which SEV-ES and SEV-SNP measure. Offsets follow
// the VMSA layout of AMD APM vol. 2, table B-4 (the Linux kernel's struct sev_es_save_area).
import { PAGE_SIZE } from "./ovmf.js";

/** Which hypervisor launches the guest: they start vCPUs with slightly different register values. */
export type VmmType = "qemu" | "ec2" | "gce";
export const VMM_TYPES: readonly VmmType[] = ["qemu", "ec2", "gce"];

/**
 * How KVM was asked to set up the guest. Since Linux 6.10 with QEMU 9.1 (KVM_SEV_INIT2, the only way SNP
 * is launched upstream) KVM initialises MXCSR and the x87 control word; the older KVM_SEV_INIT /
 * KVM_SEV_ES_INIT left them 0. Matters for the QEMU VMM type only.
 */
export type KvmInit = "init2" | "legacy";
export const KVM_INITS: readonly KvmInit[] = ["init2", "legacy"];

/** The boot processor starts at the x86 reset vector. */
export const BSP_RESET_EIP = 0xffff_fff0;

interface RegisterDefaults {
  csAttrib: number;
  ssAttrib: number;
  trAttrib: number;
  rdx: number;
  mxcsr: number;
  fcw: number;
  gPat: bigint;
}

/** PAT MSR at reset (APM vol. 2, A.3). */
const RESET_G_PAT = 0x0007_0406_0007_0406n;

function registerDefaults(vmm: VmmType, eip: number, vcpuSig: number, kvmInit: KvmInit): RegisterDefaults {
  switch (vmm) {
    case "qemu":
      return {
        csAttrib: 0x9b,
        ssAttrib: 0x93,
        trAttrib: 0x8b,
        rdx: vcpuSig,
        mxcsr: kvmInit === "init2" ? 0x1f80 : 0,
        fcw: kvmInit === "init2" ? 0x37f : 0,
        gPat: RESET_G_PAT,
      };
    case "ec2":
      // EC2's hypervisor leaves the boot vCPU's code segment not-accessed and reports a fixed signature.
      return {
        csAttrib: eip === BSP_RESET_EIP ? 0x9a : 0x9b,
        ssAttrib: 0x92,
        trAttrib: 0x83,
        rdx: 0x600,
        mxcsr: 0,
        fcw: 0,
        gPat: RESET_G_PAT,
      };
    case "gce":
      return {
        csAttrib: 0x9b,
        ssAttrib: 0x93,
        trAttrib: 0x8b,
        rdx: 0x600,
        mxcsr: 0,
        fcw: 0,
        gPat: 0x0007_0106n,
      };
  }
}

export interface VmsaParams {
  /** Where this vCPU starts: BSP_RESET_EIP for the boot processor, the firmware's SEV-ES reset EIP for APs. */
  eip: number;
  /** VMSA SEV_FEATURES (SNP's guest features: bit 0 SNPActive, bit 5 DebugSwap...). 0 under SEV-ES. */
  sevFeatures: bigint;
  vcpuSig: number;
  vmm: VmmType;
  kvmInit: KvmInit;
}

export function vmsaPage(p: VmsaParams): Uint8Array {
  const r = registerDefaults(p.vmm, p.eip, p.vcpuSig, p.kvmInit);
  const page = new Uint8Array(PAGE_SIZE);
  const v = new DataView(page.buffer);
  const segment = (at: number, selector: number, attrib: number, limit: number, base: number) => {
    v.setUint16(at, selector, true);
    v.setUint16(at + 2, attrib, true);
    v.setUint32(at + 4, limit, true);
    v.setBigUint64(at + 8, BigInt(base), true);
  };
  // Real mode at reset: CS base is the top of the reset vector's 64 KiB segment, RIP the offset within it.
  segment(0x00, 0, 0x93, 0xffff, 0); // ES
  segment(0x10, 0xf000, r.csAttrib, 0xffff, (p.eip & 0xffff0000) >>> 0); // CS
  segment(0x20, 0, r.ssAttrib, 0xffff, 0); // SS
  segment(0x30, 0, 0x93, 0xffff, 0); // DS
  segment(0x40, 0, 0x93, 0xffff, 0); // FS
  segment(0x50, 0, 0x93, 0xffff, 0); // GS
  segment(0x60, 0, 0, 0xffff, 0); // GDTR
  segment(0x70, 0, 0x82, 0xffff, 0); // LDTR
  segment(0x80, 0, 0, 0xffff, 0); // IDTR
  segment(0x90, 0, r.trAttrib, 0xffff, 0); // TR
  v.setBigUint64(0xd0, 0x1000n, true); // EFER: KVM sets SVME
  v.setBigUint64(0x148, 0x40n, true); // CR4: KVM sets MCE
  v.setBigUint64(0x158, 0x10n, true); // CR0: ET
  v.setBigUint64(0x160, 0x400n, true); // DR7
  v.setBigUint64(0x168, 0xffff0ff0n, true); // DR6
  v.setBigUint64(0x170, 0x2n, true); // RFLAGS
  v.setBigUint64(0x178, BigInt(p.eip & 0xffff), true); // RIP
  v.setBigUint64(0x268, r.gPat, true); // G_PAT
  v.setBigUint64(0x310, BigInt(r.rdx), true); // RDX
  v.setBigUint64(0x3b0, p.sevFeatures, true); // SEV_FEATURES
  v.setBigUint64(0x3e8, 0x1n, true); // XCR0: x87 only
  v.setUint32(0x408, r.mxcsr, true); // MXCSR
  v.setUint16(0x410, r.fcw, true); // x87 FCW
  return page;
}

/** One VMSA per vCPU: the boot processor's, then the application processors' (all identical). */
export function vmsaPages(vcpus: number, apEip: number, base: Omit<VmsaParams, "eip">): Uint8Array[] {
  const bsp = vmsaPage({ ...base, eip: BSP_RESET_EIP });
  if (vcpus === 1) return [bsp];
  const ap = vmsaPage({ ...base, eip: apEip });
  return [bsp, ...Array.from({ length: vcpus - 1 }, () => ap)];
}
