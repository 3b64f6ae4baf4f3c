// TDX measurement: MRTD from a TDVF, RTMR1/RTMR2 of a direct boot. The ungated tests build small TDVF and
// PE images here and compare with values from an independent implementation (measure-tdx-vectors.ts); the
// real Debian firmware and kernel are looked up in TDX_TESTDATA and skipped, with a message, when absent.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import {
  bytes,
  describeWithSamples,
  INTEL_SAMPLES,
  text,
} from "../../../test-support/attestation-samples.js";
import {
  ALEPH_LAYOUT,
  buildPe,
  buildTdvf,
  GUID,
  type SectionSpec,
  type TdvfSpec,
  u16,
  withSections,
} from "../../../test-support/tdx-images.js";
import {
  FIRMWARE_VECTORS,
  type FirmwareVector,
  HARDWARE_RTMR2,
  KERNEL_VECTOR,
  SYNTHETIC,
} from "../../../test-support/tdx-measure-vectors.js";
import {
  AttestationError,
  applyPolicy,
  authenticodeSha384,
  loadOptions,
  MeasureError,
  measureTdx,
  parsePolicyText,
  parseTdvf,
  replayRtmr,
  rtmr2Events,
  type TdxPageOrder,
  toHex,
  verifyIntelQuote,
} from "../src/index.js";
import { optionalFile, sha256Hex } from "./measure-fixtures.js";

/** Where the gated tests find the Debian firmware and kernel (docs/measure.md, "TDX measurement"). */
const TDX_TESTDATA = resolve(
  process.env.TPOD_TDX_TESTDATA ?? resolve(import.meta.dirname, "../../../.tpod-test/tdx"),
);

/**
 * MRTD re-derived from the TDX module ABI's description with an incremental hash, independent of the
 * buffer-then-hash code under test: 128-byte records (name at 0, GPA at 16), 256-byte chunks after each
 * MR.EXTEND record.
 */
function mrtdBySpec(fw: Uint8Array, spec: TdvfSpec, order: TdxPageOrder): string {
  const h = createHash("sha384");
  const record = (name: string, gpa: number) => {
    const r = Buffer.alloc(128);
    r.write(name, 0, "ascii");
    r.writeBigUInt64LE(BigInt(gpa), 16);
    h.update(r);
  };
  const add = (s: SectionSpec, p: number) => {
    if (!(s.attributes & 2)) record("MEM.PAGE.ADD", s.gpa + p * 4096);
  };
  const extend = (s: SectionSpec, p: number) => {
    if (!(s.attributes & 1)) return;
    for (let c = 0; c < 16; c++) {
      record("MR.EXTEND", s.gpa + p * 4096 + c * 256);
      const at = s.dataOffset + p * 4096 + c * 256;
      h.update(fw.subarray(at, at + 256));
    }
  };
  for (const s of spec.sections) {
    const pages = s.memSize / 4096;
    if (order === "per-page") {
      for (let p = 0; p < pages; p++) {
        add(s, p);
        extend(s, p);
      }
    } else {
      for (let p = 0; p < pages; p++) add(s, p);
      for (let p = 0; p < pages; p++) extend(s, p);
    }
  }
  return h.digest("hex");
}

async function measureError(p: Promise<unknown>): Promise<MeasureError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MeasureError);
  return err as MeasureError;
}

const mrtdOf = async (fw: Uint8Array, pageOrder?: TdxPageOrder) =>
  toHex((await measureTdx({ firmware: fw, ...(pageOrder ? { pageOrder } : {}) })).mrtd);

// --- tests -------------------------------------------------------------------------------------------

