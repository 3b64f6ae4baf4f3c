import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import {
  type DirectBoot,
  fromHex,
  MeasureError,
  measureSev,
  parseOvmf,
  type SevMeasureOptions,
  snpOvmfHash,
  toHex,
} from "../src/index.js";
import {
  fixture,
  HAVE_SNP_TESTDATA,
  optionalFile,
  read,
  SNP_TESTDATA,
  sha256Hex,
} from "./measure-fixtures.js";

/** `/dev/null` as kernel and initrd, empty command line: what the reference vectors call a direct boot. */
const EMPTY_BOOT: DirectBoot = { kernel: new Uint8Array(), initrd: new Uint8Array(), append: "" };

async function digest(opts: SevMeasureOptions): Promise<string> {
  return toHex((await measureSev(opts)).digest);
}

async function rejection(p: Promise<unknown>): Promise<MeasureError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MeasureError);
  return err as MeasureError;
}

// The shared fixtures are the last 4 KiB of edk2-stable202405 builds, as in virtee/sev-snp-measure since
// commit cc93bb0 (2024-05). These digests are that project's own test expectations at 8f2b337 for them.
const CURRENT_AMDSEV = "8f765dfabc127fc0a938a0744a3103ec15864d7d794eb4c398aa976b6d6ab16c";
const CURRENT_OVMFX64 = "b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da";

const describeShared = HAVE_SNP_TESTDATA ? describe : describe.skip;

