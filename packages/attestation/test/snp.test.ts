import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bytes,
  certs,
  describeWithSamples,
  flip,
  SNP_SAMPLES,
} from "../../../test-support/attestation-samples.js";
import {
  AttestationError,
  ChainCache,
  decodeTcb,
  parseSnpReport,
  productFromCpuid,
  SNP_REPORT_SIZE,
  SNP_SIGNED_SIZE,
  toHex,
  verifySnp,
} from "../src/index.js";
import { makeFakeChain } from "./fake-ca.js";

async function rejection(p: Promise<unknown>): Promise<AttestationError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AttestationError);
    return err as AttestationError;
  }
  throw new Error("evidence was accepted but should have been rejected");
}

describeWithSamples("SEV-SNP verification of real reports", () => {
  for (const s of SNP_SAMPLES) {
    describe(s.name, () => {
      const report = bytes(s.report);
      const chain = certs(...s.certs);
      const now = new Date(s.now);

      it("verifies with the stated results", async () => {
        const ev = await verifySnp(report, chain, { now });
        expect(ev.tee).toBe("snp");
        expect(ev.version).toBe(2);
        expect(ev.snp?.product).toBe("Milan");
        expect(ev.snp?.signer).toBe("vcek");
        expect(toHex(ev.reportData).startsWith(s.reportDataPrefix)).toBe(true);
        expect(ev.measurement).toHaveLength(48);
        expect(ev.debug).toBe(s.debug);
        expect(ev.tcbStatus).toBe("Unknown");
        expect(ev.tcb.bootloader).toBeTypeOf("number");
      });

      it("verifies with the VCEK alone (AMD's published ASK, pinned ARK)", async () => {
        const ev = await verifySnp(report, [chain[0]!], { now });
        expect(ev.snp?.product).toBe("Milan");
      });

      it("rejects a flipped byte in each signed field", async () => {
        for (const [field, off] of [
          ["version", 0],
          ["policy", 0x08],
          ["reportData", 0x50],
          ["measurement", 0x90],
          ["hostData", 0xc0],
          ["reportedTcb", 0x180],
          ["chipId", 0x1a0],
          ["launchTcb", 0x1f0],
          ["reserved", 0x250],
        ] as const) {
          const err = await rejection(verifySnp(flip(report, off), chain, { now }));
          expect(["SIGNATURE_INVALID", "UNSUPPORTED", "MALFORMED"], `${field}: ${err.message}`).toContain(
            err.code,
          );
        }
        const err = await rejection(verifySnp(flip(report, 0x90), chain, { now }));
        expect(err.code).toBe("SIGNATURE_INVALID");
        expect(err.field).toBe("signature");
      });

      it("rejects flipped signature bytes", async () => {
        expect((await rejection(verifySnp(flip(report, SNP_SIGNED_SIZE + 3), chain, { now }))).code).toBe(
          "SIGNATURE_INVALID",
        );
        expect(
          (await rejection(verifySnp(flip(report, SNP_SIGNED_SIZE + 72 + 10), chain, { now }))).code,
        ).toBe("SIGNATURE_INVALID");
        expect((await rejection(verifySnp(flip(report, SNP_REPORT_SIZE - 1), chain, { now }))).code).toBe(
          "MALFORMED",
        );
      });

      it("rejects any random byte flip and never crashes", async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 0, max: SNP_REPORT_SIZE - 1 }),
            fc.integer({ min: 1, max: 255 }),
            async (off, mask) => {
              const err = await rejection(verifySnp(flip(report, off, mask), chain, { now }));
              expect(err.code).toMatch(/^[A-Z_]+$/);
            },
          ),
          { numRuns: 150 },
        );
      });

      it("rejects truncated and extended reports", async () => {
        for (const len of [0, 4, 0x2a0, SNP_REPORT_SIZE - 1]) {
          const err = await rejection(verifySnp(report.subarray(0, len), chain, { now }));
          expect(err.code).toBe("MALFORMED");
        }
        expect((await rejection(verifySnp(new Uint8Array([...report, 0]), chain, { now }))).code).toBe(
          "MALFORMED",
        );
      });

      it("rejects certificates from another chain", async () => {
        const other = SNP_SAMPLES.find((o) => o !== s)!;
        const err = await rejection(verifySnp(report, certs(...other.certs), { now }));
        expect(err.code).toBe("SIGNATURE_INVALID");
        // The right VCEK with Genoa's ASK and ARK: the VCEK is not signed by them.
        const genoa = await rejection(
          verifySnp(report, [chain[0]!, ...certs("sev-snp/go-sev-guest/ask_ark_genoa.pem")], { now }),
        );
        expect(genoa.code).toBe("CHAIN_INVALID");
        // A truncated certificate is malformed, not a crash.
        const cut = await rejection(verifySnp(report, [chain[0]!.subarray(0, 200)], { now }));
        expect(cut.code).toBe("MALFORMED");
        expect((await rejection(verifySnp(report, [], { now }))).code).toBe("CHAIN_INVALID");
      });

      it("rejects expired and not-yet-valid certificates", async () => {
        const late = await rejection(verifySnp(report, chain, { now: new Date("2031-01-01") }));
        expect(late.code).toBe("EXPIRED");
        expect(late.field).toBe("vcek");
        const early = await rejection(verifySnp(report, chain, { now: new Date("2019-01-01") }));
        expect(early.code).toBe("EXPIRED");
      });
    });
  }

  it("rejects a report re-signed by a chain that does not end at a pinned ARK", async () => {
    const s = SNP_SAMPLES[1]!;
    const report = parseSnpReport(bytes(s.report));
    const tcb = decodeTcb(report.reportedTcb, "Milan");
    const ext = (n: string, v: number) =>
      `1.3.6.1.4.1.3704.1.3.${n}=DER:02:01:${v.toString(16).padStart(2, "0")}`;
    const fake = makeFakeChain({
      rootCn: "ARK-Milan",
      intermediateCn: "SEV-Milan",
      leafCn: "SEV-VCEK",
      curve: "secp384r1",
      rsaPss: true,
      leafExtensions: [
        ext("1", tcb.bootloader),
        ext("2", tcb.tee),
        ext("3", tcb.snp),
        ext("8", tcb.microcode),
        `1.3.6.1.4.1.3704.1.4=DER:${toHex(report.chipId).replace(/(..)(?!$)/g, "$1:")}`,
      ],
    });
    const key = await crypto.subtle.importKey(
      "pkcs8",
      fake.leafKey,
      { name: "ECDSA", namedCurve: "P-384" },
      false,
      ["sign"],
    );
    const resigned = Uint8Array.from(report.raw);
    const sig = new Uint8Array(
      await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-384" },
        key,
        resigned.subarray(0, SNP_SIGNED_SIZE),
      ),
    );
    resigned.fill(0, SNP_SIGNED_SIZE);
    resigned.set(sig.subarray(0, 48).reverse(), SNP_SIGNED_SIZE);
    resigned.set(sig.subarray(48).reverse(), SNP_SIGNED_SIZE + 72);
    const now = new Date();
    const full = await rejection(verifySnp(resigned, fake.certs, { now }));
    expect(full.code).toBe("UNTRUSTED_ROOT");
    const noRoot = await rejection(verifySnp(resigned, fake.certs.slice(0, 2), { now }));
    expect(noRoot.code).toBe("UNTRUSTED_ROOT");
    // The fake VCEK with AMD's real chain: the real ASK did not sign it.
    const mixed = await rejection(
      verifySnp(resigned, [fake.certs[0]!, ...certs(...s.certs).slice(1)], { now }),
    );
    expect(mixed.code).toBe("CHAIN_INVALID");
  });

  it("caches verified chains but still checks validity", async () => {
    const s = SNP_SAMPLES[0]!;
    const cache = new ChainCache();
    const now = new Date(s.now);
    await verifySnp(bytes(s.report), certs(...s.certs), { now, cache });
    expect(cache.size).toBe(1);
    await verifySnp(bytes(s.report), certs(...s.certs), { now, cache });
    expect(cache.size).toBe(1);
    const err = await rejection(
      verifySnp(bytes(s.report), certs(...s.certs), { now: new Date("2031-01-01"), cache }),
    );
    expect(err.code).toBe("EXPIRED");
  });
});

