// The deploy flow's pure parts: the deposit arithmetic and its actionable error, rounding of the suggestion, the
// quote's unsigned terms (and the fallback for daemons that do not send them), waiting for confirmations on a real
// anvil, endpoints in the CLI's shape, and the encryption key id a secret's keyRef must carry (RFC 7638, as the
// daemon computes it). The flow itself runs end to end in packages/cli/test/deploy.test.ts.
import { generateKeyPairSync } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { startDevChain } from "@trustedpods/chain/node";
import { EndpointSchema, QuoteSchema } from "@trustedpods/protocol";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_MIN_DEPOSIT_SECONDS,
  DEFAULT_RUN_SECONDS,
  DEPOSIT_MARGIN_SECONDS,
  depositFor,
  describeTerms,
  endpointsFromWire,
  PublisherError,
  quotedTerms,
  roundUpAmount,
  waitForConfirmations,
} from "../src/index.js";
import { encryptionKeyId } from "../src/node/index.js";

describe("deposit", () => {
  it("defaults to hours of running (DEFAULT_RUN_SECONDS), at least the minimum plus the margin, rounded up", () => {
    expect(DEFAULT_RUN_SECONDS).toBe(6 * 3600);
    // 100 × 21600 = 2160000, rounded up to two significant digits.
    expect(depositFor({ ratePerSecond: 100n, decimals: 18 })).toBe(2_200_000n);
    expect(depositFor({ ratePerSecond: 7n, decimals: 18, minDepositSeconds: 600 })).toBe(
      roundUpAmount(7n * BigInt(DEFAULT_RUN_SECONDS)),
    );
    // A provider that wants more than the default gets its minimum plus the margin.
    expect(depositFor({ ratePerSecond: 100n, decimals: 18, minDepositSeconds: 86400 })).toBe(
      roundUpAmount(100n * BigInt(86400 + DEPOSIT_MARGIN_SECONDS)),
    );
    expect(DEFAULT_MIN_DEPOSIT_SECONDS).toBe(3600);
  });

  it("keeps funds that pay for the minimum", () => {
    expect(depositFor({ ratePerSecond: 100n, decimals: 18, funds: 10n ** 9n })).toBe(10n ** 9n);
  });

  it("refuses too little with the issue's message and a suggestion that passes", () => {
    // 100 tokens/hour = 10^14 base units/s at 18 decimals; 600 s offered = 0.06 tokens.
    const rate = 10n ** 14n;
    const err = (() => {
      try {
        depositFor({ ratePerSecond: rate, funds: 600n * rate, decimals: 18 });
      } catch (e) {
        return e;
      }
    })() as PublisherError;
    expect(err).toBeInstanceOf(PublisherError);
    expect(err.code).toBe("DEPOSIT_TOO_SMALL");
    expect(err.field).toBe("funds");
    // (3600 + 60) s × 10^14 = 0.366 tokens, rounded up to two significant digits: 0.37.
    expect(err.message).toBe(
      "deposit too small: the provider wants 3600 s paid in advance (0.36), and deploy adds a 60 s margin because the deposit starts paying when the channel opens, a few blocks before the provider checks it: 3660 s at 0.36/hour is 0.366. You offered 600 s (0.06); use --funds 0.37 (3660 s, rounded up) or more. Without --funds, deploy pays for 6 h 0 min.",
    );
    expect(err.details).toMatchObject({
      minSeconds: "3600",
      marginSeconds: "60",
      needSeconds: "3660",
      needAmount: (3660n * rate).toString(),
      minAmount: (3600n * rate).toString(),
      minAmountFormatted: "0.36",
      offeredSeconds: "600",
      suggestedFormatted: "0.37",
    });
    const suggested = BigInt(err.details!.suggested!);
    expect(depositFor({ ratePerSecond: rate, funds: suggested, decimals: 18 })).toBe(suggested);
  });

  it("names the token and the caller's own way to set the funds", () => {
    const err = (() => {
      try {
        depositFor({
          ratePerSecond: 10n ** 12n,
          funds: 10n ** 12n,
          minDepositSeconds: 600,
          decimals: 18,
          symbol: "TPOD",
          fundsFlag: "the Funds field",
        });
      } catch (e) {
        return e;
      }
    })() as PublisherError;
    expect(err.code).toBe("DEPOSIT_TOO_SMALL");
    expect(err.message).toBe(
      "deposit too small: the provider wants 600 s paid in advance (0.0006 TPOD), and deploy adds a 60 s margin because the deposit starts paying when the channel opens, a few blocks before the provider checks it: 660 s at 0.0036 TPOD/hour is 0.00066 TPOD. You offered 1 s (0.000001 TPOD); use the Funds field 0.00066 (660 s, rounded up) or more. Without the Funds field, deploy pays for 6 h 0 min.",
    );
  });

  it("rounds amounts up to two significant digits, never down", () => {
    expect(roundUpAmount(366n)).toBe(370n);
    expect(roundUpAmount(360n)).toBe(360n);
    expect(roundUpAmount(361n)).toBe(370n);
    expect(roundUpAmount(99n)).toBe(99n);
    expect(roundUpAmount(991n)).toBe(1000n);
    expect(roundUpAmount(0n)).toBe(0n);
  });
});