describe("TDVF metadata", () => {
  it("lists the sections the footer table's TDX entry points to, in descriptor order", () => {
    const sections = parseTdvf(buildTdvf(ALEPH_LAYOUT));
    expect(sections.map((s) => [s.type, s.gpa, s.memorySize, s.pageAdd, s.extend])).toEqual([
      ["BFV", 0xffff_f000, 0x1000, true, true],
      ["CFV", 0xffff_e000, 0x1000, true, true],
      ["TD_HOB", 0x80_9000, 0x2000, true, false],
      ["TEMP_MEM", 0x80_b000, 0x1000, false, false],
    ]);
  });

  it("refuses firmware without TDX metadata: no footer table, or a footer table without the TDX entry", async () => {
    expect((await measureError(measureTdx({ firmware: new Uint8Array(0x3000) }))).code).toBe(
      "TDVF_NO_METADATA",
    );
    const snpOnly = buildTdvf({
      ...ALEPH_LAYOUT,
      tdxEntryAt: undefined,
      extraEntries: [[GUID.snpMetadata, u16(0)]],
    });
    const err = await measureError(measureTdx({ firmware: snpOnly }));
    expect(err.code).toBe("TDVF_NO_METADATA");
    expect(err.message).toMatch(/not a TDVF/);
  });

  it("refuses corrupt metadata with OVMF_MALFORMED or OVMF_UNKNOWN_SECTION, naming the section", async () => {
    const cases: [string, Uint8Array, string, RegExp][] = [
      ["truncated image", buildTdvf(ALEPH_LAYOUT).subarray(0, 0x2ff0), "OVMF_MALFORMED", /multiple of 4096/],
      ["version 2", buildTdvf({ ...ALEPH_LAYOUT, version: 2 }), "OVMF_MALFORMED", /version 2/],
      [
        "unaligned section",
        buildTdvf(withSections((s) => (s[2]!.gpa = 0x80_9100))),
        "OVMF_MALFORMED",
        /section 2 \(TD_HOB.*whole pages/,
      ],
      [
        "section data past the end",
        buildTdvf(withSections((s) => (s[1]!.dataOffset = 0x2800))),
        "OVMF_MALFORMED",
        /section 1 \(CFV.*past the end/,
      ],
      [
        "measured section partly backed by the file",
        buildTdvf(withSections((s) => (s[0]!.memSize = 0x2000))),
        "OVMF_MALFORMED",
        /partly backed/,
      ],
      ["unknown type", buildTdvf(withSections((s) => (s[3]!.type = 9))), "OVMF_UNKNOWN_SECTION", /type 9/],
    ];
    for (const [name, fw, code, message] of cases) {
      const err = await measureError(measureTdx({ firmware: fw }));
      expect([name, err.code]).toEqual([name, code]);
      expect(err.message).toMatch(message);
    }
    const badSignature = buildTdvf(ALEPH_LAYOUT);
    badSignature.set([0x58, 0x58, 0x58, 0x58], ALEPH_LAYOUT.descriptorAt);
    expect((await measureError(measureTdx({ firmware: badSignature }))).message).toMatch(/TDVF signature/);
  });
});

describe("MRTD", () => {
  const fw = buildTdvf(ALEPH_LAYOUT);

  it("equals aleph-vm's pinned MRTD of the same image and the ABI's record sequence", async () => {
    expect(await mrtdOf(fw)).toBe(SYNTHETIC.alephTdvfMrtd);
    expect(mrtdBySpec(fw, ALEPH_LAYOUT, "per-page")).toBe(SYNTHETIC.alephTdvfMrtd);
  });

  it("per-section order (older TDX hosts) is the ABI's records in that order, and differs with multi-page sections", async () => {
    // One page per measured section: both orders issue the same sequence.
    expect(await mrtdOf(fw, "per-section")).toBe(SYNTHETIC.alephTdvfMrtd);
    const twoPageBfv: TdvfSpec = {
      ...ALEPH_LAYOUT,
      size: 0x4000,
      descriptorAt: 0x3000,
      sections: [
        { dataOffset: 0x0000, rawSize: 0x2000, gpa: 0xffff_e000, memSize: 0x2000, type: 0, attributes: 1 },
        { dataOffset: 0x2000, rawSize: 0x1000, gpa: 0xffff_d000, memSize: 0x1000, type: 1, attributes: 1 },
        ...ALEPH_LAYOUT.sections.slice(2),
      ],
    };
    const twoPageFw = buildTdvf(twoPageBfv);
    const perPage = await mrtdOf(twoPageFw, "per-page");
    const perSection = await mrtdOf(twoPageFw, "per-section");
    expect(perSection).not.toBe(perPage);
    expect(perPage).toBe(mrtdBySpec(twoPageFw, twoPageBfv, "per-page"));
    expect(perSection).toBe(mrtdBySpec(twoPageFw, twoPageBfv, "per-section"));
  });

  it("covers every measured byte and every added page's address, and nothing else", async () => {
    const flipped = (offset: number, mask = 1) => {
      const copy = Uint8Array.from(fw);
      copy[offset]! ^= mask;
      return copy;
    };
    const entry = (i: number, field: number) => ALEPH_LAYOUT.descriptorAt + 16 + 32 * i + field;
    expect(await mrtdOf(flipped(0x123))).not.toBe(SYNTHETIC.alephTdvfMrtd); // BFV byte
    expect(await mrtdOf(flipped(0x1fff))).not.toBe(SYNTHETIC.alephTdvfMrtd); // last CFV byte
    expect(await mrtdOf(flipped(0x2800))).toBe(SYNTHETIC.alephTdvfMrtd); // unmeasured page
    expect(await mrtdOf(flipped(entry(2, 9), 0x10))).not.toBe(SYNTHETIC.alephTdvfMrtd); // TD_HOB address
    expect(await mrtdOf(flipped(entry(3, 9), 0x10))).toBe(SYNTHETIC.alephTdvfMrtd); // PAGE.AUG section
  });

  it("refuses an unknown page order", async () => {
    const err = await measureError(measureTdx({ firmware: fw, pageOrder: "sideways" as TdxPageOrder }));
    expect(err.code).toBe("INVALID_ARGUMENT");
  });
});

describe("RTMR1 and RTMR2 of a direct boot", () => {
  it("hashes the kernel as Authenticode: aleph-vm's pinned PE digests", async () => {
    expect(toHex(await authenticodeSha384(buildPe()))).toBe(SYNTHETIC.alephPeAuthenticode);
    expect(toHex(await authenticodeSha384(buildPe(4)))).toBe(SYNTHETIC.alephPe4DirsAuthenticode);
  });

  it("refuses a kernel that is not a PE image with KERNEL_NOT_PE", async () => {
    const notPe = async (image: Uint8Array) => (await measureError(authenticodeSha384(image))).message;
    expect(await notPe(new TextEncoder().encode("#!/bin/sh\n"))).toMatch(/MZ/);
    const noSignature = buildPe();
    noSignature[0x40] = 0x58;
    expect(await notPe(noSignature)).toMatch(/PE signature/);
    expect(await notPe(buildPe(16, 0x41))).toMatch(/certificate table/);
    const sectionPastEnd = buildPe();
    new DataView(sectionPastEnd.buffer).setUint32(0x58 + 240 + 20, 0x400, true);
    expect(await notPe(sectionPastEnd)).toMatch(/section 0 extends past/);
  });

  it("replays the kernel, command line and initrd events (oracle values)", async () => {
    const m = await measureTdx({
      firmware: buildTdvf(ALEPH_LAYOUT),
      boot: { kernel: buildPe(), initrd: new TextEncoder().encode("initrd"), append: "console=ttyS0" },
    });
    expect(toHex(m.mrtd)).toBe(SYNTHETIC.alephTdvfMrtd);
    expect(toHex(m.rtmr1!.value)).toBe(SYNTHETIC.alephPeRtmr1);
    expect(toHex(m.rtmr1!.events[0]!)).toBe(SYNTHETIC.alephPeAuthenticode);
    expect(m.rtmr1!.events).toHaveLength(5);
    expect(toHex(m.rtmr2!.value)).toBe(SYNTHETIC.rtmr2ConsoleInitrd);
    const empty = await replayRtmr(await rtmr2Events({ initrd: new TextEncoder().encode("initrd") }));
    expect(toHex(empty)).toBe(SYNTHETIC.rtmr2EmptyAppendInitrd);
  });

  it("reproduces the RTMR2 aleph-vm read from a TDX guest, from its LoadOptions and initrd digests", async () => {
    const options = loadOptions({ initrd: new Uint8Array(), append: HARDWARE_RTMR2.append });
    expect(createHash("sha384").update(options).digest("hex")).toBe(HARDWARE_RTMR2.loadOptionsDigest);
    const rtmr2 = await replayRtmr([
      Buffer.from(HARDWARE_RTMR2.loadOptionsDigest, "hex"),
      Buffer.from(HARDWARE_RTMR2.initrdSha384, "hex"),
    ]);
    expect(toHex(rtmr2)).toBe(HARDWARE_RTMR2.rtmr2);
  });

  it("measures the command line without the initrd prefix when there is no initrd", () => {
    const text = (b: Uint8Array) => Buffer.from(b).toString("utf16le");
    expect(text(loadOptions({ append: "quiet" }))).toBe("quiet\0");
    expect(text(loadOptions({ initrd: new Uint8Array(), append: "quiet" }))).toBe("initrd=initrd quiet\0");
  });

  it("refuses a non-ASCII command line rather than guess how the firmware widens it", async () => {
    const err = await measureError(rtmr2Events({ append: "root=/dev/vda café" }));
    expect(err.code).toBe("INVALID_ARGUMENT");
  });
});

describeWithSamples("a pinned MRTD against real TDX evidence", () => {
  it("refuses a genuine quote whose MRTD is not the measured firmware's; accepts its own", async () => {
    const t = INTEL_SAMPLES.find((s) => s.tee === "tdx" && s.collateral)!;
    const ev = await verifyIntelQuote(bytes(t.quote), text(t.collateral!), { now: new Date(t.now) });
    const measured = await mrtdOf(buildTdvf(ALEPH_LAYOUT));
    const policy = parsePolicyText(`tdx:\n  mrtd: ["${measured}"]\n`);
    const err = (() => {
      try {
        applyPolicy(ev, policy);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(AttestationError);
    expect((err as AttestationError).code).toBe("POLICY_VIOLATION");
    expect((err as AttestationError).field).toBe("policy.tdx.mrtd");
    applyPolicy(ev, parsePolicyText(`tdx:\n  mrtd: ["${toHex(ev.quote!.td!.mrTd)}"]\n`));
  });
});

// --- real Debian firmware and kernel (gated) ----------------------------------------------------------

function testFile(name: string, sha256: string, systemPath?: string) {
  const inCache = resolve(TDX_TESTDATA, name);
  const path = existsSync(inCache) || !systemPath ? inCache : systemPath;
  return optionalFile(path, sha256);
}

function firmwareFile(v: FirmwareVector) {
  // Debian bookworm's own ovmf package installs the 2022.11 file; use it where the cache lacks it.
  return testFile(v.file, v.sha256, v.file.includes("deb12") ? "/usr/share/ovmf/OVMF.fd" : undefined);
}

describe("MRTD of Debian's OVMF builds (oracle values)", () => {
  for (const v of FIRMWARE_VECTORS) {
    const f = firmwareFile(v);
    if (f.skip) console.warn(`SKIP: ${v.source}: ${f.skip}`);
    it.skipIf(!f.data)(`${v.source}`, async () => {
      expect(sha256Hex(f.data!)).toBe(v.sha256);
      expect(await mrtdOf(f.data!)).toBe(v.mrtd);
    });
  }

  const trixie = firmwareFile(FIRMWARE_VECTORS[0]!);
  it.skipIf(!trixie.data)(
    "refuses the CODE half of a split image (QEMU boots TDX from the unified file)",
    async () => {
      // OVMF_CODE_4M.fd is OVMF.fd without its first 0x84000 bytes (the variable store).
      const err = await measureError(measureTdx({ firmware: trixie.data!.subarray(0x84000) }));
      expect(err.code).toBe("OVMF_MALFORMED");
      expect(err.message).toMatch(/split CODE\/VARS/);
    },
  );
});

describe("RTMR1 of Debian's cloud kernel (oracle value)", () => {
  const k = testFile(KERNEL_VECTOR.file, KERNEL_VECTOR.sha256);
  if (k.skip) console.warn(`SKIP: Debian kernel: ${k.skip}`);
  it.skipIf(!k.data)(KERNEL_VECTOR.file, async () => {
    expect(toHex(await authenticodeSha384(k.data!))).toBe(KERNEL_VECTOR.authenticode);
    const events = [await authenticodeSha384(k.data!)];
    const m = await measureTdx({ firmware: buildTdvf(ALEPH_LAYOUT), boot: { kernel: k.data! } });
    expect(m.rtmr1!.events[0]).toEqual(events[0]);
    expect(toHex(m.rtmr1!.value)).toBe(KERNEL_VECTOR.rtmr1);
  });
});