describe("SEV-SNP report layout", () => {
  it("decodes Milan/Genoa and Turin TCB layouts", () => {
    const raw = 0x4400000000000302n; // microcode 0x44, SNP byte 6 = 0, TEE 3? see bytes below
    expect(decodeTcb(0x4408000000000003n, "Milan")).toEqual({
      bootloader: 3,
      tee: 0,
      snp: 8,
      microcode: 0x44,
    });
    expect(decodeTcb(0x4400000005040302n, "Turin")).toEqual({
      fmc: 2,
      bootloader: 3,
      tee: 4,
      snp: 5,
      microcode: 0x44,
    });
    expect(decodeTcb(raw, "Genoa").microcode).toBe(0x44);
  });

  it("maps CPUID family/model to products", () => {
    expect(productFromCpuid(0x19, 0x01)).toBe("Milan");
    expect(productFromCpuid(0x19, 0x11)).toBe("Genoa");
    expect(productFromCpuid(0x19, 0xa0)).toBe("Genoa");
    expect(productFromCpuid(0x1a, 0x02)).toBe("Turin");
    expect(productFromCpuid(0x17, 0x31)).toBeUndefined();
  });

  it("parses v3+ fields (CPUID) and v5 mitigation vectors from a synthetic layout", () => {
    const raw = new Uint8Array(SNP_REPORT_SIZE);
    const v = new DataView(raw.buffer);
    v.setUint32(0, 5, true);
    v.setUint32(0x34, 1, true);
    v.setUint32(0x48, 1 << 2, true); // signing key: VLEK
    raw[0x188] = 0x1a;
    raw[0x189] = 0x02;
    raw[0x18a] = 0x01;
    v.setBigUint64(0x1f8, 7n, true);
    v.setBigUint64(0x200, 9n, true);
    const r = parseSnpReport(raw);
    expect(r.version).toBe(5);
    expect(r.signingKey).toBe("vlek");
    expect([r.cpuidFamId, r.cpuidModId, r.cpuidStep]).toEqual([0x1a, 0x02, 0x01]);
    expect([r.launchMitVector, r.currentMitVector]).toEqual([7n, 9n]);
    v.setUint32(0, 1, true);
    expect(() => parseSnpReport(raw)).toThrow(/version 1/);
  });
});
