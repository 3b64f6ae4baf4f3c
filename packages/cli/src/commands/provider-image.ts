import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { ImageBuildOpts, ImageMeasureOpts } from "../options/provider-image.js";

export type { ImageBuildOpts, ImageMeasureOpts } from "../options/provider-image.js";

// Definitions only; the builder and the measurement code load on use from ../actions/provider-image.js.

const collect = (v: string, prev: string[] = []) => [...prev, v];
const actions = () => import("../actions/provider-image.js");

/** `tpod provider image …`, under the provider command group. */
export function registerProviderImage(provider: Command, ctx: CommandContext): void {
  const image = provider
    .command("image")
    .description("the provider's whole stack as a reproducible, measured VM image (docs/provider-image.md)");
  image
    .command("build")
    .description(
      "build the VM image (kernel, initrd, dm-verity squashfs root with the daemon, Node 22, Podman, nginx) from Debian 12 packages and this repository; two builds of one commit give the same digests (run as root; installs mmdebstrap, squashfs-tools, cryptsetup-bin, cpio if missing)",
    )
    .option("--out <dir>", "output directory (replaced)", "provider-image")
    .option("--work-dir <dir>", "scratch directory (default OUT.work)")
    .option("--lock <file>", "lock file to pin and check versions with (default the repository's)")
    .option("--no-lock", "build with the archive's current versions and check nothing")
    .option("--update-lock", "build with current versions and rewrite the lock file")
    .option("--mirror <url>", "Debian mirror (e.g. a snapshot.debian.org URL matching the lock's date)")
    .option("--expect <digest>", "fail unless the image digest is this one (verifying a published image)")
    .option(
      "--ovmf <file>",
      "the firmware providers launch the image with (an OvmfPkg/AmdSev build): the release notes then list the measurement per supported configuration",
    )
    .option("--ovmf-hash <hex>", "SNP digest over the firmware pages, when --ovmf is only its last pages")
    .option("--json", "print the manifest as JSON")
    .action(async (opts: ImageBuildOpts) => (await actions()).imageBuild(ctx, opts));
  image
    .command("measure")
    .description(
      "print the SEV-SNP launch measurements of the image for each vCPU count and CPU model a provider may launch it with (measured direct boot: the firmware must have a kernel hashes table, an OvmfPkg/AmdSev build)",
    )
    .option("--image <dir>", "the image directory", "provider-image")
    .requiredOption(
      "--ovmf <file>",
      "the firmware given to QEMU (-bios); with --ovmf-hash, its last pages suffice",
    )
    .option("--ovmf-hash <hex>", "SNP digest over the firmware pages (tpod measure snp --ovmf-hash-only)")
    .option("--vcpus <list>", "vCPU counts: N, A-B or a comma list", "1-8")
    .option(
      "--vcpu-type <type>",
      "QEMU CPU model (repeatable; default EPYC-v4, EPYC-Milan, EPYC-Genoa)",
      collect,
    )
    .option("--vmm-type <type>", "qemu or ec2 (repeatable; default qemu)", collect)
    .option(
      "--write-notes",
      "also write the image's release notes (RELEASE-NOTES.md, release.json for tpod release publish) for the supported configurations: EPYC-v4, EPYC-Milan, EPYC-Genoa at 1, 2, 4, 8 vCPUs under QEMU",
    )
    .option("--guest-features <hex>", "VMSA SEV_FEATURES (default 0x1)")
    .option("--kvm-init <kind>", "init2 or legacy (tpod measure snp --help)", "init2")
    .option("--json", "print the measurements as JSON (what a release lists as accepted measurements)")
    .action(async (opts: ImageMeasureOpts) => (await actions()).imageMeasure(ctx, opts));
}
