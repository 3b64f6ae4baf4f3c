import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bytes,
  describeWithSamples,
  flip,
  goTdxGuestCollateral,
  INTEL_SAMPLES,
  text,
} from "../../../test-support/attestation-samples.js";
import {
  AttestationError,
  ChainCache,
  concat,
  type DcapCollateral,
  parseIntelQuote,
  toHex,
  verifyIntelQuote,
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

function u16(n: number): Uint8Array {
  return new Uint8Array([n & 0xff, n >> 8]);
}
function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

/** Rebuilds a v4 quote with another PCK chain and QE report signature (everything else byte for byte). */
function withPckChain(raw: Uint8Array, pem: string, qeSig: Uint8Array): Uint8Array {
  const q = parseIntelQuote(raw);
  const certData = new TextEncoder().encode(pem);
  const inner = concat(
    q.qeReport.raw,
    qeSig,
    u16(q.qeAuthData.length),
    q.qeAuthData,
    u16(5),
    u32(certData.length),
    certData,
  );
  const sigData = concat(q.signature, q.attestationKey, u16(6), u32(inner.length), inner);
  return concat(q.signedBytes, u32(sigData.length), sigData);
}

describeWithSamples("TDX and SGX verification of real quotes", () => {
  for (const s of INTEL_SAMPLES) {
    describe(s.name, () => {
      const raw = bytes(s.quote);
      const collateral = s.collateral ? text(s.collateral) : undefined;
      const now = new Date(s.now);
      const quote = parseIntelQuote(raw);
      const certStart = raw.length - quote.paddingBytes - quote.certData.length;

      it("verifies with the stated results", async () => {
        const ev = await verifyIntelQuote(raw, collateral, { now });
        expect(ev.tee).toBe(s.tee);
        expect(ev.version).toBe(s.version);
        expect(ev.tcbStatus).toBe(s.tcbStatus);
        expect(ev.advisoryIds).toEqual(s.advisoryIds);
        expect(ev.reportData).toHaveLength(64);
        expect(ev.measurement).toHaveLength(s.tee === "tdx" ? 48 : 32);
        expect(ev.debug).toBe(false);
      });

      if (collateral) {
        it("without collateral the TCB status is Unknown", async () => {
          const ev = await verifyIntelQuote(raw, undefined, { now });
          expect(ev.tcbStatus).toBe("Unknown");
          expect(ev.warnings.join()).toMatch(/no DCAP collateral/);
        });
      }

      it("rejects a flipped byte in the signed header and body", async () => {
        // Report data, measurement region and a header byte past the version fields.
        for (const off of [quote.signedBytes.length - 1, quote.signedBytes.length - 100, 200, 30]) {
          const err = await rejection(verifyIntelQuote(flip(raw, off), collateral, { now }));
          expect(err.code).toBe("SIGNATURE_INVALID");
        }
      });

      it("rejects a flipped QE report, QE signature or QE auth data byte", async () => {
        const qeOff = quote.signedBytes.length + 4 + 128 + (quote.version >= 4 ? 6 : 0);
        for (const off of [qeOff + 10, qeOff + 384 - 1, qeOff + 384 + 5]) {
          const err = await rejection(verifyIntelQuote(flip(raw, off), collateral, { now }));
          expect(err.code).toBe("QE_REPORT_INVALID");
        }
        if (quote.qeAuthData.length > 0) {
          const err = await rejection(verifyIntelQuote(flip(raw, qeOff + 384 + 64 + 2), collateral, { now }));
          expect(err.code).toBe("QE_REPORT_INVALID");
          expect(err.field).toBe("qeReport.reportData");
        }
      });

      it("rejects any random byte flip before the certificates and never crashes", async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 0, max: certStart - 1 }),
            fc.integer({ min: 1, max: 255 }),
            async (off, mask) => {
              const err = await rejection(verifyIntelQuote(flip(raw, off, mask), collateral, { now }));
              expect(err.code).toMatch(/^[A-Z_]+$/);
            },
          ),
          { numRuns: 100 },
        );
      });

      it("rejects flipped certificate bytes", async () => {
        // Inside the base64 of the PCK certificate's signature and of the intermediate CA.
        for (const off of [certStart + 700, certStart + 1300]) {
          const err = await rejection(verifyIntelQuote(flip(raw, off, 0x02), collateral, { now }));
          expect(["CHAIN_INVALID", "MALFORMED", "QE_REPORT_INVALID", "CERT_MISMATCH"]).toContain(err.code);
        }
      });

      it("rejects truncation anywhere", async () => {
        for (const len of [
          0,
          10,
          47,
          48,
          quote.signedBytes.length,
          quote.signedBytes.length + 100,
          certStart + 50,
          certStart + quote.certData.length - 1,
        ]) {
          const err = await rejection(verifyIntelQuote(raw.subarray(0, len), collateral, { now }));
          expect(["MALFORMED", "CHAIN_INVALID"], `len ${len}: ${err.message}`).toContain(err.code);
        }
      });

      it("rejects expired certificates", async () => {
        const err = await rejection(verifyIntelQuote(raw, undefined, { now: new Date("2034-01-01") }));
        expect(err.code).toBe("EXPIRED");
        const early = await rejection(verifyIntelQuote(raw, undefined, { now: new Date("2017-01-01") }));
        expect(early.code).toBe("EXPIRED");
      });
    });
  }

  it("rejects PCK chains swapped between quotes", async () => {
    const a = parseIntelQuote(bytes("dcap-qvl/tdx_quote"));
    const b = parseIntelQuote(bytes("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat"));
    const swapped = withPckChain(
      a.signedBytes.length ? bytes("dcap-qvl/tdx_quote") : new Uint8Array(),
      new TextDecoder().decode(b.certData),
      a.qeReportSignature,
    );
    const err = await rejection(verifyIntelQuote(swapped, undefined, { now: new Date("2025-07-01") }));
    expect(err.code).toBe("QE_REPORT_INVALID");
    expect(err.field).toBe("qeReportSignature");
  });

  it("rejects collateral for another platform or TEE", async () => {
    const now = new Date("2025-07-01");
    const tdxWithSgx = await rejection(
      verifyIntelQuote(bytes("dcap-qvl/tdx_quote"), text("dcap-qvl/sgx_quote_collateral.json"), { now }),
    );
    expect(tdxWithSgx.code).toBe("COLLATERAL_INVALID");
    const sgxWithTdx = await rejection(
      verifyIntelQuote(bytes("dcap-qvl/sgx_quote"), text("dcap-qvl/tdx_quote_collateral.json"), { now }),
    );
    expect(sgxWithTdx.code).toBe("COLLATERAL_INVALID");
  });

  it("rejects tampered, expired or malformed collateral", async () => {
    const raw = bytes("dcap-qvl/sgx_quote");
    const col = JSON.parse(text("dcap-qvl/sgx_quote_collateral.json")) as DcapCollateral;
    const now = new Date("2025-07-01");
    const tampered = {
      ...col,
      tcb_info: col.tcb_info.replace('"tcbStatus":"OutOfDate"', '"tcbStatus":"UpToDate"'),
    };
    expect(tampered.tcb_info).not.toBe(col.tcb_info);
    const t = await rejection(verifyIntelQuote(raw, tampered, { now }));
    expect(t.code).toBe("COLLATERAL_INVALID");
    expect(t.field).toBe("tcb_info");
    const qe = await rejection(
      verifyIntelQuote(
        raw,
        { ...col, qe_identity: col.qe_identity.replace('"isvprodid":1', '"isvprodid":2') },
        { now },
      ),
    );
    expect(qe.field).toBe("qe_identity");
    const late = await rejection(verifyIntelQuote(raw, col, { now: new Date("2025-09-01") }));
    expect(late.code).toBe("EXPIRED");
    const crl = await rejection(
      verifyIntelQuote(raw, { ...col, pck_crl: col.pck_crl.slice(0, 100) }, { now }),
    );
    expect(crl.code).toBe("MALFORMED");
    const missing = await rejection(verifyIntelQuote(raw, JSON.stringify({ tcb_info: "{}" }), { now }));
    expect(missing.code).toBe("COLLATERAL_INVALID");
  });

  it("rejects collateral signed by a chain that does not end at the Intel root", async () => {
    const fake = makeFakeChain({
      rootCn: "Intel SGX Root CA",
      intermediateCn: "Intel SGX TCB CA",
      leafCn: "Intel SGX TCB Signing",
      curve: "prime256v1",
      rsaPss: false,
    });
    const col = JSON.parse(text("dcap-qvl/sgx_quote_collateral.json")) as DcapCollateral;
    const key = await crypto.subtle.importKey(
      "pkcs8",
      fake.leafKey,
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign"],
    );
    const sig = new Uint8Array(
      await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        key,
        new TextEncoder().encode(col.tcb_info),
      ),
    );
    const forged = { ...col, tcb_info_issuer_chain: fake.pem, tcb_info_signature: toHex(sig) };
    const err = await rejection(
      verifyIntelQuote(bytes("dcap-qvl/sgx_quote"), forged, { now: new Date("2025-07-01") }),
    );
    expect(err.code).toBe("UNTRUSTED_ROOT");
  });

  it("rejects a quote whose PCK chain does not end at the Intel root", async () => {
    const fake = makeFakeChain({
      rootCn: "Intel SGX Root CA",
      intermediateCn: "Intel SGX PCK Platform CA",
      leafCn: "Intel SGX PCK Certificate",
      curve: "prime256v1",
      rsaPss: false,
    });
    const raw = bytes("dcap-qvl/tdx_quote");
    const q = parseIntelQuote(raw);
    const key = await crypto.subtle.importKey(
      "pkcs8",
      fake.leafKey,
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign"],
    );
    const qeSig = new Uint8Array(
      await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, Uint8Array.from(q.qeReport.raw)),
    );
    const forged = withPckChain(raw, fake.pem, qeSig);
    const err = await rejection(verifyIntelQuote(forged, undefined, { now: new Date() }));
    expect(err.code).toBe("UNTRUSTED_ROOT");
    // Sanity: the rebuilt quote with the original chain and signature still verifies.
    const same = withPckChain(raw, new TextDecoder().decode(q.certData), q.qeReportSignature);
    expect((await verifyIntelQuote(same, undefined, { now: new Date("2025-07-01") })).tee).toBe("tdx");
  });

  it("go-tdx-guest's Intel PCS collateral verifies, and its TCB levels do not cover the SPR_E4 quote", async () => {
    const err = await rejection(
      verifyIntelQuote(bytes("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat"), goTdxGuestCollateral(), {
        now: new Date("2023-07-01"),
      }),
    );
    // Signatures, chains and CRLs hold; TEE_TCB_SVN 03 00 04 is below every level's TDX components (… 05).
    expect(err.code).toBe("TCB_NOT_SUPPORTED");
    const expired = await rejection(
      verifyIntelQuote(bytes("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat"), goTdxGuestCollateral(), {
        now: new Date("2025-06-01"),
      }),
    );
    expect(expired.code).toBe("EXPIRED");
  });

  it("rejects report.dat: a TDREPORT is not a quote", async () => {
    const err = await rejection(verifyIntelQuote(bytes("tdx/go-tdx-guest/report.dat"), undefined));
    expect(err.code).toBe("MALFORMED");
    expect(err.message).toMatch(/TDREPORT/);
  });

  it("parses the v5 TDX 1.5 body and the SGX v3 body", () => {
    const v5 = parseIntelQuote(bytes("tdx/go-tdx-guest/quote_v5_sample.dat"));
    expect(v5.bodyType).toBe(3);
    expect(v5.td?.mrServiceTd).toHaveLength(48);
    expect(v5.td?.teeTcbSvn2).toHaveLength(16);
    const sgx = parseIntelQuote(bytes("dcap-qvl/sgx_quote"));
    expect(sgx.tee).toBe("sgx");
    expect(sgx.enclave?.mrEnclave).toHaveLength(32);
    expect(new TextDecoder().decode(sgx.enclave!.reportData.subarray(0, 13))).toBe("Hello, world!");
  });

  it("rejects an SGX quote presented as TDX and vice versa", async () => {
    const err = await rejection(
      verifyIntelQuote(bytes("dcap-qvl/sgx_quote"), undefined, { expectTee: "tdx" }),
    );
    expect(err.code).toBe("UNSUPPORTED");
  });

  it("caches the PCK chain", async () => {
    const cache = new ChainCache();
    const now = new Date("2025-07-01");
    await verifyIntelQuote(bytes("dcap-qvl/tdx_quote"), undefined, { now, cache });
    await verifyIntelQuote(bytes("dcap-qvl/tdx_quote"), undefined, { now, cache });
    expect(cache.size).toBe(1);
  });
});
