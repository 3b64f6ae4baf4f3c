// Which interface this machine's kernel offers a TEE guest for fetching its attestation report, and the attester
// over it. configfs-tsm (Linux >= 6.7, CONFIG_TSM_REPORTS) is the one implemented; it is served by the sev-guest
// (SEV-SNP) or tdx-guest (TDX) driver. Where it is missing, the error names the kernel feature that is: an
// operator then knows whether to change the kernel, load a module, mount configfs, or run in a real TEE guest.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { AttestationError } from "../errors.js";
import type { Attester } from "../evidence.js";
import { type ConfigfsTsmOptions, configfsTsmAttester } from "./configfs-tsm.js";

export const CONFIGFS_ROOT = "/sys/kernel/config";

/** Kernel features whose absence stops a guest from producing evidence. */
export type MissingTeeFeature =
  /** configfs-tsm's report interface (the `tsm` module; Linux >= 6.7). */
  | "CONFIG_TSM_REPORTS"
  /** configfs is not mounted on /sys/kernel/config. */
  | "configfs"
  /** No TEE guest driver registered with configfs-tsm: sev-guest (CONFIG_SEV_GUEST) or tdx-guest (CONFIG_TDX_GUEST_DRIVER). */
  | "tee-guest-driver";

/** This machine cannot produce TEE evidence; `missing` names what its kernel lacks. */
export class TeeUnavailableError extends AttestationError {
  constructor(
    message: string,
    readonly missing: MissingTeeFeature,
  ) {
    super("TEE_UNAVAILABLE", message, missing);
  }
}

export interface TeeGuestProbeOptions {
  /** Where configfs is mounted (default /sys/kernel/config). */
  configRoot?: string;
  /** Where the legacy guest devices appear (default /dev). */
  devDir?: string;
}

/** Legacy per-vendor guest devices (an ioctl each), which predate configfs-tsm. */
const GUEST_DEVICES = [
  { file: "sev-guest", tee: "SEV-SNP", config: "CONFIG_SEV_GUEST" },
  { file: "tdx_guest", tee: "TDX", config: "CONFIG_TDX_GUEST_DRIVER" },
] as const;

export type TeeGuestInterface = { kind: "configfs-tsm"; reportRoot: string };

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/**
 * Picks configfs-tsm when its report directory exists; otherwise throws a TeeUnavailableError that says what
 * is missing: the kernel's configfs-tsm (even where a legacy /dev/sev-guest or /dev/tdx_guest exists: their
 * ioctls are not implemented here), or configfs not being mounted.
 */
export async function detectTeeGuestInterface(o: TeeGuestProbeOptions = {}): Promise<TeeGuestInterface> {
  const configRoot = o.configRoot ?? CONFIGFS_ROOT;
  const devDir = o.devDir ?? "/dev";
  const reportRoot = join(configRoot, "tsm", "report");
  if (await exists(reportRoot)) return { kind: "configfs-tsm", reportRoot };

  const devices = [];
  for (const d of GUEST_DEVICES) if (await exists(join(devDir, d.file))) devices.push(d);
  const mounted = (await readdir(configRoot).catch(() => [])).length > 0;
  const needs = `configfs-tsm (${reportRoot}: CONFIG_TSM_REPORTS, Linux >= 6.7, module tsm)`;
  if (devices.length > 0) {
    const [d] = devices;
    throw new TeeUnavailableError(
      `this is an ${d!.tee} guest (${join(devDir, d!.file)}, ${d!.config}) but its kernel has no ${needs}${mounted ? "" : ` or configfs is not mounted on ${configRoot}`}; the ${d!.file} ioctl is not implemented: boot a kernel with CONFIG_TSM_REPORTS (the provider image's bookworm-backports kernel has it)`,
      mounted ? "CONFIG_TSM_REPORTS" : "configfs",
    );
  }
  if (!mounted)
    throw new TeeUnavailableError(
      `no TEE guest report interface: configfs is not mounted on ${configRoot} (mount -t configfs configfs ${configRoot}), and there is no /dev/sev-guest or /dev/tdx_guest; attestation needs ${needs} in an SEV-SNP or TDX guest`,
      "configfs",
    );
  throw new TeeUnavailableError(
    `no TEE guest report interface: no ${needs}, and no /dev/sev-guest (CONFIG_SEV_GUEST) or /dev/tdx_guest (CONFIG_TDX_GUEST_DRIVER): this is not an SEV-SNP or TDX guest, or its kernel lacks them`,
    "CONFIG_TSM_REPORTS",
  );
}

/**
 * The attester for a TEE guest: at each request, picks the interface (detectTeeGuestInterface) and fetches the
 * report through it. configfs-tsm refuses to create a report (ENXIO) while no TEE driver has registered with
 * it, e.g. the `tsm` module loaded in a guest that is neither SEV-SNP nor TDX: that is a TeeUnavailableError too.
 */
export function teeGuestAttester(o: TeeGuestProbeOptions & Omit<ConfigfsTsmOptions, "root"> = {}): Attester {
  return {
    kind: "configfs-tsm",
    async attest(reportData) {
      const found = await detectTeeGuestInterface(o);
      try {
        return await configfsTsmAttester({ ...o, root: found.reportRoot }).attest(reportData);
      } catch (err) {
        if ((err as { cause?: { code?: string } }).cause?.code === "ENXIO")
          throw new TeeUnavailableError(
            `configfs-tsm is present (${found.reportRoot}) but no TEE guest driver has registered with it: load sev-guest (CONFIG_SEV_GUEST) in an SEV-SNP guest or tdx-guest (CONFIG_TDX_GUEST_DRIVER) in a TDX guest`,
            "tee-guest-driver",
          );
        throw err;
      }
    },
  };
}