describeShared("SEV launch digests of the shared OVMF fixtures (sev-snp-measure 8f2b337 vectors)", () => {
  const amdSev = () => fixture("ovmf_AmdSev_suffix.bin");
  const ovmfX64 = () => fixture("ovmf_OvmfX64_suffix.bin");
  const snp = (o: Partial<SevMeasureOptions>): SevMeasureOptions => ({
    mode: "snp",
    ovmf: amdSev(),
    vcpus: 1,
    vcpuType: "EPYC-v4",
    ...o,
  });

  it("the fixtures are the edk2-stable202405 builds these vectors were made from", () => {
    expect(sha256Hex(amdSev())).toBe(CURRENT_AMDSEV);
    expect(sha256Hex(ovmfX64())).toBe(CURRENT_OVMFX64);
  });

  it("OVMF pages hash of the AmdSev suffix", async () => {
    expect(toHex(await snpOvmfHash(amdSev()))).toBe(
      "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74",
    );
  });

  const ovmfHash = fromHex(
    "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74",
  );
  const cases: [string, Partial<SevMeasureOptions>, string][] = [
    [
      "SNP, given OVMF hash, empty kernel/initrd/append, features 0x21",
      { ovmfHash, boot: EMPTY_BOOT, guestFeatures: 0x21n },
      "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198",
    ],
    [
      "SNP, given OVMF hash, empty kernel/initrd/append, features 0x1",
      { ovmfHash, boot: EMPTY_BOOT, guestFeatures: 0x1n },
      "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5",
    ],
    [
      "SNP, command line 'console=ttyS0 loglevel=7', features 0x21",
      { boot: { ...EMPTY_BOOT, append: "console=ttyS0 loglevel=7" }, guestFeatures: 0x21n },
      "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977",
    ],
    [
      "SNP, command line 'console=ttyS0 loglevel=7', default features (0x1)",
      { boot: { ...EMPTY_BOOT, append: "console=ttyS0 loglevel=7" } },
      "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa",
    ],
    [
      "SNP on EC2, features 0x21",
      { vmmType: "ec2", boot: EMPTY_BOOT, guestFeatures: 0x21n },
      "0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb",
    ],
    [
      "SNP on EC2, features 0x1",
      { vmmType: "ec2", boot: EMPTY_BOOT },
      "0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056",
    ],
    [
      "SNP on GCE, 1 vCPU (no vCPU type needed)",
      { vmmType: "gce", vcpuType: undefined, boot: EMPTY_BOOT },
      "5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e",
    ],
    [
      "SNP on GCE, 4 vCPUs",
      { vmmType: "gce", vcpuType: undefined, vcpus: 4, boot: EMPTY_BOOT },
      "5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d",
    ],
    [
      "SNP without kernel, features 0x21",
      { guestFeatures: 0x21n },
      "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b",
    ],
    [
      "SNP without kernel, features 0x1",
      {},
      "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d",
    ],
    [
      "SNP, 4 vCPUs, features 0x21",
      { vcpus: 4, boot: EMPTY_BOOT, guestFeatures: 0x21n },
      "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942",
    ],
    [
      "SNP, 4 vCPUs, features 0x1",
      { vcpus: 4, boot: EMPTY_BOOT },
      "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5",
    ],
    [
      "SNP, OvmfX64 firmware, features 0x21",
      { ovmf: fixtureOrEmpty("ovmf_OvmfX64_suffix.bin"), guestFeatures: 0x21n },
      "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385",
    ],
    [
      "SNP, OvmfX64 firmware, features 0x1",
      { ovmf: fixtureOrEmpty("ovmf_OvmfX64_suffix.bin") },
      "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005",
    ],
    [
      "SEV-ES, 1 vCPU",
      { mode: "seves", boot: EMPTY_BOOT },
      "13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c",
    ],
    [
      "SEV-ES, 4 vCPUs",
      { mode: "seves", vcpus: 4, boot: EMPTY_BOOT },
      "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91",
    ],
  ];
  it.each(cases)("%s", async (_name, o, expected) => {
    expect(await digest(snp(o))).toBe(expected);
  });

  it("SNP: a kernel with the OvmfX64 firmware is refused (it would not be measured)", async () => {
    const err = await rejection(measureSev(snp({ ovmf: ovmfX64(), boot: EMPTY_BOOT })));
    expect(err.code).toBe("OVMF_NO_KERNEL_HASHES");
    expect(err.message).toContain("no SNP_KERNEL_HASHES section");
  });

  it("SEV-ES: a kernel with the OvmfX64 firmware is refused", async () => {
    const err = await rejection(measureSev(snp({ mode: "seves", ovmf: ovmfX64(), boot: EMPTY_BOOT })));
    expect(err.code).toBe("OVMF_NO_KERNEL_HASHES");
  });

  it("says whether the kernel is covered", async () => {
    expect((await measureSev(snp({ boot: EMPTY_BOOT }))).kernelHashes).toBe("measured");
    expect((await measureSev(snp({}))).kernelHashes).toBe("not-given");
    expect((await measureSev(snp({ ovmf: ovmfX64() }))).kernelHashes).toBe("unsupported");
  });

  it("every input that the guest depends on changes the digest", async () => {
    const base = await digest(snp({ boot: EMPTY_BOOT }));
    const variants: Partial<SevMeasureOptions>[] = [
      { boot: { ...EMPTY_BOOT, kernel: new Uint8Array([0]) } },
      { boot: { ...EMPTY_BOOT, initrd: new Uint8Array([0]) } },
      { boot: { ...EMPTY_BOOT, append: " " } },
      { boot: EMPTY_BOOT, vcpus: 2 },
      { boot: EMPTY_BOOT, vcpuType: "EPYC-Milan" },
      { boot: EMPTY_BOOT, guestFeatures: 0x3n },
      { boot: EMPTY_BOOT, kvmInit: "legacy" },
      { boot: EMPTY_BOOT, ovmf: flipped(amdSev(), 0) },
    ];
    const digests = await Promise.all(variants.map((v) => digest(snp(v))));
    expect(new Set([base, ...digests]).size).toBe(variants.length + 1);
  });

  it("vCPU types sharing a CPUID signature measure alike; an unknown type lists the known ones", async () => {
    expect(await digest(snp({ vcpuType: "EPYC" }))).toBe(await digest(snp({ vcpuType: "EPYC-v4" })));
    expect(await digest(snp({ vcpuType: undefined, vcpuSig: 0x800f12 }))).toBe(
      await digest(snp({ vcpuType: "EPYC-v4" })),
    );
    const err = await rejection(measureSev(snp({ vcpuType: "EPYC-Nope" })));
    expect(err.code).toBe("UNKNOWN_VCPU_TYPE");
    for (const t of ["EPYC-v4", "EPYC-Milan", "EPYC-Genoa", "EPYC-Rome"]) expect(err.message).toContain(t);
    expect((await rejection(measureSev(snp({ vcpuType: "toString" })))).code).toBe("UNKNOWN_VCPU_TYPE");
  });

  it("refuses inconsistent arguments", async () => {
    const bad: Partial<SevMeasureOptions>[] = [
      { vcpus: 0 },
      { vcpus: 1.5 },
      { vcpuType: undefined },
      { vcpuSig: 0x800f12 },
      { ovmfHash: new Uint8Array(32) },
      { guestFeatures: 1n << 64n },
      { mode: "seves", ovmfHash },
      { mode: "seves", guestFeatures: 0x1n },
    ];
    for (const o of bad) expect((await rejection(measureSev(snp(o)))).code).toBe("INVALID_ARGUMENT");
  });
});

