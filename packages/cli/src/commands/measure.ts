import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { MeasureSnpOpts, MeasureTdxOpts } from "../options/measure.js";

export type { MeasureSnpOpts, MeasureTdxOpts } from "../options/measure.js";

// Definitions only; the computation loads on use from ../actions/measure.js.

const actions = () => import("../actions/measure.js");

export function registerMeasure(program: Command, ctx: CommandContext): void {
  const measure = program
    .command("measure")
    .description(
      "compute the launch measurement a TEE will report for a VM, to put in an attestation policy",
    );
  measure
    .command("snp")
    .description(
      "expected AMD SEV-SNP launch digest (or SEV-ES launch hash) of an OVMF guest (exit 0 ok, 1 failed, 2 usage)",
    )
    .requiredOption("--ovmf <file>", "the OVMF firmware image given to QEMU")
    .option(
      "--ovmf-hash <hex>",
      "SNP: launch digest over the OVMF pages computed earlier (--ovmf-hash-only); --ovmf then only supplies the metadata",
    )
    .option("--ovmf-hash-only", "print the SNP launch digest over the OVMF pages alone and stop")
    .option("--kernel <file>", "measured direct boot: the kernel (needs an OVMF with a kernel hashes table)")
    .option("--initrd <file>", "measured direct boot: the initrd (with --kernel)")
    .option("--append <cmdline>", "measured direct boot: the kernel command line (with --kernel)")
    .option("--vcpus <n>", "number of vCPUs")
    .option(
      "--vcpu-type <type>",
      "QEMU CPU model, e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa (needed for --vmm-type qemu)",
    )
    .option("--vcpu-sig <hex>", "CPUID signature instead of --vcpu-type")
    .option("--vmm-type <type>", "qemu, ec2 or gce", "qemu")
    .option(
      "--kvm-init <kind>",
      "init2 (Linux >= 6.10 with QEMU >= 9.1) or legacy (older KVM_SEV_INIT: MXCSR/FCW 0 in the VMSA)",
      "init2",
    )
    .option("--mode <mode>", "snp or seves", "snp")
    .option(
      "--guest-features <hex>",
      "SNP: VMSA SEV_FEATURES, e.g. 0x1 (SNPActive, default) or 0x21 (+DebugSwap)",
    )
    .option("--json", "print the result as JSON")
    .action(async (opts: MeasureSnpOpts) => (await actions()).measureSnp(ctx, opts));
  measure
    .command("tdx")
    .description(
      "expected Intel TDX MRTD of a TDVF guest, and RTMR1/RTMR2 of a direct kernel boot (exit 0 ok, 1 failed, 2 usage)",
    )
    .requiredOption("--firmware <file>", "the unified TDVF image given to QEMU with -bios (OVMF.fd)")
    .option("--kernel <file>", "direct boot: the kernel (a bzImage with an EFI stub); adds RTMR1 and RTMR2")
    .option("--initrd <file>", "direct boot: the initrd (with --kernel)")
    .option("--append <cmdline>", "direct boot: the kernel command line (with --kernel)")
    .option(
      "--page-order <order>",
      "the host's SEAMCALL order: per-page (upstream KVM, Linux >= 6.16, QEMU >= 10.1) or per-section (older TDX hosts)",
      "per-page",
    )
    .option("--json", "print the result as JSON")
    .action(async (opts: MeasureTdxOpts) => (await actions()).measureTdx(ctx, opts));
}
