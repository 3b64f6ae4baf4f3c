// The deploy flow's pure parts: the deposit arithmetic and its actionable error, rounding of the suggestion,
// endpoints in the CLI's shape, and the encryption key id a secret's keyRef must carry (RFC 7638, as the daemon
// computes it). The flow itself runs end to end in packages/cli/test/deploy.test.ts.
import { generateKeyPairSync } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { EndpointSchema } from "@trustedpods/protocol";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_MIN_DEPOSIT_SECONDS,
  DEPOSIT_MARGIN_SECONDS,
  depositFor,
  endpointsFromWire,
  PublisherError,
  roundUpAmount,
} from "../src/index.js";
import { encryptionKeyId } from "../src/node/index.js";

describe("deposit", () => {
  it("defaults to the minimum run time plus the margin at the quoted rate", () => {
    expect(depositFor({ ratePerSecond: 100n, decimals: 18 })).toBe(
      100n * BigInt(DEFAULT_MIN_DEPOSIT_SECONDS + DEPOSIT_MARGIN_SECONDS),
    );
    expect(depositFor({ ratePerSecond: 7n, decimals: 18, minDepositSeconds: 600 })).toBe(7n * 660n);
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
      "deposit too small: the provider wants at least 3600 s, you offered 600 s; use --funds 0.37",
    );
    expect(err.details).toMatchObject({
      minSeconds: "3600",
      offeredSeconds: "600",
      suggestedFormatted: "0.37",
    });
    const suggested = BigInt(err.details!.suggested!);
    expect(depositFor({ ratePerSecond: rate, funds: suggested, decimals: 18 })).toBe(suggested);
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
    ]);
    expect(e).toEqual({
      http: ["http://a.localhost:8080/"],
      tcp: [{ container: "db", port: 6379, address: "127.0.0.1:4000" }],
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