function fixtureOrEmpty(name: string): Uint8Array {
  return HAVE_SNP_TESTDATA ? fixture(name) : new Uint8Array();
}

function flipped(data: Uint8Array, offset: number): Uint8Array {
  const copy = Uint8Array.from(data);
  copy[offset] = copy[offset]! ^ 1;
  return copy;
}

// The README's table (#1-#10) was taken from sev-snp-measure's tests before commit ae95e59 (2024-04): made
// with the older fixture builds (sha256 below), guest features 0x1, and QEMU before KVM_SEV_INIT2 (MXCSR and
// FCW 0 in the VMSA: kvmInit "legacy"). The shared directory holds the newer fixtures, from which no
// implementation (sev-snp-measure 8f2b337 included) gets these digests. TPOD_SNP_LEGACY_FIXTURES names a
// directory with the older fixtures (git show ae95e59~1:tests/fixtures/... of that project) to check them.
const LEGACY_AMDSEV = "ddadd162c1fef131beba0c0dc1e7870f630aa3c0a6e96b998fc562fe32069c66";
const LEGACY_OVMFX64 = "af9d6c674b1ff04937084c98c99ca106b25c37b2c9541ac313e6e0c54426314f";
const LEGACY_DIR = process.env.TPOD_SNP_LEGACY_FIXTURES ?? SNP_TESTDATA;

function legacyFixtures(): { amdSev: Uint8Array; ovmfX64: Uint8Array } | undefined {
  const a = resolve(LEGACY_DIR, "ovmf_AmdSev_suffix.bin");
  const x = resolve(LEGACY_DIR, "ovmf_OvmfX64_suffix.bin");
  if (!existsSync(a) || !existsSync(x)) return undefined;
  const amdSev = read(a);
  const ovmfX64 = read(x);
  if (sha256Hex(amdSev) !== LEGACY_AMDSEV || sha256Hex(ovmfX64) !== LEGACY_OVMFX64) return undefined;
  return { amdSev, ovmfX64 };
}

const LEGACY = legacyFixtures();
if (!LEGACY) {
  console.warn(
    `SKIP: README vectors #1-#9 need the pre-2024-05 sev-snp-measure fixtures (sha256 ${LEGACY_AMDSEV.slice(0, 16)}...); ` +
      `${LEGACY_DIR} has others (set TPOD_SNP_LEGACY_FIXTURES)`,
  );
}

