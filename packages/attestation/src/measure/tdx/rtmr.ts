// RTMR1 and RTMR2 of a QEMU direct kernel boot (-kernel/-initrd/-append) under a TDVF: the event digests
// the firmware and the kernel's EFI stub extend, replayed as the TDX module does for TDG.MR.RTMR.EXTEND
// (RTMR = SHA-384(RTMR || digest), starting from zeros). The event layout is the one of a recent edk2 TDVF
// whose QEMU loader starts the kernel's EFI stub on the unmodified image and prefixes "initrd=initrd " to the
// command line when there is an initrd (GenericQemuLoadImageLib); older loaders hash a kernel QEMU patched and
// append the initrd token instead. docs/measure.md ("TDX measurement") says what this covers and what not.
import { concat } from "../../bytes.js";
import { sha384 } from "../../crypto.js";
import { measureFail } from "../errors.js";
import type { DirectBoot } from "../snp/kernel-hashes.js";
import { authenticodeSha384 } from "./authenticode.js";

export const RTMR_SIZE = 48;

/** The edk2 events that follow the kernel image in RTMR1 (PCR 4 and PCR 5 events mapped to RTMR[1]). */
const RTMR1_BOOT_EVENTS = [
  "Calling EFI Application from Boot Option",
  "\0\0\0\0", // the separator event
  "Exit Boot Services Invocation",
  "Exit Boot Services Returned with Success",
].map((s) => new TextEncoder().encode(s));

/** What edk2's QEMU loader puts in front of the command line when QEMU was given an initrd. */
export const TDVF_INITRD_PREFIX = "initrd=initrd ";

export async function replayRtmr(digests: readonly Uint8Array[]): Promise<Uint8Array> {
  let rtmr: Uint8Array = new Uint8Array(RTMR_SIZE);
  for (const d of digests) {
    if (d.length !== RTMR_SIZE) throw new RangeError(`an RTMR event digest is ${RTMR_SIZE} bytes`);
    rtmr = await sha384(concat(rtmr, d));
  }
  return rtmr;
}

/** RTMR1's event digests: the kernel's Authenticode hash, then the boot-service events. */
export async function rtmr1Events(kernel: Uint8Array): Promise<Uint8Array[]> {
  return [await authenticodeSha384(kernel), ...(await Promise.all(RTMR1_BOOT_EVENTS.map((e) => sha384(e))))];
}

/**
 * The kernel's LoadOptions as the firmware hands them to the EFI stub: UTF-16LE, NUL-terminated. The
 * firmware widens QEMU's command line byte by byte; only ASCII is accepted here, where that is certain.
 */
export function loadOptions(boot: Pick<DirectBoot, "initrd" | "append">): Uint8Array {
  if (!/^[\x01-\x7f]*$/.test(boot.append ?? "")) {
    measureFail(
      "INVALID_ARGUMENT",
      "the kernel command line must be ASCII (without NUL) to be measured for TDX",
    );
  }
  const text = `${boot.initrd !== undefined ? TDVF_INITRD_PREFIX : ""}${boot.append ?? ""}\0`;
  const out = new Uint8Array(text.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < text.length; i++) view.setUint16(2 * i, text.charCodeAt(i), true);
  return out;
}

/** RTMR2's event digests, as the Linux EFI stub extends them: its LoadOptions, then the initrd it loaded. */
export async function rtmr2Events(boot: Pick<DirectBoot, "initrd" | "append">): Promise<Uint8Array[]> {
  const events = [await sha384(loadOptions(boot))];
  if (boot.initrd !== undefined) events.push(await sha384(boot.initrd));
  return events;
}
