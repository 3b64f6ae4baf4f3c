// MRTD: the running SHA-384 the TDX module keeps while the VMM builds the TD (Intel TDX module ABI spec,
// TDH.MEM.PAGE.ADD and TDH.MR.EXTEND). Each added page contributes a 128-byte record "MEM.PAGE.ADD" + GPA;
// each measured 256-byte chunk contributes "MR.EXTEND" + GPA followed by the chunk. MRTD is one hash over
// the whole sequence, so the records are laid out in one buffer and hashed once: WebCrypto has no
// incremental SHA-384, and this keeps the code browser-capable.
import { sha384 } from "../../crypto.js";
import { measureFail } from "../errors.js";
import { PAGE_SIZE } from "../snp/ovmf.js";
import type { TdvfSection } from "./tdvf.js";

const RECORD_SIZE = 128;
const CHUNK_SIZE = 256;
const CHUNKS_PER_PAGE = PAGE_SIZE / CHUNK_SIZE;
const PAGE_ADD = new TextEncoder().encode("MEM.PAGE.ADD");
const MR_EXTEND = new TextEncoder().encode("MR.EXTEND");
/** A TD image larger than this is not firmware; refuse rather than allocate gigabytes. */
const MAX_MEASURED_BYTES = 512 * 1024 * 1024;

/**
 * The order the VMM issues the SEAMCALLs in, which changes MRTD:
 * - "per-page": PAGE.ADD of a page, then its MR.EXTENDs, page by page (upstream Linux KVM since 6.16 with
 *   QEMU 10.1 and later: KVM_TDX_INIT_MEM_REGION measures each page as it adds it).
 * - "per-section": all PAGE.ADDs of a section, then all its MR.EXTENDs (older TDX host stacks, e.g. the
 *   KVM/QEMU patch sets Intel and Canonical shipped before TDX was upstream).
 */
export const TDX_PAGE_ORDERS = ["per-page", "per-section"] as const;
export type TdxPageOrder = (typeof TDX_PAGE_ORDERS)[number];

export async function computeMrtd(
  firmware: Uint8Array,
  sections: readonly TdvfSection[],
  order: TdxPageOrder = "per-page",
): Promise<Uint8Array> {
  if (!TDX_PAGE_ORDERS.includes(order)) measureFail("INVALID_ARGUMENT", `unknown TDX page order ${order}`);
  const log = new MeasurementLog(measuredBytes(sections));
  for (const s of sections) {
    const pages = s.memorySize / PAGE_SIZE;
    if (order === "per-page") {
      for (let p = 0; p < pages; p++) {
        if (s.pageAdd) log.pageAdd(s.gpa + p * PAGE_SIZE);
        if (s.extend) log.extendPage(s.gpa + p * PAGE_SIZE, firmware, s.dataOffset + p * PAGE_SIZE);
      }
    } else {
      if (s.pageAdd) for (let p = 0; p < pages; p++) log.pageAdd(s.gpa + p * PAGE_SIZE);
      if (s.extend) {
        for (let p = 0; p < pages; p++) {
          log.extendPage(s.gpa + p * PAGE_SIZE, firmware, s.dataOffset + p * PAGE_SIZE);
        }
      }
    }
  }
  return sha384(log.bytes());
}

function measuredBytes(sections: readonly TdvfSection[]): number {
  let total = 0;
  for (const s of sections) {
    const pages = s.memorySize / PAGE_SIZE;
    if (s.pageAdd) total += pages * RECORD_SIZE;
    if (s.extend) total += pages * CHUNKS_PER_PAGE * (RECORD_SIZE + CHUNK_SIZE);
  }
  if (total > MAX_MEASURED_BYTES) {
    measureFail(
      "OVMF_MALFORMED",
      `the TDVF sections would measure ${total} bytes; this is not a firmware image`,
    );
  }
  return total;
}

class MeasurementLog {
  private readonly buf: Uint8Array;
  private readonly view: DataView;
  private at = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  pageAdd(gpa: number): void {
    this.record(PAGE_ADD, gpa);
  }

  extendPage(gpa: number, firmware: Uint8Array, offset: number): void {
    for (let c = 0; c < CHUNKS_PER_PAGE; c++) {
      this.record(MR_EXTEND, gpa + c * CHUNK_SIZE);
      this.buf.set(firmware.subarray(offset + c * CHUNK_SIZE, offset + (c + 1) * CHUNK_SIZE), this.at);
      this.at += CHUNK_SIZE;
    }
  }

  /** The operation name at byte 0, the GPA (u64 LE) at byte 16, zeros to 128 (already zero). */
  private record(op: Uint8Array, gpa: number): void {
    this.buf.set(op, this.at);
    this.view.setBigUint64(this.at + 16, BigInt(gpa), true);
    this.at += RECORD_SIZE;
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }
}
