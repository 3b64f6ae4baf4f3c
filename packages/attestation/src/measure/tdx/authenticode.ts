// The Authenticode SHA-384 of a PE/COFF image as edk2 measures an EFI application before starting it
// (SecurityPkg Tcg2Dxe MeasureBootPeCoff.c, PE/COFF spec "Calculating the PE image hash"): the headers
// without CheckSum and the certificate-table directory entry, the sections in file order, then whatever
// trails them except the certificate table. A Linux kernel built with its EFI stub is such an image.
import { concat } from "../../bytes.js";
import { sha384 } from "../../crypto.js";
import { measureFail } from "../errors.js";

const PE32_PLUS_MAGIC = 0x20b;
const SECURITY_DIRECTORY = 4;
const SECTION_HEADER_SIZE = 40;

interface Range {
  start: number;
  end: number;
}

export async function authenticodeSha384(image: Uint8Array): Promise<Uint8Array> {
  return sha384(concat(...authenticodeRanges(image).map((r) => image.subarray(r.start, r.end))));
}

/** The byte ranges of the image that enter the hash, in hash order. */
export function authenticodeRanges(image: Uint8Array): Range[] {
  const { u16, u32 } = headerReader(image);

  if (image.length < 0x40 || image[0] !== 0x4d || image[1] !== 0x5a) notPe("it does not start with MZ");
  const pe = u32(0x3c);
  if (u32(pe) !== 0x0000_4550) notPe("the PE signature is missing");
  const coff = pe + 4;
  const sectionCount = u16(coff + 2);
  const optionalSize = u16(coff + 16);
  const optional = coff + 20;
  const plus = u16(optional) === PE32_PLUS_MAGIC;
  const checksum = optional + 64;
  const headersSize = u32(optional + 60);
  const directoryCount = u32(optional + (plus ? 108 : 92));
  const securityEntry = optional + (plus ? 112 : 96) + SECURITY_DIRECTORY * 8;
  if (headersSize > image.length) notPe(`SizeOfHeaders ${headersSize} exceeds the image`);

  const ranges: Range[] = [{ start: 0, end: checksum }];
  let certSize = 0;
  if (directoryCount <= SECURITY_DIRECTORY) {
    if (headersSize < checksum + 4) notPe("SizeOfHeaders ends inside the optional header");
    ranges.push({ start: checksum + 4, end: headersSize });
  } else {
    if (headersSize < securityEntry + 8) notPe("SizeOfHeaders ends inside the data directories");
    certSize = u32(securityEntry + 4);
    ranges.push({ start: checksum + 4, end: securityEntry }, { start: securityEntry + 8, end: headersSize });
  }

  let hashed = headersSize;
  for (const s of sectionsInFileOrder(image, u32, optional + optionalSize, sectionCount)) {
    ranges.push(s);
    hashed += s.end - s.start;
  }
  if (image.length > hashed) {
    if (image.length < hashed + certSize)
      notPe("the certificate table is larger than the data after the sections");
    ranges.push({ start: hashed, end: image.length - certSize });
  }
  return ranges;
}

function sectionsInFileOrder(
  image: Uint8Array,
  u32: (at: number) => number,
  table: number,
  count: number,
): Range[] {
  const sections: Range[] = [];
  for (let i = 0; i < count; i++) {
    const header = table + i * SECTION_HEADER_SIZE;
    const size = u32(header + 16);
    const start = u32(header + 20);
    if (size === 0) continue;
    if (start + size > image.length) notPe(`section ${i} extends past the end of the image`);
    sections.push({ start, end: start + size });
  }
  // edk2 sorts by PointerToRawData with a stable insertion sort; Array.prototype.sort is stable too.
  return sections.sort((a, b) => a.start - b.start);
}

/** Little-endian header fields, refused when they lie outside the image. */
function headerReader(image: Uint8Array) {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const inside = (at: number, size: number) => {
    if (at < 0 || at + size > image.length)
      notPe(`a header field at 0x${at.toString(16)} is outside the image`);
  };
  return {
    u16: (at: number) => {
      inside(at, 2);
      return view.getUint16(at, true);
    },
    u32: (at: number) => {
      inside(at, 4);
      return view.getUint32(at, true);
    },
  };
}

function notPe(why: string): never {
  measureFail("KERNEL_NOT_PE", `the kernel is not a PE/COFF image with an EFI stub: ${why}`);
}
