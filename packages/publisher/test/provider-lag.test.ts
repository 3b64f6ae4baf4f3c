// whileProviderLags: the retry both deploy paths (SDK/CLI and web app) use while a provider does not see the
// channel or the new rate yet. RpcError comes from the p2p main entry, as callSignedUnary throws it in Node.
import { RpcError } from "@trustedpods/p2p";
import { ErrorCode } from "@trustedpods/protocol";
import { describe, expect, it } from "vitest";
import { isProviderLag, whileProviderLags } from "../src/provider-lag.js";

const lag = (field: string) =>
  new RpcError(ErrorCode.PAYMENT_REQUIRED, "channel not on chain yet", { details: { field }, remote: true });

describe("whileProviderLags", () => {
  it("asks again while the provider does not see the channel, then returns its answer", async () => {
    let calls = 0;
    const r = await whileProviderLags("channel", Date.now() + 10_000, async () => {
      if (++calls < 3) throw lag("channel");
      return "provisioned";
    });
    expect([r, calls]).toEqual(["provisioned", 3]);
  });

  it("throws any other refusal at once, and the lag itself after the deadline", async () => {
    let calls = 0;
    const other = new RpcError(ErrorCode.PAYMENT_REQUIRED, "deposit too small", {
      details: { field: "deposit" },
    });
    await expect(
      whileProviderLags("channel", Date.now() + 10_000, async () => {
        calls++;
        throw other;
      }),
    ).rejects.toBe(other);
    expect(calls).toBe(1);
    const started = Date.now();
    await expect(
      whileProviderLags("ratePerSecond", Date.now() + 300, async () => {
        throw lag("ratePerSecond");
      }),
    ).rejects.toMatchObject({ code: ErrorCode.PAYMENT_REQUIRED, details: { field: "ratePerSecond" } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(isProviderLag(lag("channel"), "ratePerSecond")).toBe(false);
    expect(isProviderLag(new Error("PAYMENT_REQUIRED"), "channel")).toBe(false);
  });
});
