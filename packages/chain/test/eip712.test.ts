import { createWalletClient, custom, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import {
  paymentsDomain,
  type Quote,
  recoverQuoteSigner,
  recoverVoucherSigner,
  SignerError,
  signQuote,
  signVoucher,
} from "../src/index.js";
import { devAccounts } from "../src/node.js";

const key = devAccounts(1)[0]!.privateKey;
const local = privateKeyToAccount(key);
const domain = paymentsDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3");
const quote: Quote = {
  provider: local.address,
  publisher: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  podId: `0x${"11".repeat(32)}` as Hex,
  token: "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
  ratePerSecond: 123n,
  minNoticeSeconds: 60,
  expiry: 2_000_000_000n,
  specHash: `0x${"22".repeat(32)}` as Hex,
  royaltiesHash: `0x${"33".repeat(32)}` as Hex,
};

describe("EIP-712 quotes and vouchers", () => {
  it("signs the same bytes with a local key and through a wallet client (browser wallet path)", async () => {
    // A wallet client whose transport answers eth_signTypedData_v4 the way a browser wallet would.
    const wallet = createWalletClient({
      account: local.address,
      transport: custom({
        async request({ method, params }) {
          if (method !== "eth_signTypedData_v4") throw new Error(`unexpected ${method}`);
          const typed = JSON.parse((params as [string, string])[1]);
          return local.signTypedData(typed);
        },
      }),
    });
    const a = await signQuote(local, domain, quote);
    const b = await signQuote(wallet, domain, quote);
    expect(b).toBe(a);
    expect(await recoverQuoteSigner(domain, quote, a)).toBe(local.address);
    const voucher = {
      publisher: local.address,
      provider: quote.provider,
      podId: quote.podId,
      cumulativeAmount: 5n,
    };
    const v = await signVoucher(wallet, domain, voucher);
    expect(await recoverVoucherSigner(domain, voucher, v)).toBe(local.address);
    expect(await recoverVoucherSigner(domain, { ...voucher, cumulativeAmount: 6n }, v)).not.toBe(
      local.address,
    );
  });

  it("refuses a wallet client without an account", async () => {
    const wallet = createWalletClient({ transport: custom({ request: async () => null }) });
    await expect(signQuote(wallet, domain, quote)).rejects.toBeInstanceOf(SignerError);
  });
});