(LEGACY ? describe : describe.skip)("README vectors #1-#9 (older fixtures, legacy KVM init)", () => {
  const f = LEGACY ?? { amdSev: new Uint8Array(), ovmfX64: new Uint8Array() };
  const snp = (o: Partial<SevMeasureOptions>): SevMeasureOptions => ({
    mode: "snp",
    ovmf: f.amdSev,
    vcpus: 1,
    vcpuType: "EPYC-v4",
    kvmInit: "legacy",
    ...o,
  });
  const given = fromHex(
    "cab7e085874b3acfdbe2d96dcaa3125111f00c35c6fc9708464c2ae74bfdb048a198cb9a9ccae0b3e5e1a33f5f249819",
  );

  it("#2 OVMF pages hash of the AmdSev suffix", async () => {
    expect(toHex(await snpOvmfHash(f.amdSev))).toBe(
      "edcf6d1c57ce868a167c990f58c8667c698269ef9e0803246419eea914186343054d557e1f17acd93b032c106bc70d25",
    );
  });

  const cases: [string, Partial<SevMeasureOptions>, string][] = [
    [
      "#1 SNP, given OVMF hash, empty boot",
      { ovmfHash: given, boot: EMPTY_BOOT },
      "db06fb267824b1ccb56edbe2a9c2ce88841bca5090dc6dac91d9cd30f3c2c0bf42daccb30d55d6625bfbf0dae5c50c6d",
    ],
    [
      "#3 SNP, command line 'console=ttyS0 loglevel=7'",
      { boot: { ...EMPTY_BOOT, append: "console=ttyS0 loglevel=7" } },
      "f07864303ad8243132029e8110b92805c78d1135a15da75f67abb9a711d78740347f24ee76f603e650ec4adf3611cc1e",
    ],
    [
      "#5 SNP without kernel",
      {},
      "e5e6be5a8fa6256f0245666bb237e2d028b7928148ce78d51b8a64dc9506c377709a5b5d7ab75554593bced304fcff93",
    ],
    [
      "#6 SNP, 4 vCPUs",
      { vcpus: 4, boot: EMPTY_BOOT },
      "1c784beb8c49aa604b7fd57fbc73b36ec53a3f5fb48a2b895ad6cc2ea15d18ee7cc15e3e57c792766b45f944c3e81cfe",
    ],
    [
      "#7 SNP, OvmfX64 firmware",
      { ovmf: f.ovmfX64 },
      "7ef631fa7f659f7250de96c456a0eb7354bd3b9461982f386a41c6a6aede87870ad020552a5a0716672d5d6e5b86b8f9",
    ],
    [
      "#8 SEV-ES, 1 vCPU",
      { mode: "seves", boot: EMPTY_BOOT },
      "2e91d54814445ad178180af09f881efe4079fc54bfddd0ec1179ecd3cdbdf772",
    ],
    [
      "#9 SEV-ES, 4 vCPUs",
      { mode: "seves", vcpus: 4, boot: EMPTY_BOOT },
      "c05d37600072dc5ff24bafc49410f0369ba3a37c130a7bb7055ac6878be300f7",
    ],
  ];
  it.each(cases)("%s", async (_name, o, expected) => {
    expect(await digest(snp(o))).toBe(expected);
  });

  // #4 (EC2) was computed when EC2 started vCPUs with RDX 0; EC2 now uses 0x600 (sev-snp-measure 4a02bf0),
  // which is what vmmType "ec2" measures. The current EC2 vectors are checked above.
  it.skip("#4 SNP on EC2 (RDX 0: EC2's behaviour before 2026-04, not modelled)", () => {});

  it("#10 a kernel with the OvmfX64 firmware is refused", async () => {
    const err = await rejection(measureSev(snp({ ovmf: f.ovmfX64, boot: EMPTY_BOOT })));
    expect(err.code).toBe("OVMF_NO_KERNEL_HASHES");
  });
});

