// Expected TDX measurement registers of a QEMU guest booted from a TDVF: MRTD from the firmware image
// alone, and for a direct kernel boot RTMR1 and RTMR2. RTMR0 (TD HOB, firmware configuration volume,
// QEMU's ACPI tables, boot variables) depends on the VM's memory size, devices and QEMU version and is not
// computed here.
import { measureFail } from "../errors.js";
import type { DirectBoot } from "../snp/kernel-hashes.js";
import { computeMrtd, TDX_PAGE_ORDERS, type TdxPageOrder } from "./mrtd.js";
import { replayRtmr, rtmr1Events, rtmr2Events } from "./rtmr.js";
import { parseTdvf, type TdvfSection } from "./tdvf.js";

export interface TdxMeasureOptions {
  /** The unified TDVF image QEMU is given with -bios (OVMF.fd, not a split CODE/VARS pair). */
  firmware: Uint8Array;
  /** The host's SEAMCALL order; "per-page" (upstream KVM and QEMU) unless the host runs an older TDX stack. */
  pageOrder?: TdxPageOrder;
  /** Direct kernel boot: adds RTMR1 (kernel) and RTMR2 (command line and initrd). */
  boot?: DirectBoot;
}

export interface TdxMeasurement {
  mrtd: Uint8Array;
  pageOrder: TdxPageOrder;
  /** The TDVF sections MRTD was computed from, in the order they were added. */
  sections: TdvfSection[];
  /** Present with a direct boot: the register and the event digests replayed into it. */
  rtmr1?: { value: Uint8Array; events: Uint8Array[] };
  rtmr2?: { value: Uint8Array; events: Uint8Array[] };
}

export async function measureTdx(opts: TdxMeasureOptions): Promise<TdxMeasurement> {
  const pageOrder = opts.pageOrder ?? "per-page";
  if (!TDX_PAGE_ORDERS.includes(pageOrder)) {
    measureFail(
      "INVALID_ARGUMENT",
      `page order must be one of ${TDX_PAGE_ORDERS.join(", ")}, got ${pageOrder}`,
    );
  }
  const sections = parseTdvf(opts.firmware);
  const m: TdxMeasurement = {
    mrtd: await computeMrtd(opts.firmware, sections, pageOrder),
    pageOrder,
    sections,
  };
  if (opts.boot) {
    const events1 = await rtmr1Events(opts.boot.kernel);
    const events2 = await rtmr2Events(opts.boot);
    m.rtmr1 = { value: await replayRtmr(events1), events: events1 };
    m.rtmr2 = { value: await replayRtmr(events2), events: events2 };
  }
  return m;
}
