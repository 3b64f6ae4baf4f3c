import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatDiagnostic, ManifestError } from "../src/diagnostics.js";
import { parseManifest } from "../src/manifest.js";
import {
  billedUnits,
  formatTokenAmount,
  type Pricing,
  PricingError,
  parsePricing,
  podPrice,
  pricingFromWire,
  pricingToWire,
} from "../src/pricing.js";
import { validPod } from "./arbitraries.js";

const pod = (spec: string) =>
  parseManifest(`apiVersion: trustedpods/v1\nkind: Pod\nmetadata: {name: p}\nspec:\n${spec}`, "p.yaml");

const TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const pricing: Pricing = { token: TOKEN, prices: { cpu: 3n, memory: 5n, storage: 7n, gpu: 1_000_000n } };

describe("pricing math", () => {
  it("sums containers, rounds each total up once, bills max replicas and persistent volumes once", () => {
    const p = pod(`  replicas: {min: 0, max: 3}
  containers:
    - {name: a, image: busybox, ports: [{containerPort: 80, http: {}}], resources: {cpu: 250m, memory: 100Mi, storage: 512Mi}}
    - {name: b, image: busybox, resources: {cpu: 1, memory: 2M, storage: 0}}
  volumes:
    - {name: d, persistent: {size: 10Gi}}
`);
    // per replica: 1250m, 100Mi + 2000000 B, 512Mi; ×3 replicas (320572800 B → 306 MiB); storage adds 10Gi once.
    expect(billedUnits(p)).toEqual({ replicas: 3, cpu: 3750n, memory: 306n, storage: 12n, gpu: 0n });
    const price = podPrice(p, pricing);
    expect(price.lines.map((l) => [l.resource, l.units, l.perSecond])).toEqual([
      ["cpu", 3750n, 11250n],
      ["memory", 306n, 1530n],
      ["storage", 12n, 84n],
      ["gpu", 0n, 0n],
    ]);
    expect(price.perSecond).toBe(11250n + 1530n + 84n);
  });

  it("refuses a pod that needs a resource the pricing does not offer", () => {
    const p = pod("  containers: [{name: a, image: busybox, resources: {gpu: 2}}]\n");
    expect(() => podPrice(p, { token: TOKEN, prices: { cpu: 1n, memory: 1n, storage: 1n } })).toThrow(
      new PricingError("RESOURCE_NOT_OFFERED", "the pricing offers no gpu, but the pod needs 2 GPU"),
    );
  });

  it("is monotonic: more replicas never cost less", () => {
    fc.assert(
      fc.property(validPod(), fc.integer({ min: 1, max: 50 }), (p, extra) => {
        const more = { ...p, replicas: { ...p.replicas, max: Math.min(100, p.replicas.max + extra) } };
        expect(podPrice(more, pricing).perSecond >= podPrice(p, pricing).perSecond).toBe(true);
      }),
    );
  });

  it("formats token amounts exactly", () => {
    expect(formatTokenAmount(1_500_000n, 6, "USDC")).toBe("1.5 USDC");
    expect(formatTokenAmount(1n, 18)).toBe("0.000000000000000001");
    expect(formatTokenAmount(12_000_000_000_000_000_000n, 18, "ETH")).toBe("12 ETH");
    expect(formatTokenAmount(0n, 6)).toBe("0");
    expect(formatTokenAmount(42n, 0)).toBe("42");
  });

  it("pricing tables round-trip through the wire", () => {
    expect(pricingFromWire(pricingToWire(pricing))).toEqual(pricing);
    const partial: Pricing = { token: TOKEN, prices: { memory: 10n ** 40n } };
    expect(pricingFromWire(pricingToWire(partial))).toEqual(partial);
  });
});

describe("pricing files", () => {
  it("reads token, symbol, decimals and prices exactly (no float rounding of big prices)", () => {
    expect(
      parsePricing(
        `token: "${TOKEN}"\nsymbol: USDC\ndecimals: 6\nprices:\n  cpu: 123456789012345678901234567890\n  memory: "2"\n`,
        "pricing.yaml",
      ),
    ).toEqual({
      token: TOKEN,
      symbol: "USDC",
      decimals: 6,
      prices: { cpu: 123456789012345678901234567890n, memory: 2n },
    });
  });

  it("reports every error with its position", () => {
    try {
      parsePricing(`token: 0x12\nsymbol: USDC\nprices:\n  cpu: 1.5\n  ram: 2\n`, "pricing.yaml");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ManifestError);
      expect((e as ManifestError).diagnostics.map(formatDiagnostic)).toEqual([
        `pricing.yaml:1:1: the pricing file needs "decimals"`,
        "pricing.yaml:1:8: token must be a string",
        `pricing.yaml:4:8: price of cpu must be a whole number of token base units, not "1.5"`,
        `pricing.yaml:5:3: unknown key "ram" in prices`,
      ]);
    }
  });
});