// Debian 12's ovmf 2022.11-6+deb12u2 (OvmfPkgX64 builds). Expected digests from virtee/sev-snp-measure at
// 8f2b337 run locally on the same files (see docs/measure.md); recorded here, the binaries are not.
// OVMF_CODE_4M.fd has no SEV metadata in its footer table: QEMU cannot launch it as an SNP guest (it needs the
// secrets and CPUID pages' addresses), so SNP is refused, while sev-snp-measure silently measures no sections.
const DEBIAN: {
  path: string;
  sha256: string;
  ovmfHash: string;
  snp: boolean;
  digests: [Partial<SevMeasureOptions>, string][];
}[] = [
  {
    path: "/usr/share/ovmf/OVMF.fd",
    sha256: "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773",
    ovmfHash:
      "ba2c811512ef868474f239a21f7d7057d65a20de87a003c4f116e4fb1573183bfbcd75c3e99b2f558575a5d0094f73c6",
    snp: true,
    digests: [
      [
        { vcpus: 1, vcpuType: "EPYC-v4" },
        "11570979c77a0adb515761a702527c8b9e11554e730552621d950988613a3a75c6ff1703f540bd22a9beede8fe7a97e3",
      ],
      [
        { vcpus: 4, vcpuType: "EPYC-Milan" },
        "e9c10ab98f8086bf4a4993dcdc1f768b1128bcb02301d1791f1d3274329e790db2d12a301d66d99a462a13b5d87e2840",
      ],
      [
        { vcpus: 2, vcpuType: "EPYC-Genoa", guestFeatures: 0x21n },
        "48c562826999dc60742c0eb2909b789d171fcbfcc2d906d242eef760d9548d19cb2a448f786ccf7a19857f590ed9429e",
      ],
      [
        { vcpus: 1, vmmType: "ec2" },
        "0aaa035d47b06741a745a62cb88eade395f648a7383d71cc322fab9df33859ca3c188a0578534c01526f1b4c0f0b0eb6",
      ],
      [
        { mode: "seves", vcpus: 2, vcpuType: "EPYC-v4" },
        "5b1d28d8e8b3c2c9939d39bf18a7f05b16935279425c1c1e1ab19109acca9ffd",
      ],
    ],
  },
  {
    path: "/usr/share/OVMF/OVMF_CODE.fd",
    sha256: "d9b568def24088c92f34b5479e0ed7e44d0a4d4cea8a0f5716719180bba48106",
    ovmfHash:
      "a5429c12f18e96502e1dd4917e8b0c35e4f4ebceac5fe8820b41d91d1c509abeb28146fcc453e8be4d3ede27c3fbaad3",
    snp: true,
    digests: [
      [
        { vcpus: 1, vcpuType: "EPYC-v4" },
        "a479327cbb0b50e876024c2dac7412d4e5e95c7315c1f8b0446f6d3be69fefba50766285475926737e4a70b155252f88",
      ],
      [
        { vcpus: 4, vcpuType: "EPYC-Milan" },
        "cc2b38913550ecd41aadbcf2a5d309ae9d3cb0455c9e1f72892f6b18cfaea3f2e4f46a28b61ca0353724ee707c73177c",
      ],
      [
        { vcpus: 2, vcpuType: "EPYC-Genoa", guestFeatures: 0x21n },
        "4c3f15c10944733a35c665004cc08c01ea5a9a5388edd670d022a58fb82c05fd14994a6b38446824e9599004172eac17",
      ],
      [
        { vcpus: 1, vmmType: "ec2" },
        "cef92b064c677cf12e17f20b8c3f606eb4aad570eadbdfc82919209147ef1d340dc3ee65cbe0e8e3dd52dcec8b32a304",
      ],
      [
        { mode: "seves", vcpus: 2, vcpuType: "EPYC-v4" },
        "02a0c4a5a76ee32cd799d5a26ffb2f2aff33fb3cc5d494e59b96b7e182add13f",
      ],
    ],
  },
  {
    path: "/usr/share/OVMF/OVMF_CODE_4M.fd",
    sha256: "b157d97b1f69729514feb7f201d2cbe4957f23ab77920e361fe9f822ba49ca4c",
    ovmfHash:
      "9fcd8d0a1e49276166981a44bd5487d27508b5f3161c10d316342e56580c498a75420eca6119e10ad6af5849d107345d",
    snp: false,
    digests: [
      [
        { mode: "seves", vcpus: 2, vcpuType: "EPYC-v4" },
        "9322d994f884746b0f5da99a594a7e1d9a72e6366e163603f263d64e470e0dc6",
      ],
    ],
  },
];

for (const d of DEBIAN) {
  const file = optionalFile(d.path, d.sha256);
  if (file.skip) console.warn(`SKIP: ${file.skip}`);
  const ovmf = file.data ?? new Uint8Array();
  (file.data ? describe : describe.skip)(`Debian ovmf ${d.path}`, () => {
    it("OVMF pages hash", async () => {
      expect(toHex(await snpOvmfHash(ovmf))).toBe(d.ovmfHash);
    });

    it.each(d.digests)("%o", async (o, expected) => {
      expect(await digest({ mode: "snp", ovmf, vcpus: 1, ...o })).toBe(expected);
    });

    if (d.snp) {
      it("carries SNP metadata but no kernel hashes section", () => {
        const types = parseOvmf(ovmf).sections?.map((s) => s.type);
        expect(types).toEqual(["SNP_SEC_MEM", "SNP_SEC_MEM", "SNP_SECRETS", "CPUID", "SNP_SEC_MEM"]);
      });

      it("kernel, initrd and command line are not measured: a kernel is refused", async () => {
        const m = await measureSev({ ovmf, vcpus: 1, vcpuType: "EPYC-v4" });
        expect(m.kernelHashes).toBe("unsupported");
        const err = await rejection(measureSev({ ovmf, vcpus: 1, vcpuType: "EPYC-v4", boot: EMPTY_BOOT }));
        expect(err.code).toBe("OVMF_NO_KERNEL_HASHES");
      });
    } else {
      it("has no SEV metadata: SNP is refused, SEV-ES is measured", async () => {
        expect(parseOvmf(ovmf).sections).toBeUndefined();
        const err = await rejection(measureSev({ ovmf, vcpus: 1, vcpuType: "EPYC-v4" }));
        expect(err.code).toBe("OVMF_NO_SNP_METADATA");
      });
    }
  });
}

