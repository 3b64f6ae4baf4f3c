// The TDX metadata of a TDVF (OVMF built with Intel TDX support): the descriptor the GUIDed footer table
// points to, listing the firmware sections the VMM copies into the TD before launch and which of them the
// TDX module measures into MRTD (TDVF design guide, "TDVF metadata"; edk2 OvmfPkg/ResetVector
// IntelTdxMetadata.asm; QEMU hw/i386/tdvf.c).
import { measureFail } from "../errors.js";
import { guidBytes } from "../snp/guid.js";
import { key, PAGE_SIZE, parseFooterTable } from "../snp/ovmf.js";

/** The footer table entry whose data is the descriptor's distance from the end of the image (u32). */
const TDX_METADATA_OFFSET_GUID = guidBytes("e47a6535-984a-4798-865e-4685a7bf8ec2");
const DESCRIPTOR_HEADER_SIZE = 16;
const SECTION_ENTRY_SIZE = 32;
const TDVF_SIGNATURE = [0x54, 0x44, 0x56, 0x46]; // "TDVF"
/** More than any real TDVF lists (6 to 8); bounds the work a corrupt count could ask for. */
const MAX_SECTIONS = 64;

export const TdvfSectionType = {
  BFV: 0,
  CFV: 1,
  TD_HOB: 2,
  TEMP_MEM: 3,
  PERM_MEM: 4,
  PAYLOAD: 5,
  PAYLOAD_PARAM: 6,
} as const;
export type TdvfSectionTypeName = keyof typeof TdvfSectionType;

/** Section attribute bits. */
export const TDVF_ATTR_MR_EXTEND = 0x1;
export const TDVF_ATTR_PAGE_AUG = 0x2;

export interface TdvfSection {
  type: TdvfSectionTypeName;
  /** Offset of the section's bytes in the firmware file (0 for memory the VMM only zeroes). */
  dataOffset: number;
  rawDataSize: number;
  /** Guest-physical address the section is loaded at. */
  gpa: number;
  memorySize: number;
  /** TDH.MEM.PAGE.ADD at build time (false: the guest accepts the pages later, TDVF_ATTR_PAGE_AUG). */
  pageAdd: boolean;
  /** TDH.MR.EXTEND of the section's contents into MRTD (TDVF_ATTR_MR_EXTEND). */
  extend: boolean;
}

/** Sections in descriptor order, which is the order QEMU adds them to the TD. */
export function parseTdvf(firmware: Uint8Array): TdvfSection[] {
  if (firmware.length === 0 || firmware.length % PAGE_SIZE !== 0) {
    measureFail(
      "OVMF_MALFORMED",
      `firmware size ${firmware.length} is not a non-zero multiple of 4096 bytes`,
    );
  }
  const entry = parseFooterTable(firmware).get(key(TDX_METADATA_OFFSET_GUID));
  if (entry === undefined) {
    measureFail(
      "TDVF_NO_METADATA",
      "the firmware has no TDX metadata: it is not a TDVF (OVMF built for TDX)",
    );
  }
  if (entry.length < 4)
    measureFail("OVMF_MALFORMED", "the TDX metadata offset entry is shorter than 4 bytes");
  const view = new DataView(firmware.buffer, firmware.byteOffset, firmware.byteLength);
  const fromEnd = new DataView(entry.buffer, entry.byteOffset, entry.byteLength).getUint32(
    entry.length - 4,
    true,
  );
  const start = firmware.length - fromEnd;
  if (fromEnd === 0 || fromEnd > firmware.length || start + DESCRIPTOR_HEADER_SIZE > firmware.length) {
    measureFail("OVMF_MALFORMED", `the TDX metadata offset ${fromEnd} lies outside the image`);
  }
  if (!TDVF_SIGNATURE.every((b, i) => firmware[start + i] === b)) {
    measureFail("OVMF_MALFORMED", "the TDX metadata does not start with the TDVF signature");
  }
  const version = view.getUint32(start + 8, true);
  const count = view.getUint32(start + 12, true);
  if (version !== 1) measureFail("OVMF_MALFORMED", `TDVF metadata version ${version} is not 1`);
  const tableEnd = start + DESCRIPTOR_HEADER_SIZE + count * SECTION_ENTRY_SIZE;
  if (count === 0 || count > MAX_SECTIONS || tableEnd > firmware.length) {
    measureFail("OVMF_MALFORMED", `TDVF metadata with ${count} sections does not fit the image`);
  }
  const sections: TdvfSection[] = [];
  for (let i = 0; i < count; i++) {
    sections.push(readSection(firmware, view, start + DESCRIPTOR_HEADER_SIZE + i * SECTION_ENTRY_SIZE, i));
  }
  return sections;
}

function readSection(firmware: Uint8Array, view: DataView, at: number, index: number): TdvfSection {
  const typeCode = view.getUint32(at + 24, true);
  const type = (Object.keys(TdvfSectionType) as TdvfSectionTypeName[]).find(
    (k) => TdvfSectionType[k] === typeCode,
  );
  if (!type) measureFail("OVMF_UNKNOWN_SECTION", `TDVF section ${index} has unknown type ${typeCode}`);
  const attributes = view.getUint32(at + 28, true);
  const section: TdvfSection = {
    type,
    dataOffset: view.getUint32(at, true),
    rawDataSize: view.getUint32(at + 4, true),
    gpa: safeU64(view, at + 8, `TDVF section ${index} address`),
    memorySize: safeU64(view, at + 16, `TDVF section ${index} size`),
    pageAdd: (attributes & TDVF_ATTR_PAGE_AUG) === 0,
    extend: (attributes & TDVF_ATTR_MR_EXTEND) !== 0,
  };
  checkSection(firmware, section, index);
  return section;
}

/** Guest addresses fit in 52 bits, well inside a double's exact range; larger values are corrupt. */
function safeU64(view: DataView, at: number, what: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    measureFail("OVMF_MALFORMED", `${what} 0x${v.toString(16)} is too large`);
  return Number(v);
}

function checkSection(firmware: Uint8Array, s: TdvfSection, index: number): void {
  const where = `TDVF section ${index} (${s.type} at 0x${s.gpa.toString(16)} size 0x${s.memorySize.toString(16)})`;
  // The TDX module adds and measures whole pages.
  if (s.gpa % PAGE_SIZE !== 0 || s.memorySize % PAGE_SIZE !== 0 || s.memorySize === 0) {
    measureFail("OVMF_MALFORMED", `${where} is not a non-empty run of whole pages`);
  }
  if (s.rawDataSize > s.memorySize) measureFail("OVMF_MALFORMED", `${where} has more file data than memory`);
  if (s.dataOffset + s.rawDataSize > firmware.length) {
    measureFail(
      "OVMF_MALFORMED",
      `${where} has its data past the end of the ${firmware.length}-byte image (a split CODE/VARS file? TDX boots the unified OVMF.fd)`,
    );
  }
  // A measured section whose memory is only partly backed by the file would measure QEMU's zero fill;
  // no TDVF build does that, and the reference implementations refuse it too.
  if (s.extend && s.rawDataSize !== s.memorySize) {
    measureFail("OVMF_MALFORMED", `${where} is measured but only partly backed by file data`);
  }
}
