// The AmdSev firmware's lock file and what the image flow derives from it, without building the firmware:
// the committed lock parses (and a malformed one is refused with file:line), the committed 4 KiB suffix of the
// locked build (firmware/testdata/ovmf-amdsev-suffix.bin; the gated packages/cli/test/amdsev-firmware.test.ts
// checks it is the real build's last page) has the SEV-SNP metadata measured direct boot needs, and with the
// lock's pages digest it gives the launch digest recorded from the whole firmware. A measurement says whether
// its firmware is the locked build, and the release notes say so.
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fromHex, measureSev, parseOvmf, toHex } from "@trustedpods/attestation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { syntheticImage } from "../../../test-support/provider-image.js";
import {
  FIRMWARE_LOCK,
  firmwareProvenance,
  ImageError,
  measureImage,
  parseFirmwareLock,
  readFirmwareLock,
  readManifest,
  writeReleaseNotes,
} from "../src/index.js";

const SUFFIX = path.resolve(import.meta.dirname, "../firmware/testdata/ovmf-amdsev-suffix.bin");
const suffix = () => new Uint8Array(readFileSync(SUFFIX));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "tpod-firmware-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("amdsev-ovmf.lock", () => {
  it("pins the Debian edk2 source, its tarballs, the toolchain and the firmware the build gave", () => {
    const lock = readFirmwareLock();
    expect(lock.suite).toBe("trixie");
    expect(lock.version).toBe("2025.02-8+deb13u1");
    expect(Object.keys(lock.sources).sort()).toEqual([
      "edk2_2025.02-8+deb13u1.debian.tar.xz",
      "edk2_2025.02.orig.tar.xz",
    ]);
    expect(lock.toolchain["gcc-12"]).toMatch(/^12\./);
    expect(lock.firmwareSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(lock.ovmfHash).toMatch(/^[0-9a-f]{96}$/);
  });

  it("refuses a malformed line with file:line, and a lock without a version", () => {
    const bad = (text: string) => {
      try {
        parseFirmwareLock(text, "x.lock");
      } catch (err) {
        expect(err).toBeInstanceOf(ImageError);
        expect((err as ImageError).code).toBe("FIRMWARE_LOCK_MALFORMED");
        return (err as Error).message;
      }
      throw new Error("accepted");
    };
    expect(bad("suite trixie\nversion 1\nsource-sha256 abc edk2.tar.xz\n")).toMatch(/^x\.lock:3: /);
    expect(bad("suite trixie\nversion 1\nfirmware-sha256\n")).toMatch(/^x\.lock:3: firmware-sha256/);
    expect(bad("suite trixie\nversion 1\nmystery 1\n")).toMatch(/unknown key mystery/);
    expect(bad("suite trixie\n")).toMatch(/suite and version are required/);
  });

  it("names the locked firmware by its SHA-256 only", () => {
    const lock = readFirmwareLock();
    expect(firmwareProvenance(lock.firmwareSha256!, lock)).toEqual({
      locked: true,
      build: "edk2 2025.02-8+deb13u1 (Debian trixie), OvmfPkg/AmdSev",
    });
    expect(firmwareProvenance("0".repeat(64), lock)).toEqual({ locked: false });
    const { firmwareSha256: _, ...unbuilt } = lock;
    expect(firmwareProvenance(lock.firmwareSha256!, unbuilt)).toEqual({ locked: false });
  });
});

describe("the locked AmdSev build's last page (committed suffix)", () => {
  it("has the SEV-SNP metadata with a kernel hashes page that holds the hashes table", () => {
    const image = parseOvmf(suffix());
    expect(image.sections?.map((s) => s.type)).toEqual(EXPECTED_SECTIONS);
    const hashes = image.sections!.find((s) => s.type === "SNP_KERNEL_HASHES")!;
    expect(hashes.size).toBe(4096);
    expect(image.sevHashesTableGpa! - hashes.gpa).toBeGreaterThanOrEqual(0);
    expect(image.sevHashesTableGpa! - hashes.gpa).toBeLessThan(4096);
    expect(image.sevEsResetEip).toBeGreaterThan(0);
  });

  it("with the lock's pages digest, gives the digest recorded from the whole firmware", async () => {
    const m = await measureSev({
      mode: "snp",
      ovmf: suffix(),
      ovmfHash: fromHex(readFirmwareLock().ovmfHash!),
      vcpus: 2,
      vcpuType: "EPYC-Milan",
      boot: RECORDED_BOOT,
    });
    expect(m.kernelHashes).toBe("measured");
    expect(toHex(m.digest)).toBe(RECORDED_DIGEST);
  });

  it("measures an image; a partial firmware is not called the locked build, and the notes say which it is", async () => {
    const image = path.join(dir, "img");
    await syntheticImage(image);
    const r = await measureImage({
      imageDir: image,
      ovmf: suffix(),
      ovmfHash: fromHex(readFirmwareLock().ovmfHash!),
      vcpus: [1],
      vcpuTypes: ["EPYC-v4"],
    });
    expect(r.firmware).toMatchObject({ partial: true, locked: false, ovmfHash: readFirmwareLock().ovmfHash });
    // The whole-file path: the suffix alone is not the locked firmware, and the notes say so.
    const whole = await measureImage({ imageDir: image, ovmf: suffix(), vcpus: [1], vcpuTypes: ["EPYC-v4"] });
    expect(whole.firmware.locked).toBe(false);
    await writeReleaseNotes(image, await readManifest(image), whole);
    const notes = await readFile(path.join(image, "RELEASE-NOTES.md"), "utf8");
    expect(notes).toContain("not the build `packages/provider-image/firmware/amdsev-ovmf.lock` pins");
    // As the locked build (what a provider measuring OVMF.amdsev.fd gets), the notes name it and how to rebuild.
    await writeReleaseNotes(image, await readManifest(image), {
      ...whole,
      firmware: { ...whole.firmware, ...firmwareProvenance(readFirmwareLock().firmwareSha256!) },
    });
    const locked = await readFile(path.join(image, "RELEASE-NOTES.md"), "utf8");
    expect(locked).toContain("reproducible edk2 2025.02-8+deb13u1 (Debian trixie), OvmfPkg/AmdSev build");
    expect(locked).toContain("build-amdsev-ovmf.sh");
    expect(FIRMWARE_LOCK).toMatch(/firmware\/amdsev-ovmf\.lock$/);
  });
});

// From the whole firmware of the locked build (docs/provider-image.md, "The firmware").
const EXPECTED_SECTIONS = [
  "SNP_SEC_MEM",
  "SNP_SEC_MEM",
  "SNP_SECRETS",
  "CPUID",
  "SVSM_CAA",
  "SNP_SEC_MEM",
  "SNP_KERNEL_HASHES",
];
const RECORDED_BOOT = {
  kernel: new TextEncoder().encode("tpod test kernel"),
  initrd: new TextEncoder().encode("tpod test initrd"),
  append: "console=ttyS0",
};
const RECORDED_DIGEST =
  "b09ee821cea0ba3b7361f8e4360554686966413181365ee4dfeb36bb5c8eb0a424d46856d070068b7da675b8f0c22781";