/** A two-page firmware image with a footer table built from the given parts (edk2's layout, nothing else). */
function syntheticOvmf(p: {
  footer?: boolean;
  resetEip?: number;
  hashesGpa?: number;
  metadata?: { signature?: string; version?: number; sections: [gpa: number, size: number, type: number][] };
  entrySize?: number;
}): Uint8Array {
  const image = new Uint8Array(2 * 4096);
  const view = new DataView(image.buffer);
  const entries: [string, Uint8Array][] = [];
  const word = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    return b;
  };
  if (p.metadata) {
    const m = p.metadata;
    const at = 0x100;
    image.set(new TextEncoder().encode(m.signature ?? "ASEV"), at);
    view.setUint32(at + 4, 16 + 12 * m.sections.length, true);
    view.setUint32(at + 8, m.version ?? 1, true);
    view.setUint32(at + 12, m.sections.length, true);
    m.sections.forEach(([gpa, size, type], i) => {
      view.setUint32(at + 16 + 12 * i, gpa, true);
      view.setUint32(at + 20 + 12 * i, size, true);
      view.setUint32(at + 24 + 12 * i, type, true);
    });
    entries.push(["dc886566-984a-4798-a75e-5585a7bf67cc", word(image.length - at)]);
  }
  if (p.resetEip !== undefined) entries.push(["00f771de-1a7e-4fcb-890e-68c77e2fb44e", word(p.resetEip)]);
  if (p.hashesGpa !== undefined) entries.push(["7255371f-3a3b-4b04-927b-1da6efa8d454", word(p.hashesGpa)]);
  if (p.footer === false) return image;
  let end = image.length - 32 - 18;
  const footerAt = end;
  for (const [guid, data] of entries) {
    end -= 18;
    view.setUint16(end, p.entrySize ?? data.length + 18, true);
    image.set(guidBytesLe(guid), end + 2);
    end -= data.length;
    image.set(data, end);
  }
  view.setUint16(footerAt, footerAt - end + 18, true);
  image.set(guidBytesLe("96b582de-1fb2-45f7-baea-a366c55a082d"), footerAt + 2);
  return image;
}

function guidBytesLe(guid: string): Uint8Array {
  const b = fromHex(guid.replace(/-/g, ""));
  return Uint8Array.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.subarray(8)]);
}

