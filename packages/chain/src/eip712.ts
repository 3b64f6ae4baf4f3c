import {
  type Address,
  type Hex,
  type LocalAccount,
  recoverTypedDataAddress,
  type TypedDataDomain,
  type WalletClient,
} from "viem";

/**
 * A provider's signed offer (EIP-712 `Quote`) for one pod of one publisher: the contract refuses a zero
 * `publisher` or `podId` (QuoteNotBound).
 */
export interface Quote {
  provider: Address;
  publisher: Address;
  podId: Hex;
  token: Address;
  /** Token units per second. */
  ratePerSecond: bigint;
  minNoticeSeconds: number;
  /** Unix seconds after which the quote can no longer open or re-rate a channel. */
  expiry: bigint;
  /** What the rate prices: `specHash(units)` of the pod's billed resources. */
  specHash: Hex;
  /** `royaltiesHash(list)` of the exact royalty list the channel must carry (one entry per listing the pod runs). */
  royaltiesHash: Hex;
}

/** A publisher-signed authorization to claim up to a cumulative amount (EIP-712 `Voucher`). */
export interface Voucher {
  publisher: Address;
  provider: Address;
  podId: Hex;
  cumulativeAmount: bigint;
}

export const quoteTypes = {
  Quote: [
    { name: "provider", type: "address" },
    { name: "publisher", type: "address" },
    { name: "podId", type: "bytes32" },
    { name: "token", type: "address" },
    { name: "ratePerSecond", type: "uint256" },
    { name: "minNoticeSeconds", type: "uint32" },
    { name: "expiry", type: "uint64" },
    { name: "specHash", type: "bytes32" },
    { name: "royaltiesHash", type: "bytes32" },
  ],
} as const;

export const voucherTypes = {
  Voucher: [
    { name: "publisher", type: "address" },
    { name: "provider", type: "address" },
    { name: "podId", type: "bytes32" },
    { name: "cumulativeAmount", type: "uint256" },
  ],
} as const;

/** The EIP-712 domain of a Payments deployment; it binds signatures to one chain and one contract. */
export function paymentsDomain(chainId: number, payments: Address): TypedDataDomain {
  return { name: "TrustedPods Payments", version: "1", chainId, verifyingContract: payments };
}

/**
 * Anything that can sign typed data: a local account (a key in the CLI or the provider daemon) or a viem
 * WalletClient (a browser wallet through window.ethereum). Only viem's signTypedData is used, so the wallet
 * shows the user the structured quote or voucher it signs.
 */
export type TypedDataSigner = LocalAccount | WalletClient;

/** Raised when a signer has no account to sign with. */
export class SignerError extends Error {
  override readonly name = "SignerError";
  readonly code = "SIGNER_WITHOUT_ACCOUNT";
}

function isWalletClient(signer: TypedDataSigner): signer is WalletClient {
  return (signer as { type?: string }).type === "walletClient";
}

async function signTyped(
  signer: TypedDataSigner,
  domain: TypedDataDomain,
  types: typeof quoteTypes | typeof voucherTypes,
  primaryType: "Quote" | "Voucher",
  message: Record<string, unknown>,
): Promise<Hex> {
  const params = { domain, types, primaryType, message } as Parameters<LocalAccount["signTypedData"]>[0];
  if (isWalletClient(signer)) {
    const account = signer.account;
    if (!account) throw new SignerError("the wallet client has no account: connect a wallet or pass one");
    return signer.signTypedData({ ...params, account } as Parameters<WalletClient["signTypedData"]>[0]);
  }
  return signer.signTypedData(params);
}

export function signQuote(signer: TypedDataSigner, domain: TypedDataDomain, quote: Quote): Promise<Hex> {
  return signTyped(signer, domain, quoteTypes, "Quote", { ...quote });
}

export function signVoucher(
  signer: TypedDataSigner,
  domain: TypedDataDomain,
  voucher: Voucher,
): Promise<Hex> {
  return signTyped(signer, domain, voucherTypes, "Voucher", { ...voucher });
}

/** Recovers the signer of a quote (an EOA); compare it with `quote.provider` before trusting the quote. */
export function recoverQuoteSigner(domain: TypedDataDomain, quote: Quote, signature: Hex): Promise<Address> {
  return recoverTypedDataAddress({
    domain,
    types: quoteTypes,
    primaryType: "Quote",
    message: quote,
    signature,
  });
}

export function recoverVoucherSigner(
  domain: TypedDataDomain,
  voucher: Voucher,
  signature: Hex,
): Promise<Address> {
  return recoverTypedDataAddress({
    domain,
    types: voucherTypes,
    primaryType: "Voucher",
    message: voucher,
    signature,
  });
}
