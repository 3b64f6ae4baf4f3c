import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ALEPH_LAYOUT, buildPe, buildTdvf } from "../../../test-support/tdx-images.js";
import { FIRMWARE_VECTORS, SYNTHETIC } from "../../../test-support/tdx-measure-vectors.js";
import { run } from "../src/main.js";

const tmp = mkdtempSync(join(tmpdir(), "tpod-measure-tdx-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const firmware = join(tmp, "tdvf.fd");
writeFileSync(firmware, buildTdvf(ALEPH_LAYOUT));
const kernel = join(tmp, "kernel.efi");
writeFileSync(kernel, buildPe());
const initrd = join(tmp, "initrd");
writeFileSync(initrd, "initrd");

async function tpod(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(["measure", "tdx", ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join(""), err: err.join("") };
}

describe("tpod measure tdx", () => {
  it("prints the MRTD of a TDVF", async () => {
    const r = await tpod(["--firmware", firmware]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(`mrtd ${SYNTHETIC.alephTdvfMrtd}`);
    expect(r.err).toBe("");
  });

  it("with a direct boot adds RTMR1 and RTMR2, and says what is not computed", async () => {
    const r = await tpod([
      "--firmware",
      firmware,
      "--kernel",
      kernel,
      "--initrd",
      initrd,
      "--append",
      "console=ttyS0",
    ]);
    expect(r.code).toBe(0);
    expect(r.out.trim().split("\n")).toEqual([
      `mrtd ${SYNTHETIC.alephTdvfMrtd}`,
      `rtmr1 ${SYNTHETIC.alephPeRtmr1}`,
      `rtmr2 ${SYNTHETIC.rtmr2ConsoleInitrd}`,
    ]);
    expect(r.err).toMatch(/RTMR0 is not computed/);
  });

  it("--json gives the registers, the events and the sections", async () => {
    const r = await tpod(["--firmware", firmware, "--kernel", kernel, "--initrd", initrd, "--json"]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out);
    expect(body).toMatchObject({
      mrtd: SYNTHETIC.alephTdvfMrtd,
      rtmr2: SYNTHETIC.rtmr2EmptyAppendInitrd,
      pageOrder: "per-page",
    });
    expect(body.rtmr1Events[0]).toBe(SYNTHETIC.alephPeAuthenticode);
    expect(body.rtmr2Events).toHaveLength(2);
    expect(body.sections[2]).toEqual({
      type: "TD_HOB",
      gpa: "0x809000",
      size: "0x2000",
      pageAdd: true,
      extend: false,
    });
  });

  it("--page-order per-section is accepted (same value here: one page per measured section)", async () => {
    const r = await tpod(["--firmware", firmware, "--page-order", "per-section", "--json"]);
    expect(JSON.parse(r.out)).toMatchObject({ mrtd: SYNTHETIC.alephTdvfMrtd, pageOrder: "per-section" });
  });

  it("firmware without TDX metadata fails with exit 1 and the typed code", async () => {
    const plain = join(tmp, "plain.fd");
    writeFileSync(plain, new Uint8Array(8192));
    const r = await tpod(["--firmware", plain, "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ error: "TDVF_NO_METADATA" });
    expect(r.err).toContain("not a TDVF");
  });

  it("a kernel that is not a PE image fails with exit 1 and KERNEL_NOT_PE", async () => {
    const r = await tpod(["--firmware", firmware, "--kernel", initrd]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toContain("KERNEL_NOT_PE");
  });

  const usage: [string, string[], RegExp][] = [
    ["--initrd without --kernel", ["--initrd", "/dev/null"], /need --kernel/],
    ["unknown --page-order", ["--page-order", "random"], /per-page, per-section/],
    ["non-ASCII --append", ["--kernel", kernel, "--append", "café"], /ASCII/],
  ];
  it.each(usage)("usage error exit 2: %s", async (_name, args, message) => {
    const r = await tpod(["--firmware", firmware, ...args]);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toMatch(message);
  });

  it("a missing --firmware is a usage error, an unreadable one a failure", async () => {
    expect((await tpod([])).code).toBe(2);
    const r = await tpod(["--firmware", join(tmp, "absent.fd")]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("cannot be read");
  });
});

// Debian trixie's OVMF.fd where it has been put (docs/measure.md, "TDX measurement").
const trixie = FIRMWARE_VECTORS[0]!;
const trixiePath = resolve(
  process.env.TPOD_TDX_TESTDATA ?? resolve(import.meta.dirname, "../../../.tpod-test/tdx"),
  trixie.file,
);
if (!existsSync(trixiePath)) console.warn(`SKIP: ${trixiePath} absent (${trixie.source})`);
describe.skipIf(!existsSync(trixiePath))("tpod measure tdx on Debian's OVMF.fd", () => {
  it(`${trixie.source}: the oracle's MRTD`, async () => {
    const r = await tpod(["--firmware", trixiePath, "--json"]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out);
    expect(body.mrtd).toBe(trixie.mrtd);
    // Only the firmware code is measured content; the variable store goes to RTMR0 (docs/measure.md).
    const measured = body.sections.filter((s: { extend: boolean }) => s.extend);
    expect(measured.map((s: { type: string }) => s.type)).toEqual(["BFV"]);
    expect(body.sections.map((s: { type: string }) => s.type)).toEqual([
      "BFV",
      "CFV",
      "TEMP_MEM",
      "TEMP_MEM",
      "TD_HOB",
      "TEMP_MEM",
    ]);
  });
});