describe("firmware that cannot be measured is refused with a specific code", () => {
  const opts = (ovmf: Uint8Array, o: Partial<SevMeasureOptions> = {}): SevMeasureOptions => ({
    ovmf,
    vcpus: 1,
    vcpuType: "EPYC-v4",
    ...o,
  });
  const snpSections: [number, number, number][] = [
    [0x800000, 0x9000, 1],
    [0x809000, 0x1000, 2],
    [0x80a000, 0x1000, 3],
  ];

  it("a well-formed synthetic image measures, and its metadata is read in order", async () => {
    const ovmf = syntheticOvmf({ resetEip: 0xffffe000, metadata: { sections: snpSections } });
    const m = await measureSev(opts(ovmf, { vcpus: 2 }));
    expect(m.digest).toHaveLength(48);
    expect(m.sections.map((s) => s.type)).toEqual(["SNP_SEC_MEM", "SNP_SECRETS", "CPUID"]);
    expect(m.sections[0]).toEqual({ type: "SNP_SEC_MEM", gpa: 0x800000, size: 0x9000 });
    expect(parseOvmf(ovmf).sevEsResetEip).toBe(0xffffe000);
    // The AP reset vector is measured: another one gives another digest.
    const other = syntheticOvmf({ resetEip: 0xfffff000, metadata: { sections: snpSections } });
    expect(toHex((await measureSev(opts(other, { vcpus: 2 }))).digest)).not.toBe(toHex(m.digest));
  });

  const cases: [string, Uint8Array, Partial<SevMeasureOptions>, string, RegExp][] = [
    ["not page-aligned", new Uint8Array(4095), {}, "OVMF_MALFORMED", /multiple of 4096/],
    ["no footer table", syntheticOvmf({ footer: false }), {}, "OVMF_NOT_SEV", /footer table/],
    [
      "no SEV-ES reset block",
      syntheticOvmf({ metadata: { sections: snpSections } }),
      {},
      "OVMF_NOT_SEV",
      /reset block/,
    ],
    ["no SNP metadata", syntheticOvmf({ resetEip: 0xffffe000 }), {}, "OVMF_NO_SNP_METADATA", /SNP metadata/],
    [
      "bad metadata signature",
      syntheticOvmf({ resetEip: 0xffffe000, metadata: { signature: "XSEV", sections: snpSections } }),
      {},
      "OVMF_MALFORMED",
      /ASEV/,
    ],
    [
      "metadata version 2",
      syntheticOvmf({ resetEip: 0xffffe000, metadata: { version: 2, sections: snpSections } }),
      {},
      "OVMF_MALFORMED",
      /version 2/,
    ],
    [
      "unknown section type",
      syntheticOvmf({ resetEip: 0xffffe000, metadata: { sections: [[0x800000, 0x1000, 7]] } }),
      {},
      "OVMF_UNKNOWN_SECTION",
      /type 7/,
    ],
    [
      "section not page-aligned",
      syntheticOvmf({ resetEip: 0xffffe000, metadata: { sections: [[0x800010, 0x1000, 1]] } }),
      {},
      "OVMF_MALFORMED",
      /page-aligned/,
    ],
    [
      "footer entry size too small",
      syntheticOvmf({ resetEip: 0xffffe000, entrySize: 3 }),
      {},
      "OVMF_MALFORMED",
      /invalid size/,
    ],
    [
      "kernel but no SNP_KERNEL_HASHES section",
      syntheticOvmf({ resetEip: 0xffffe000, metadata: { sections: snpSections } }),
      { boot: EMPTY_BOOT },
      "OVMF_NO_KERNEL_HASHES",
      /SNP_KERNEL_HASHES/,
    ],
    [
      "hashes table outside the SNP_KERNEL_HASHES page",
      syntheticOvmf({
        resetEip: 0xffffe000,
        hashesGpa: 0x80bc00,
        metadata: { sections: [...snpSections, [0x80c000, 0x1000, 0x10]] },
      }),
      { boot: EMPTY_BOOT },
      "OVMF_MALFORMED",
      /does not fit/,
    ],
    [
      "SEV-ES kernel without a hashes table",
      syntheticOvmf({ resetEip: 0xffffe000 }),
      { mode: "seves", boot: EMPTY_BOOT },
      "OVMF_NO_KERNEL_HASHES",
      /hashes table/,
    ],
  ];
  it.each(cases)("%s", async (_name, ovmf, o, code, message) => {
    const err = await rejection(measureSev(opts(ovmf, o)));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it("SEV-ES needs no SNP metadata", async () => {
    const m = await measureSev(opts(syntheticOvmf({ resetEip: 0xffffe000 }), { mode: "seves" }));
    expect(m.digest).toHaveLength(32);
  });

  it("a kernel hashes table at the section's page is measured", async () => {
    const ovmf = syntheticOvmf({
      resetEip: 0xffffe000,
      hashesGpa: 0x80cc00,
      metadata: { sections: [...snpSections, [0x80c000, 0x1000, 0x10]] },
    });
    const withKernel = await measureSev(opts(ovmf, { boot: EMPTY_BOOT }));
    const without = await measureSev(opts(ovmf));
    expect(withKernel.kernelHashes).toBe("measured");
    expect(without.kernelHashes).toBe("not-given");
    expect(toHex(withKernel.digest)).not.toBe(toHex(without.digest));
  });
});
