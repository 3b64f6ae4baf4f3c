import { describe, expect, it } from "vitest";
import { certs, HAVE_TESTDATA } from "../../../test-support/attestation-samples.js";
import {
  INTEL_SGX_ROOT_CA_PEM,
  intelRoot,
  pemBlocks,
  ROOT_FINGERPRINTS,
  sha256,
  snpPinnedRoots,
  toHex,
  verifyChain,
  X509,
} from "../src/index.js";

describe("pinned roots", () => {
  it("match their audited SHA-256 fingerprints", async () => {
    for (const r of snpPinnedRoots()) {
      expect(toHex(await sha256(r.ark.der))).toBe(ROOT_FINGERPRINTS[`ARK_${r.product.toUpperCase()}`]);
      expect(r.ark.commonName).toBe(`ARK-${r.product}`);
    }
    expect(toHex(await sha256(pemBlocks(INTEL_SGX_ROOT_CA_PEM)[0]!))).toBe(
      ROOT_FINGERPRINTS.INTEL_SGX_ROOT_CA,
    );
    expect(intelRoot().commonName).toBe("Intel SGX Root CA");
  });

  it("each embedded ASK (RSA-PSS SHA-384) chains to its own product's ARK only", async () => {
    const now = new Date("2026-01-01");
    const roots = snpPinnedRoots();
    for (const r of roots) {
      expect(await verifyChain([r.ask], [r.ark], now)).toBe(r.ark);
      for (const other of roots.filter((o) => o !== r)) {
        await expect(verifyChain([r.ask], [other.ark], now)).rejects.toMatchObject({
          code: "UNTRUSTED_ROOT",
        });
      }
    }
  });

  it.skipIf(!HAVE_TESTDATA)(
    "AMD's published Milan, Genoa and Turin chains end at the pinned ARKs",
    async () => {
      const now = new Date("2026-01-01");
      for (const [file, product] of [
        ["milan", "Milan"],
        ["genoa", "Genoa"],
        ["turin_vcek", "Turin"],
      ] as const) {
        const [ask, ark] = certs(`sev-snp/go-sev-guest/ask_ark_${file}.pem`).map((d) => new X509(d));
        const pinned = snpPinnedRoots().find((r) => r.product === product)!;
        expect(ark!.sameAs(pinned.ark)).toBe(true);
        expect(await verifyChain([ask!, ark!], [pinned.ark], now)).toBe(pinned.ark);
      }
    },
  );
});
