// tpod provider image measure's computation on a synthetic image and the shared OVMF fixtures: each digest is
// the SEV-SNP launch digest of a measured direct boot of exactly the image's kernel, initrd and command line
// (so the dm-verity root hash in it), firmware without a kernel hashes table is refused, and files that are
// not the manifest's are refused.

import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fromHex, MeasureError, measureSev, toHex } from "@trustedpods/attestation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AMDSEV_OVMF_HASH,
  HAVE_SNP_TESTDATA,
  snpFixture,
  syntheticImage,
} from "../../../test-support/provider-image.js";
import { ImageError, measureImage, RELEASE_FILE, releaseFileOf, writeReleaseNotes } from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "tpod-image-measure-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!HAVE_SNP_TESTDATA)("measureImage", () => {
  const amdSev = () => snpFixture("ovmf_AmdSev_suffix.bin");
  const ovmfHash = fromHex(AMDSEV_OVMF_HASH);

  it("gives, per vCPU count and CPU model, the launch digest of a direct boot of the image's files", async () => {
    const image = path.join(dir, "a");
    const manifest = await syntheticImage(image);
    const r = await measureImage({ imageDir: image, ovmf: amdSev(), ovmfHash, vcpus: [1, 2] });
    expect(r.measurements.map((m) => `${m.vcpuType}/${m.vcpus}`)).toEqual([
      "EPYC-v4/1",
      "EPYC-v4/2",
      "EPYC-Milan/1",
      "EPYC-Milan/2",
      "EPYC-Genoa/1",
      "EPYC-Genoa/2",
    ]);
    expect(r.image.digest).toBe(manifest.digest);
    expect(r.firmware.ovmfHash).toBe(AMDSEV_OVMF_HASH);
    const expected = await measureSev({
      mode: "snp",
      ovmf: amdSev(),
      ovmfHash,
      vcpus: 2,
      vcpuType: "EPYC-Milan",
      vmmType: "qemu",
      kvmInit: "init2",
      boot: {
        kernel: new Uint8Array(await readFile(path.join(image, "vmlinuz"))),
        initrd: new Uint8Array(await readFile(path.join(image, "initrd.img"))),
        append: manifest.cmdline,
      },
    });
    expect(expected.kernelHashes).toBe("measured");
    expect(r.measurements[3]!.measurement).toBe(toHex(expected.digest));
    // Distinct configurations give distinct digests.
    expect(new Set(r.measurements.map((m) => m.measurement)).size).toBe(6);
  });

  it("another root hash on the command line (another root file system) gives other digests", async () => {
    const a = path.join(dir, "b1");
    const b = path.join(dir, "b2");
    await syntheticImage(a, "11".repeat(32));
    await syntheticImage(b, "22".repeat(32));
    // Same kernel and initrd in both, only the command line differs.
    for (const f of ["vmlinuz", "initrd.img"])
      await writeFile(path.join(b, f), await readFile(path.join(a, f)));
    const manifestB = JSON.parse(await readFile(path.join(b, "manifest.json"), "utf8"));
    const manifestA = JSON.parse(await readFile(path.join(a, "manifest.json"), "utf8"));
    manifestB.files.vmlinuz = manifestA.files.vmlinuz;
    manifestB.files["initrd.img"] = manifestA.files["initrd.img"];
    await writeFile(path.join(b, "manifest.json"), JSON.stringify(manifestB));
    const one = { ovmf: amdSev(), ovmfHash, vcpus: [1], vcpuTypes: ["EPYC-v4"] };
    const ra = await measureImage({ imageDir: a, ...one });
    const rb = await measureImage({ imageDir: b, ...one });
    expect(ra.measurements[0]!.measurement).not.toBe(rb.measurements[0]!.measurement);
  });

  it("refuses firmware without a kernel hashes table: the kernel would boot unmeasured", async () => {
    const image = path.join(dir, "c");
    await syntheticImage(image);
    const err = await measureImage({
      imageDir: image,
      ovmf: snpFixture("ovmf_OvmfX64_suffix.bin"),
      ovmfHash,
      vcpus: [1],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeasureError);
    expect((err as MeasureError).code).toBe("OVMF_NO_KERNEL_HASHES");
    expect((err as MeasureError).message).toMatch(/AmdSev/);
  });

  it("refuses a kernel that is not the one the manifest names", async () => {
    const image = path.join(dir, "d");
    await syntheticImage(image);
    await writeFile(path.join(image, "vmlinuz"), "another kernel");
    const err = await measureImage({ imageDir: image, ovmf: amdSev(), ovmfHash, vcpus: [1] }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageError);
    expect((err as ImageError).code).toBe("DIGEST_MISMATCH");
  });

  it("release notes without firmware list no measurement and write no release file", async () => {
    const image = path.join(dir, "e");
    const manifest = await syntheticImage(image);
    const release = await writeReleaseNotes(image, manifest);
    expect(release.measurements).toEqual([]);
    expect(existsSync(path.join(image, RELEASE_FILE))).toBe(false);
    const notes = await readFile(path.join(image, "RELEASE-NOTES.md"), "utf8");
    expect(notes).toContain(manifest.digest);
    expect(notes).toMatch(/None: the build was given no firmware/);
  });

  it("refuses more configurations than a release holds", async () => {
    const image = path.join(dir, "f");
    const manifest = await syntheticImage(image);
    const many = await measureImage({ imageDir: image, ovmf: amdSev(), ovmfHash, vcpus: [1, 2, 3, 4, 5, 6] });
    expect(many.measurements).toHaveLength(18);
    let err: unknown;
    try {
      releaseFileOf(manifest, many);
    } catch (e) {
      err = e;
    }
    expect((err as ImageError).code).toBe("TOO_MANY_MEASUREMENTS");
  });

  it("refuses a directory without a manifest", async () => {
    const err = await measureImage({ imageDir: path.join(dir, "none"), ovmf: amdSev(), vcpus: [1] }).catch(
      (e: unknown) => e,
    );
    expect((err as ImageError).code).toBe("BAD_IMAGE_DIR");
  });
});
