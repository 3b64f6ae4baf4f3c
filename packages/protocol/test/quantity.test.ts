import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatBytes, formatCpu, parseBytes, parseCount, parseCpu, QuantityError } from "../src/quantity.js";

describe("parseCpu", () => {
  it.each([
    ["500m", 500n],
    ["2", 2000n],
    ["0.5", 500n],
    [".25", 250n],
    ["1.5", 1500n],
    ["1e3", 1_000_000n],
    ["2000000u", 2000n],
  ])("%s is %s millicores", (input, expected) => {
    expect(parseCpu(input)).toBe(expected);
  });

  it("refuses sub-millicore precision and garbage", () => {
    expect(() => parseCpu("0.0005")).toThrow(/finer than one millicore/);
    expect(() => parseCpu("1.5.2")).toThrow(QuantityError);
    expect(() => parseCpu("-1")).toThrow(QuantityError);
    expect(() => parseCpu("")).toThrow(QuantityError);
    expect(() => parseCpu("1 Gi")).toThrow(QuantityError);
  });
});

describe("parseBytes", () => {
  it.each([
    ["512Mi", 536_870_912n],
    ["1Gi", 1_073_741_824n],
    ["1G", 1_000_000_000n],
    ["1.5Gi", 1_610_612_736n],
    ["100", 100n],
    ["64k", 64_000n],
  ])("%s is %s bytes", (input, expected) => {
    expect(parseBytes(input)).toBe(expected);
  });

  it("refuses fractional bytes", () => {
    expect(() => parseBytes("0.5")).toThrow(/finer than one byte/);
    expect(() => parseBytes("1m")).toThrow(/finer than one byte/);
  });

  it("counts are whole", () => {
    expect(parseCount("3")).toBe(3n);
    expect(() => parseCount("1.5")).toThrow(QuantityError);
  });
});

describe("formatting round-trips", () => {
  it("formatBytes then parseBytes is the identity", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 1n << 62n }), (n) => {
        expect(parseBytes(formatBytes(n))).toBe(n);
      }),
    );
  });
  it("formatCpu then parseCpu is the identity", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 12n }), (n) => {
        expect(parseCpu(formatCpu(n))).toBe(n);
      }),
    );
  });
  it("the parser throws only QuantityError on arbitrary strings", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          parseBytes(s);
        } catch (e) {
          expect(e).toBeInstanceOf(QuantityError);
        }
      }),
    );
  });
});