describe("quote terms", () => {
  const wire = (minDepositSeconds: bigint, confirmations: number) =>
    create(QuoteSchema, { minDepositSeconds, confirmations, minNoticeSeconds: 60n });

  it("takes the quoted minimum and confirmations", () => {
    expect(quotedTerms(wire(600n, 3))).toEqual({
      minDepositSeconds: 600,
      confirmations: 3,
      minNoticeSeconds: 60,
      quoted: true,
    });
    // The quoted minimum wins over the caller's fallback, in both directions.
    expect(quotedTerms(wire(7200n, 0), 600).minDepositSeconds).toBe(7200);
    expect(quotedTerms(wire(600n, 0), 7200).minDepositSeconds).toBe(600);
  });

  it("falls back to the daemon default (or the caller's) when an older daemon sends 0", () => {
    expect(quotedTerms(wire(0n, 0))).toMatchObject({
      minDepositSeconds: DEFAULT_MIN_DEPOSIT_SECONDS,
      quoted: false,
    });
    expect(quotedTerms(wire(0n, 0), 900).minDepositSeconds).toBe(900);
    expect(describeTerms(quotedTerms(wire(0n, 0)), 2n, String)).toBe(
      "minimum paid time 3600 s (7200) assumed: the provider's quote does not say, notice ≥ 60 s, 0 confirmations",
    );
    expect(describeTerms(quotedTerms(wire(600n, 1)), 2n, String)).toBe(
      "minimum paid time 600 s (1200), notice ≥ 60 s, 1 confirmation",
    );
  });

  it("refuses terms beyond the daemon's own bounds as a malformed quote", () => {
    for (const [w, field] of [
      [wire(10n * 365n * 86400n + 1n, 0), "minDepositSeconds"],
      [wire(600n, 1001), "confirmations"],
    ] as const) {
      const err = (() => {
        try {
          quotedTerms(w);
        } catch (e) {
          return e;
        }
      })() as PublisherError;
      expect(err).toBeInstanceOf(PublisherError);
      expect([err.code, err.field]).toEqual(["QUOTE_INVALID", field]);
    }
  });

  it("waits for blocks on top of the channel's block on a real anvil, and gives up at the deadline", async () => {
    const chain = await startDevChain({ accounts: 1 });
    try {
      const at = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
      const mine = () => chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
      // Nothing mines: not reached by the deadline.
      expect(await waitForConfirmations(chain.publicClient, at, 2, Date.now() + 300)).toBe(false);
      // 0 confirmations: the block itself is enough.
      expect(await waitForConfirmations(chain.publicClient, at, 0, Date.now())).toBe(true);
      const waiting = waitForConfirmations(chain.publicClient, at, 2, Date.now() + 30_000);
      await mine();
      await mine();
      expect(await waiting).toBe(true);
      expect(await chain.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(at + 2n);
    } finally {
      await chain.stop();
    }
  }, 60_000);
});

describe("endpoints", () => {
  it("splits http URLs and tcp addresses", () => {
    const e = endpointsFromWire([
      create(EndpointSchema, {
        container: "web",
        containerPort: 8080,
        target: { case: "httpUrl", value: "http://a.localhost:8080/" },
      }),
      create(EndpointSchema, {
        container: "db",
        containerPort: 6379,
        target: { case: "tcpAddress", value: "127.0.0.1:4000" },
      }),
      create(EndpointSchema, { container: "x", containerPort: 1, target: { case: "httpUrl", value: "" } }),
      create(EndpointSchema, {
        container: "dns",
        containerPort: 53,
        target: { case: "udpAddress", value: "127.0.0.1:4001" },
      }),
    ]);
    expect(e).toEqual({
      http: ["http://a.localhost:8080/"],
      tcp: [{ container: "db", port: 6379, address: "127.0.0.1:4000" }],
      udp: [{ container: "dns", port: 53, address: "127.0.0.1:4001" }],
    });
  });
});

describe("encryption key id", () => {
  it("is the RFC 7638 thumbprint of the attested P-256 key (what the daemon requires as keyRef)", async () => {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const spki = publicKey.export({ format: "der", type: "spki" });
    const { calculateJwkThumbprint } = await import("jose");
    const jwk = publicKey.export({ format: "jwk" });
    expect(encryptionKeyId(new Uint8Array(spki))).toBe(await calculateJwkThumbprint(jwk as never));
  });
});
