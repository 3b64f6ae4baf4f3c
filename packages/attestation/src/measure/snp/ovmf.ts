// The parts of an OVMF image that decide an SEV guest's launch measurement: the GUIDed table at the end of
// the flash image (edk2 OvmfPkg/ResetVector) and the SEV metadata it points to (OvmfSevMetadata.asm).
import { equalBytes } from "../../bytes.js";
import { measureFail } from "../errors.js";
import { guidBytes } from "./guid.js";

export const PAGE_SIZE = 4096;
/** QEMU maps the firmware so that it ends at 4 GiB. */
const FOUR_GIB = 0x1_0000_0000;

const FOOTER_GUID = guidBytes("96b582de-1fb2-45f7-baea-a366c55a082d");
const SEV_HASH_TABLE_RV_GUID = guidBytes("7255371f-3a3b-4b04-927b-1da6efa8d454");
const SEV_ES_RESET_BLOCK_GUID = guidBytes("00f771de-1a7e-4fcb-890e-68c77e2fb44e");
const SEV_METADATA_GUID = guidBytes("dc886566-984a-4798-a75e-5585a7bf67cc");

/** Each table entry ends with its size (u16) and GUID; the table's own footer entry sits 32 bytes from the end. */
const ENTRY_HEADER_SIZE = 2 + 16;
const FOOTER_DISTANCE_FROM_END = 32;

/** The kinds of memory the SEV metadata asks the VMM to set up (and SNP to measure) before launch. */
export const SectionType = {
  SNP_SEC_MEM: 1,
  SNP_SECRETS: 2,
  CPUID: 3,
  SVSM_CAA: 4,
  SNP_KERNEL_HASHES: 0x10,
} as const;
export type SectionTypeName = keyof typeof SectionType;

export interface SnpSection {
  type: SectionTypeName;
  gpa: number;
  size: number;
}

export interface OvmfImage {
  data: Uint8Array;
  /** Guest-physical address of the first byte of the image. */
  gpa: number;
  /** The GUIDed footer table was found (the image was built with SEV support). */
  hasFooterTable: boolean;
  /** Where the application processors start under SEV-ES/SNP; undefined without an SEV-ES reset block. */
  sevEsResetEip?: number;
  /** Where QEMU writes the kernel hashes table; undefined or 0 when the firmware cannot check them. */
  sevHashesTableGpa?: number;
  /** SEV metadata sections in firmware order; undefined when the image has no SEV metadata. */
  sections?: SnpSection[];
}

export function parseOvmf(data: Uint8Array): OvmfImage {
  if (data.length === 0 || data.length % PAGE_SIZE !== 0) {
    measureFail("OVMF_MALFORMED", `OVMF image size ${data.length} is not a non-zero multiple of 4096 bytes`);
  }
  if (data.length > FOUR_GIB) measureFail("OVMF_MALFORMED", "OVMF image is larger than 4 GiB");
  const table = parseFooterTable(data);
  const word = (guid: Uint8Array): number | undefined => {
    const entry = table.get(key(guid));
    if (entry === undefined) return undefined;
    if (entry.length < 4) measureFail("OVMF_MALFORMED", "OVMF footer table entry is shorter than 4 bytes");
    return new DataView(entry.buffer, entry.byteOffset, entry.byteLength).getUint32(0, true);
  };
  const metadataOffset = word(SEV_METADATA_GUID);
  const image: OvmfImage = {
    data,
    gpa: FOUR_GIB - data.length,
    hasFooterTable: table.size > 0,
  };
  const resetEip = word(SEV_ES_RESET_BLOCK_GUID);
  if (resetEip !== undefined) image.sevEsResetEip = resetEip;
  const hashesGpa = word(SEV_HASH_TABLE_RV_GUID);
  if (hashesGpa !== undefined) image.sevHashesTableGpa = hashesGpa;
  if (metadataOffset !== undefined) image.sections = parseSevMetadata(data, metadataOffset);
  return image;
}

export const key = (guid: Uint8Array) => Array.from(guid, (b) => b.toString(16).padStart(2, "0")).join("");

/** Entries are laid out backwards from the footer: each one's size and GUID follow its data. */
export function parseFooterTable(data: Uint8Array): Map<string, Uint8Array> {
  const table = new Map<string, Uint8Array>();
  const footerStart = data.length - FOOTER_DISTANCE_FROM_END - ENTRY_HEADER_SIZE;
  if (footerStart < 0) return table;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (!equalBytes(data.subarray(footerStart + 2, footerStart + ENTRY_HEADER_SIZE), FOOTER_GUID)) return table;
  const tableSize = view.getUint16(footerStart, true) - ENTRY_HEADER_SIZE;
  if (tableSize < 0 || tableSize > footerStart) {
    measureFail("OVMF_MALFORMED", `OVMF footer table size ${tableSize} does not fit the image`);
  }
  let end = footerStart;
  const start = footerStart - tableSize;
  while (end - start >= ENTRY_HEADER_SIZE) {
    const header = end - ENTRY_HEADER_SIZE;
    const size = view.getUint16(header, true);
    if (size < ENTRY_HEADER_SIZE || size > end - start) {
      measureFail("OVMF_MALFORMED", `OVMF footer table entry at offset ${header} has invalid size ${size}`);
    }
    table.set(key(data.subarray(header + 2, end)), data.subarray(end - size, header));
    end -= size;
  }
  return table;
}

const METADATA_HEADER_SIZE = 16;
const METADATA_ITEM_SIZE = 12;
const ASEV = [0x41, 0x53, 0x45, 0x56];

function parseSevMetadata(data: Uint8Array, offsetFromEnd: number): SnpSection[] {
  const start = data.length - offsetFromEnd;
  if (offsetFromEnd > data.length || start + METADATA_HEADER_SIZE > data.length) {
    measureFail("OVMF_MALFORMED", `SEV metadata offset ${offsetFromEnd} lies outside the image`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (!ASEV.every((b, i) => data[start + i] === b)) {
    measureFail("OVMF_MALFORMED", "SEV metadata does not start with the ASEV signature");
  }
  const size = view.getUint32(start + 4, true);
  const version = view.getUint32(start + 8, true);
  const count = view.getUint32(start + 12, true);
  if (version !== 1) measureFail("OVMF_MALFORMED", `SEV metadata version ${version} is not 1`);
  if (start + size > data.length || METADATA_HEADER_SIZE + count * METADATA_ITEM_SIZE > size) {
    measureFail("OVMF_MALFORMED", `SEV metadata with ${count} sections does not fit its size ${size}`);
  }
  const sections: SnpSection[] = [];
  for (let i = 0; i < count; i++) {
    const at = start + METADATA_HEADER_SIZE + i * METADATA_ITEM_SIZE;
    sections.push(
      section(view.getUint32(at, true), view.getUint32(at + 4, true), view.getUint32(at + 8, true)),
    );
  }
  return sections;
}

function section(gpa: number, size: number, typeCode: number): SnpSection {
  const type = (Object.keys(SectionType) as SectionTypeName[]).find((k) => SectionType[k] === typeCode);
  if (!type) measureFail("OVMF_UNKNOWN_SECTION", `SEV metadata section type ${typeCode} is not known`);
  // The VMM launches whole pages; a section that is not page-aligned would not be measured as written.
  if (gpa % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0) {
    measureFail(
      "OVMF_MALFORMED",
      `SEV metadata section ${type} at 0x${gpa.toString(16)} size 0x${size.toString(16)} is not page-aligned`,
    );
  }
  return { type, gpa, size };
}
