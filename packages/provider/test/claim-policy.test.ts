// The claim policy as a pure function: batches, deferral and cadence from the gas price and what channels owe.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CLAIM_GAS, type ClaimCandidate, claimGas, gasCostInToken, planClaims } from "../src/index.js";

const GWEI = 10n ** 9n;
/** A token worth one ether per 10^18 base units (e.g. WETH): gas cost in token units = gas x gas price. */
const PAR = 10n ** 18n;

const ch = (podKey: string, owed: bigint, extra: Partial<ClaimCandidate> = {}): ClaimCandidate => ({
  podKey,
  owed,
  ratePerSecond: 1000n,
  royalties: 0,
  final: false,
  ...extra,
});
const plan = (
  candidates: ClaimCandidate[],
  o: { gasPrice?: bigint; minReturn?: bigint; maxBatch?: number } = {},
) =>
  planClaims({
    candidates,
    gasPrice: o.gasPrice ?? GWEI,
    tokenUnitsPerEther: PAR,
    minReturn: o.minReturn ?? 1n,
    maxBatch: o.maxBatch ?? 100,
  });
const keys = (l: ClaimCandidate[][]) => l.map((b) => b.map((c) => c.podKey));

describe("planClaims", () => {
  it("claims every channel with something owed when gas is not priced, in batches of at most maxBatch", () => {
    const cands = Array.from({ length: 5 }, (_, i) => ch(`p${i}`, BigInt(i)));
    const p = planClaims({
      candidates: cands,
      gasPrice: 50n * GWEI,
      tokenUnitsPerEther: undefined,
      minReturn: 2n,
      maxBatch: 2,
    });
    // p0 owes nothing: never a transaction for it. Largest first.
    expect(keys(p.batches)).toEqual([
      ["p4", "p3"],
      ["p2", "p1"],
    ]);
    expect(p.deferred).toEqual([]);
  });

  it("defers a channel that owes less than its share of the gas, and a batch whose total does not pay for it", () => {
    const entryCost = gasCostInToken(CLAIM_GAS.batchEntry, GWEI, PAR);
    expect(entryCost).toBe(CLAIM_GAS.batchEntry * GWEI);
    const big = ch("big", 10n ** 15n);
    const small = ch("small", entryCost - 1n);
    const p = plan([small, big]);
    expect(keys(p.batches)).toEqual([["big"]]);
    expect(p.deferred.map((c) => c.podKey)).toEqual(["small"]);
    // Two channels each paying their entry but not the transaction's base together: nothing is sent.
    const a = ch("a", entryCost);
    const b = ch("b", entryCost);
    const none = plan([a, b]);
    expect(none.batches).toEqual([]);
    expect(none.deferred.map((c) => c.podKey).sort()).toEqual(["a", "b"]);
  });

  it("asks minReturn times the gas of a running channel but only break-even of a final one", () => {
    const single = gasCostInToken(claimGas([ch("x", 1n)]), GWEI, PAR);
    const running = ch("running", single * 2n);
    const final = ch("final", single, { final: true, ratePerSecond: 0n });
    expect(keys(plan([running], { minReturn: 3n }).batches)).toEqual([]);
    expect(keys(plan([running], { minReturn: 2n }).batches)).toEqual([["running"]]);
    expect(keys(plan([final], { minReturn: 3n }).batches)).toEqual([["final"]]);
    expect(keys(plan([ch("f", single - 1n, { final: true })], { minReturn: 1n }).batches)).toEqual([]);
  });

  it("gives the claim cadence: seconds until the deferred channels pay for a batch at their rates", () => {
    const deferred = [
      ch("a", 0n + 1n, { ratePerSecond: 10n ** 9n }),
      ch("b", 1n, { ratePerSecond: 10n ** 9n }),
    ];
    const p = plan(deferred, { minReturn: 2n });
    expect(p.batches).toEqual([]);
    const need = gasCostInToken(claimGas(deferred), GWEI, PAR) * 2n - 2n;
    expect(p.nextClaimInSeconds).toBe((need + 2n * 10n ** 9n - 1n) / (2n * 10n ** 9n));
    // A higher gas price stretches the cadence in proportion.
    const dear = plan(deferred, { minReturn: 2n, gasPrice: 10n * GWEI });
    expect(dear.nextClaimInSeconds! > 9n * p.nextClaimInSeconds!).toBe(true);
    // Nothing accrues any more: no cadence (the refund settles it).
    expect(plan([ch("z", 1n, { ratePerSecond: 0n, final: true })]).nextClaimInSeconds).toBeUndefined();
  });

  it("prices royalty recipients: a channel paying three listings needs more owed to be worth a claim", () => {
    const plain = gasCostInToken(CLAIM_GAS.batchEntry, GWEI, PAR);
    const big = ch("big", 10n ** 16n);
    expect(keys(plan([big, ch("r0", plain)]).batches)).toEqual([["big", "r0"]]);
    expect(keys(plan([big, ch("r3", plain, { royalties: 3 })]).batches)).toEqual([["big"]]);
  });

  it("never plans a transaction whose gas costs more than it collects (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            owed: fc.bigInt({ min: 0n, max: 10n ** 16n }),
            royalties: fc.integer({ min: 0, max: 8 }),
            final: fc.boolean(),
          }),
          { maxLength: 60 },
        ),
        fc.bigInt({ min: 1n, max: 500n * GWEI }),
        fc.bigInt({ min: 1n, max: 5n }),
        fc.integer({ min: 1, max: 20 }),
        (entries, gasPrice, minReturn, maxBatch) => {
          const cands = entries.map((e, i) =>
            ch(`p${i}`, e.owed, { royalties: e.royalties, final: e.final }),
          );
          const p = planClaims({ candidates: cands, gasPrice, tokenUnitsPerEther: PAR, minReturn, maxBatch });
          const planned = p.batches.flat();
          for (const b of p.batches) {
            expect(b.length).toBeLessThanOrEqual(maxBatch);
            const owed = b.reduce((s, c) => s + c.owed, 0n);
            expect(owed).toBeGreaterThanOrEqual(gasCostInToken(claimGas(b), gasPrice, PAR));
          }
          // Every channel owing something is either planned or deferred, once.
          const owing = cands
            .filter((c) => c.owed > 0n)
            .map((c) => c.podKey)
            .sort();
          expect([...planned, ...p.deferred].map((c) => c.podKey).sort()).toEqual(owing);
        },
      ),
      { numRuns: 300 },
    );
  });
});
