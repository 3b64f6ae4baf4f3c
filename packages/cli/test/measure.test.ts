import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../src/main.js";

// The shared SEV fixtures (last 4 KiB of edk2-stable202405 OVMF builds); TPOD_SHARED_TESTDATA overrides the
// testdata directory for checkouts whose parent has no shared/ (git worktrees).
const ROOT = resolve(import.meta.dirname, "../../..");
const T = resolve(process.env.TPOD_SHARED_TESTDATA ?? resolve(ROOT, "../shared/testdata"), "measure/snp");
const HAVE = existsSync(join(T, "README.md"));
if (!HAVE) console.warn(`SKIP: SEV measurement vectors not found at ${T}`);
const amdSev = join(T, "ovmf_AmdSev_suffix.bin");
const ovmfX64 = join(T, "ovmf_OvmfX64_suffix.bin");

const tmp = mkdtempSync(join(tmpdir(), "tpod-measure-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function tpod(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(["measure", "snp", ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join(""), err: err.join("") };
}

const EPYC = ["--vcpus", "1", "--vcpu-type", "EPYC-v4"];
const EMPTY_BOOT = ["--kernel", "/dev/null", "--initrd", "/dev/null", "--append", ""];

describe.skipIf(!HAVE)("tpod measure snp on the shared fixtures", () => {
  it("prints the SNP launch digest (sev-snp-measure's vector)", async () => {
    const r = await tpod(["--ovmf", amdSev, ...EPYC, ...EMPTY_BOOT, "--append", "console=ttyS0 loglevel=7"]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(
      "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa",
    );
  });

  it("--json describes what was measured", async () => {
    const r = await tpod(["--ovmf", amdSev, ...EPYC, ...EMPTY_BOOT, "--guest-features", "0x21", "--json"]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out);
    expect(body).toMatchObject({
      digest:
        "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198",
      mode: "snp",
      vcpus: 1,
      vcpuType: "EPYC-v4",
      vcpuSig: "0x800f12",
      vmmType: "qemu",
      kvmInit: "init2",
      guestFeatures: "0x21",
      kernelHashes: "measured",
      ovmfHash:
        "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74",
    });
    expect(body.sections.map((s: { type: string }) => s.type)).toContain("SNP_KERNEL_HASHES");
  });

  it("--ovmf-hash-only, then --ovmf-hash reproduces the full digest", async () => {
    const h = await tpod(["--ovmf", amdSev, "--ovmf-hash-only"]);
    expect(h.code).toBe(0);
    expect(h.out.trim()).toBe(
      "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74",
    );
    const r = await tpod(["--ovmf", amdSev, "--ovmf-hash", h.out.trim(), ...EPYC, ...EMPTY_BOOT, "--json"]);
    expect(JSON.parse(r.out).digest).toBe(
      "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5",
    );
  });

  it("SEV-ES mode, 4 vCPUs", async () => {
    const r = await tpod([
      "--ovmf",
      amdSev,
      "--mode",
      "seves",
      ...EMPTY_BOOT,
      "--vcpus",
      "4",
      "--vcpu-type",
      "EPYC-v4",
    ]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe("0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91");
  });

  it("a kernel with a firmware that cannot measure it fails with exit 1 and the typed code", async () => {
    const r = await tpod(["--ovmf", ovmfX64, ...EPYC, ...EMPTY_BOOT]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toContain("OVMF_NO_KERNEL_HASHES");
    expect(r.err).toContain("no SNP_KERNEL_HASHES section");
  });

  it("without a kernel, notes that this firmware does not measure one", async () => {
    const r = await tpod(["--ovmf", ovmfX64, ...EPYC]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(
      "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005",
    );
    expect(r.err).toContain("not measured");
  });

  it("an unknown vCPU type is a usage error listing the known types", async () => {
    const r = await tpod(["--ovmf", amdSev, "--vcpus", "1", "--vcpu-type", "EPYC-Nope"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("UNKNOWN_VCPU_TYPE");
    expect(r.err).toContain("EPYC-Milan");
    expect(r.err).toContain("EPYC-Genoa");
  });

  it("the tpod binary exits 0 with the digest and 1 on firmware without SNP metadata", async () => {
    const bin = resolve(import.meta.dirname, "../bin/tpod");
    const ok = await promisify(execFile)(bin, ["measure", "snp", "--ovmf", ovmfX64, ...EPYC]);
    expect(ok.stdout.trim()).toMatch(/^da0296de/);
    const plain = join(tmp, "plain.fd");
    writeFileSync(plain, new Uint8Array(8192));
    const failed = await promisify(execFile)(bin, ["measure", "snp", "--ovmf", plain, ...EPYC]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toContain("OVMF_NOT_SEV");
  });
});

describe("tpod measure snp usage errors exit 2", () => {
  const ovmf = join(tmp, "any.fd");
  writeFileSync(ovmf, new Uint8Array(4096));
  const cases: [string, string[], RegExp][] = [
    ["missing --vcpus", ["--vcpu-type", "EPYC-v4"], /--vcpus is required/],
    ["bad --vcpus", ["--vcpus", "0", "--vcpu-type", "EPYC-v4"], /positive integer/],
    ["--append without --kernel", [...EPYC, "--append", "x"], /need --kernel/],
    ["unknown --vmm-type", [...EPYC, "--vmm-type", "xen"], /qemu, ec2, gce/],
    ["unknown --mode", [...EPYC, "--mode", "tdx"], /snp, seves/],
    ["short --ovmf-hash", [...EPYC, "--ovmf-hash", "abcd"], /48 bytes/],
    ["--guest-features not hex", [...EPYC, "--guest-features", "zz"], /hex/],
    [
      "--ovmf-hash-only with --kernel",
      ["--ovmf-hash-only", "--kernel", "/dev/null"],
      /--ovmf-hash-only takes/,
    ],
    ["QEMU without a vCPU type", ["--vcpus", "1"], /vCPU type or signature/],
    ["seves with --ovmf-hash", [...EPYC, "--mode", "seves", "--ovmf-hash", "00".repeat(48)], /SNP only/],
  ];
  it.each(cases)("%s", async (_name, args, message) => {
    const r = await tpod(["--ovmf", ovmf, ...args]);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toMatch(message);
  });

  it("a missing --ovmf is a usage error too", async () => {
    expect((await tpod(["--vcpus", "1"])).code).toBe(2);
  });

  it("an unreadable firmware file fails with exit 1", async () => {
    const r = await tpod(["--ovmf", join(tmp, "absent.fd"), ...EPYC]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("cannot be read");
  });
});
