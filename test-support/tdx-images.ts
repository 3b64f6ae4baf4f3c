// Small TDVF and PE images for the TDX measurement tests (also used by the CLI's): a TDVF with a TDX
// metadata descriptor and GUIDed footer table, and a PE32+ with sections out of file order and a
// certificate table. The layouts are those of aleph-vm's synthetic images, whose digests it pins.
export const GUID = {
  footer: "96b582de-1fb2-45f7-baea-a366c55a082d",
  tdxMetadataOffset: "e47a6535-984a-4798-865e-4685a7bf8ec2",
  snpMetadata: "dc886566-984a-4798-a75e-5585a7bf67cc",
};

/** EFI byte order: the first three fields little-endian. */
export function guid(text: string): Uint8Array {
  const h = Buffer.from(text.replace(/-/g, ""), "hex");
  return Uint8Array.from([h[3]!, h[2]!, h[1]!, h[0]!, h[5]!, h[4]!, h[7]!, h[6]!, ...h.subarray(8)]);
}

export interface SectionSpec {
  dataOffset: number;
  rawSize: number;
  gpa: number;
  memSize: number;
  type: number;
  attributes: number;
}

export interface TdvfSpec {
  size: number;
  /** Byte i of the image before the structures are written. */
  fill: (i: number) => number;
  descriptorAt: number;
  sections: SectionSpec[];
  /** Footer table entries (GUID, data) in file order; the TDX entry is added where `tdxEntryAt` says. */
  extraEntries: [string, Uint8Array][];
  tdxEntryAt?: number;
  version?: number;
}

export function buildTdvf(spec: TdvfSpec): Uint8Array {
  const fw = Uint8Array.from({ length: spec.size }, (_, i) => spec.fill(i));
  const view = new DataView(fw.buffer);
  const d = spec.descriptorAt;
  fw.set([0x54, 0x44, 0x56, 0x46], d);
  view.setUint32(d + 4, 16 + 32 * spec.sections.length, true);
  view.setUint32(d + 8, spec.version ?? 1, true);
  view.setUint32(d + 12, spec.sections.length, true);
  spec.sections.forEach((s, i) => {
    const at = d + 16 + 32 * i;
    view.setUint32(at, s.dataOffset, true);
    view.setUint32(at + 4, s.rawSize, true);
    view.setBigUint64(at + 8, BigInt(s.gpa), true);
    view.setBigUint64(at + 16, BigInt(s.memSize), true);
    view.setUint32(at + 24, s.type, true);
    view.setUint32(at + 28, s.attributes, true);
  });
  const entries: [string, Uint8Array][] = [...spec.extraEntries];
  if (spec.tdxEntryAt !== undefined) {
    const offset = new Uint8Array(4);
    new DataView(offset.buffer).setUint32(0, spec.size - d, true);
    entries.splice(spec.tdxEntryAt, 0, [GUID.tdxMetadataOffset, offset]);
  }
  // Each entry is its data, then its total size (u16) and GUID; the footer entry closes the table 32 bytes
  // before the end of the image.
  const table = entries.flatMap(([g, data]) => [data, u16(data.length + 18), guid(g)]);
  const tableSize = table.reduce((n, p) => n + p.length, 0);
  const tail = Buffer.concat([...table, u16(tableSize + 18), guid(GUID.footer), new Uint8Array(32)]);
  fw.set(tail, spec.size - tail.length);
  return fw;
}

export const u16 = (n: number) => Uint8Array.of(n & 0xff, n >> 8);

/** The layout of aleph-vm's synthetic TDVF: measured BFV and CFV pages, a TD_HOB and a PAGE.AUG section. */
export const ALEPH_LAYOUT: TdvfSpec = {
  size: 0x3000,
  fill: (i) => (i * 13 + 5) & 0xff,
  descriptorAt: 0x2000,
  sections: [
    { dataOffset: 0x0000, rawSize: 0x1000, gpa: 0xffff_f000, memSize: 0x1000, type: 0, attributes: 1 },
    { dataOffset: 0x1000, rawSize: 0x1000, gpa: 0xffff_e000, memSize: 0x1000, type: 1, attributes: 1 },
    { dataOffset: 0, rawSize: 0, gpa: 0x80_9000, memSize: 0x2000, type: 2, attributes: 0 },
    { dataOffset: 0, rawSize: 0, gpa: 0x80_b000, memSize: 0x1000, type: 3, attributes: 2 },
  ],
  extraEntries: [
    ["11111111-1111-1111-1111-111111111111", new TextEncoder().encode("unrelated")],
    ["22222222-2222-2222-2222-222222222222", new Uint8Array(4).fill(0xab)],
  ],
  tdxEntryAt: 1,
};

export const withSections = (f: (s: SectionSpec[]) => void): TdvfSpec => {
  const sections = ALEPH_LAYOUT.sections.map((s) => ({ ...s }));
  f(sections);
  return { ...ALEPH_LAYOUT, sections };
};

/** A PE32+ like aleph-vm's: two sections listed out of file order, trailing data, a certificate table. */
export function buildPe(directories = 16, certSize = 0x20): Uint8Array {
  const pe = Uint8Array.from({ length: 0x440 }, (_, i) => (i * 7 + 3) & 0xff);
  const v = new DataView(pe.buffer);
  pe.fill(0, 0, 64);
  pe.set([0x4d, 0x5a]);
  v.setUint32(0x3c, 0x40, true);
  pe.set([0x50, 0x45, 0, 0], 0x40);
  const coff = 0x44;
  const opt = coff + 20;
  const table = opt + 240;
  pe.fill(0, coff, table + 80);
  v.setUint16(coff, 0x8664, true);
  v.setUint16(coff + 2, 2, true);
  v.setUint16(coff + 16, 240, true);
  v.setUint16(opt, 0x20b, true);
  v.setUint32(opt + 60, 0x200, true); // SizeOfHeaders
  v.setUint32(opt + 64, 0x12345678, true); // CheckSum, not hashed
  v.setUint32(opt + 108, directories, true);
  v.setUint32(opt + 112 + 32, 0x420, true); // certificate table: offset
  v.setUint32(opt + 112 + 36, certSize, true); // and size
  [
    [".text", 0x300],
    [".data", 0x200],
  ].forEach(([name, at], i) => {
    pe.set(new TextEncoder().encode(name as string), table + 40 * i);
    v.setUint32(table + 40 * i + 16, 0x100, true);
    v.setUint32(table + 40 * i + 20, at as number, true);
  });
  return pe;
}
