// tpod provider image measure through the CLI, on a synthetic image with the shared AmdSev OVMF fixture: the
// text and JSON outputs (one measurement per vCPU count and CPU model), the refusal of Debian's kind of
// firmware (no kernel hashes table) with exit 1, and usage errors with exit 2; --vmm-type combinations and
// the release notes --write-notes writes (a release file tpod release publish accepts as is). The build itself is tested in
// packages/provider-image (TPOD_IMAGE_TESTS=1: it takes minutes).
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseReleaseFile } from "@trustedpods/publisher";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AMDSEV_OVMF_HASH,
  HAVE_SNP_TESTDATA,
  snpFixture,
  syntheticImage,
} from "../../../test-support/provider-image.js";
import { run } from "../src/main.js";

async function tpod(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

let dir: string;
let image: string;
let amdSev: string;
let ovmfX64: string;

describe.skipIf(!HAVE_SNP_TESTDATA)("tpod provider image measure", () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "tpod-cli-image-"));
    image = path.join(dir, "image");
    await syntheticImage(image);
    amdSev = path.join(dir, "amdsev.bin");
    ovmfX64 = path.join(dir, "ovmfx64.bin");
    await writeFile(amdSev, snpFixture("ovmf_AmdSev_suffix.bin"));
    await writeFile(ovmfX64, snpFixture("ovmf_OvmfX64_suffix.bin"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const base = () => ["provider", "image", "measure", "--image", image, "--ovmf-hash", AMDSEV_OVMF_HASH];

  it("prints one measurement per vCPU count and CPU model as JSON", async () => {
    const r = await tpod([
      ...base(),
      "--ovmf",
      amdSev,
      "--vcpus",
      "1-3",
      "--vcpu-type",
      "EPYC-Milan",
      "--json",
    ]);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.measurements.map((m: { vcpus: number }) => m.vcpus)).toEqual([1, 2, 3]);
    for (const m of j.measurements) {
      expect(m.vcpuType).toBe("EPYC-Milan");
      expect(m.measurement).toMatch(/^[0-9a-f]{96}$/);
    }
    expect(j.image.cmdline).toMatch(/tpod\.roothash=/);
    expect(j.firmware.ovmfHash).toBe(AMDSEV_OVMF_HASH);
    // The same digest as tpod measure snp gives for a direct boot of the image's files.
    const snp = await tpod([
      "measure",
      "snp",
      "--ovmf",
      amdSev,
      "--ovmf-hash",
      AMDSEV_OVMF_HASH,
      "--vcpus",
      "2",
      "--vcpu-type",
      "EPYC-Milan",
      "--kernel",
      path.join(image, "vmlinuz"),
      "--initrd",
      path.join(image, "initrd.img"),
      "--append",
      j.image.cmdline,
    ]);
    expect(snp.code, snp.err).toBe(0);
    expect(snp.out.trim()).toBe(j.measurements[1].measurement);
  });

  it("prints a text table by default (three CPU models, eight vCPU counts)", async () => {
    const r = await tpod([...base(), "--ovmf", amdSev]);
    expect(r.code, r.err).toBe(0);
    const rows = r.out.split("\n").filter((l) => /vCPU {2}[0-9a-f]{96}$/.test(l));
    expect(rows).toHaveLength(24);
  });

  it("measures qemu per CPU model and ec2 once per vCPU count (--vmm-type, repeatable)", async () => {
    const r = await tpod([
      ...base(),
      "--ovmf",
      amdSev,
      "--vcpus",
      "1,2",
      "--vcpu-type",
      "EPYC-Milan",
      "--vmm-type",
      "qemu",
      "--vmm-type",
      "ec2",
      "--json",
    ]);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.vmmTypes).toEqual(["qemu", "ec2"]);
    expect(
      j.measurements.map((m: { vmmType: string; vcpuType: string; vcpus: number }) =>
        [m.vmmType, m.vcpuType, m.vcpus].join("/"),
      ),
    ).toEqual(["qemu/EPYC-Milan/1", "qemu/EPYC-Milan/2", "ec2/any/1", "ec2/any/2"]);
    // The VMM type is part of the measurement.
    expect(j.measurements[2].measurement).not.toBe(j.measurements[0].measurement);
    const ec2 = await tpod([
      "measure",
      "snp",
      "--ovmf",
      amdSev,
      "--ovmf-hash",
      AMDSEV_OVMF_HASH,
      "--vcpus",
      "2",
      "--vmm-type",
      "ec2",
      "--kernel",
      path.join(image, "vmlinuz"),
      "--initrd",
      path.join(image, "initrd.img"),
      "--append",
      j.image.cmdline,
    ]);
    expect(ec2.code, ec2.err).toBe(0);
    expect(ec2.out.trim()).toBe(j.measurements[3].measurement);
    expect((await tpod([...base(), "--ovmf", amdSev, "--vmm-type", "xen"])).code).toBe(2);
  });

  it("--write-notes writes release notes and a publishable release file for the supported configurations", async () => {
    const notesDir = path.join(dir, "noted");
    const manifest = await syntheticImage(notesDir);
    const r = await tpod([
      "provider",
      "image",
      "measure",
      "--image",
      notesDir,
      "--ovmf",
      amdSev,
      "--ovmf-hash",
      AMDSEV_OVMF_HASH,
      "--write-notes",
      "--json",
    ]);
    expect(r.code, r.err).toBe(0);
    const release = parseReleaseFile(
      JSON.parse(await readFile(path.join(notesDir, "release.json"), "utf8")),
      "release.json",
    );
    expect(release.version).toBe(`provider-image-${manifest.digest.slice(0, 12)}`);
    expect(release.imageDigest).toBe(`0x${manifest.digest}`);
    // EPYC-v4, EPYC-Milan, EPYC-Genoa at 1, 2, 4, 8 vCPUs under QEMU: 12 of a release's 16.
    expect(release.measurements).toHaveLength(12);
    // Measured from the firmware's last pages and their digest: the whole file's SHA-256 is unknown (zero),
    // and the configuration names the page digest instead.
    for (const m of release.measurements) expect(m.firmware).toBe(`0x${"0".repeat(64)}`);
    expect(release.measurements[0]!.config).toBe(
      `EPYC-v4, 1 vCPU, qemu, fw pages ${AMDSEV_OVMF_HASH.slice(0, 8)}`,
    );
    const milan4 = release.measurements.find((m) => m.config.startsWith("EPYC-Milan, 4 vCPU, qemu, fw "));
    const listed = await tpod([
      "provider",
      "image",
      "measure",
      "--image",
      notesDir,
      "--ovmf-hash",
      AMDSEV_OVMF_HASH,
      "--ovmf",
      amdSev,
      "--vcpus",
      "4",
      "--vcpu-type",
      "EPYC-Milan",
      "--json",
    ]);
    expect(milan4?.value).toBe(`0x${JSON.parse(listed.out).measurements[0].measurement}`);
    const notes = await readFile(path.join(notesDir, "RELEASE-NOTES.md"), "utf8");
    expect(notes).toContain(manifest.digest);
    expect(notes).toContain(`| EPYC-Milan | 4 | qemu | \`${milan4!.value.slice(2)}\` |`);
  });

  it("without --write-notes the image directory is not touched", async () => {
    expect(existsSync(path.join(image, "release.json"))).toBe(false);
    expect(existsSync(path.join(image, "RELEASE-NOTES.md"))).toBe(false);
  });

  it("refuses firmware that would not measure the kernel (exit 1)", async () => {
    const r = await tpod([...base(), "--ovmf", ovmfX64, "--vcpus", "1"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/OVMF_NO_KERNEL_HASHES/);
  });

  it("rejects a bad vCPU list and an unknown CPU model as usage errors (exit 2)", async () => {
    expect((await tpod([...base(), "--ovmf", amdSev, "--vcpus", "3-1"])).code).toBe(2);
    const r = await tpod([...base(), "--ovmf", amdSev, "--vcpus", "1", "--vcpu-type", "Pentium"]);
    expect(r.code).toBe(2);
  });
});
