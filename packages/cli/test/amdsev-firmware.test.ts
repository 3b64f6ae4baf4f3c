// The firmware build-amdsev-ovmf.sh makes, measured with the provider image (gated: TPOD_AMDSEV_OVMF=the built
// OVMF.amdsev.fd, TPOD_VM_IMAGE=a built image directory; the firmware build takes about half an hour here).
// Checks that the build is the one amdsev-ovmf.lock pins (so the committed 4 KiB suffix and pages digest that
// the ungated packages/provider-image/test/firmware.test.ts uses stand for it), that its SEV metadata has the
// kernel hashes page, and that `tpod provider image measure --ovmf` prints, for each configuration, exactly what
// `tpod measure snp` computes for a direct boot of the image's kernel, initrd and command line, run after run.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseOvmf, snpOvmfHash, toHex } from "@trustedpods/attestation";
import { readFirmwareLock } from "@trustedpods/provider-image";
import { describe, expect, it } from "vitest";
import { run } from "../src/main.js";

const OVMF = process.env.TPOD_AMDSEV_OVMF;
const IMAGE = process.env.TPOD_VM_IMAGE;
if (!OVMF || !IMAGE)
  console.warn(
    "SKIP: set TPOD_AMDSEV_OVMF=OVMF.amdsev.fd and TPOD_VM_IMAGE=DIR to measure the built firmware",
  );
const SUFFIX = path.resolve(
  import.meta.dirname,
  "../../provider-image/firmware/testdata/ovmf-amdsev-suffix.bin",
);

async function tpod(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe.skipIf(!OVMF || !IMAGE)("the AmdSev firmware build, measured with the provider image", () => {
  const ovmf = () => new Uint8Array(readFileSync(OVMF!));

  it("is the build amdsev-ovmf.lock pins, and the committed suffix is its last page", async () => {
    const fw = ovmf();
    const lock = readFirmwareLock();
    expect(createHash("sha256").update(fw).digest("hex")).toBe(lock.firmwareSha256);
    expect(toHex(await snpOvmfHash(fw))).toBe(lock.ovmfHash);
    expect(Buffer.from(fw.subarray(fw.length - 4096)).equals(readFileSync(SUFFIX))).toBe(true);
  });

  it("has SEV-SNP metadata with a kernel hashes page holding the hashes table", () => {
    const image = parseOvmf(ovmf());
    const hashes = image.sections?.find((s) => s.type === "SNP_KERNEL_HASHES");
    expect(hashes?.size).toBe(4096);
    expect(image.sevHashesTableGpa).toBeGreaterThanOrEqual(hashes!.gpa);
    expect(image.sevHashesTableGpa).toBeLessThan(hashes!.gpa + 4096);
  });

  it("tpod provider image measure --ovmf prints what tpod measure snp computes for the image's files, stably", async () => {
    const args = ["provider", "image", "measure", "--image", IMAGE!, "--ovmf", OVMF!, "--vcpus", "1,4"];
    const first = await tpod([...args, "--json"]);
    expect(first.code, first.err).toBe(0);
    const r = JSON.parse(first.out);
    expect(r.firmware.locked).toBe(true);
    expect(r.measurements).toHaveLength(6);
    const cmdline = readFileSync(path.join(IMAGE!, "cmdline"), "utf8").trim();
    expect(r.image.cmdline).toBe(cmdline);
    for (const m of r.measurements) {
      const snp = await tpod([
        ...["measure", "snp", "--ovmf", OVMF!, "--kernel", path.join(IMAGE!, "vmlinuz")],
        ...["--initrd", path.join(IMAGE!, "initrd.img"), "--append", cmdline],
        ...["--vcpus", String(m.vcpus), "--vcpu-type", m.vcpuType, "--json"],
      ]);
      expect(snp.code, snp.err).toBe(0);
      const j = JSON.parse(snp.out);
      expect(j.kernelHashes).toBe("measured");
      expect(j.digest).toBe(m.measurement);
    }
    const again = await tpod([...args, "--json"]);
    expect(JSON.parse(again.out).measurements).toEqual(r.measurements);
    const text = await tpod(args);
    expect(text.out).toContain("build amdsev-ovmf.lock pins");
    for (const m of r.measurements) expect(text.out).toContain(m.measurement);
  });
});
