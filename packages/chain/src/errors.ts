import { BaseError, ContractFunctionRevertedError, decodeErrorResult, type Hex } from "viem";
import { marketplaceAbi, paymentsAbi, registryAbi, releasesAbi } from "./gen/index.js";

/** Every custom error the contracts can raise, for decoding raw revert data. */
export const contractErrorsAbi = [...paymentsAbi, ...registryAbi, ...marketplaceAbi, ...releasesAbi].filter(
  (item) => item.type === "error",
);

type Args = readonly unknown[];

/** What to do about each contract error, phrased for the person who has to fix it. */
const hints: Record<string, (a: Args) => string> = {
  ZeroAddress: () => "an address argument is zero: pass a real provider, token or recipient address",
  ZeroPodId: () => "the pod id is zero: derive a non-zero bytes32 pod id",
  NotAContract: (a) => `token ${a[0]} has no code on this chain: check the token address and the chain`,
  UnsupportedToken: (a) =>
    `token ${a[0]} moved ${a[2]} instead of ${a[1]}: fee-on-transfer or rebasing tokens are not supported, use a plain ERC-20`,
  ChannelNotFound: (a) => `no channel ${a[0]}: check publisher, provider and pod id (and that it was opened)`,
  ChannelExists: (a) => `channel ${a[0]} already exists or was used before: top it up, or use a new pod id`,
  ChannelIsClosing: (a) => `the channel is closing (accrual stops at ${a[1]}): open a new channel instead`,
  ChannelAlreadyClosed: (a) => `the channel already stopped accruing at ${a[1]}`,
  NoticeNotOver: (a) =>
    a[1] === 0n
      ? "the channel was not asked to close: call requestClose first"
      : `the notice period ends at ${a[1]} (now ${a[2]}): wait until then to refund`,
  QuoteExpired: (a) =>
    `the provider's quote expired at ${a[0]} (now ${a[1]}): ask the provider for a new quote`,
  QuoteNotForPublisher: (a) =>
    `the quote was made for publisher ${a[0]}, not ${a[1]}: ask for your own quote`,
  QuoteNotForPod: (a) => `the quote was made for pod ${a[0]}, not ${a[1]}: ask for a quote for this pod`,
  QuoteTokenMismatch: (a) =>
    `the quote is in token ${a[0]} but the channel uses ${a[1]}: ask for a quote in ${a[1]}`,
  InvalidQuoteSignature: (a) =>
    `the quote is not signed by provider ${a[0]}: get a quote signed by that provider`,
  InvalidVoucherSignature: (a) =>
    `the voucher is not signed by publisher ${a[0]}: use a voucher that publisher signed`,
  NoticeTooShort: (a) =>
    `notice of ${a[0]} s is below the provider's minimum of ${a[1]} s: raise the notice period`,
  RateTooLarge: (a) => `rate ${a[0]} exceeds the maximum ${a[1]} per second`,
  AmountTooLarge: (a) => `amount ${a[0]} exceeds the maximum ${a[1]}`,
  NothingToClaim: (a) =>
    `cumulative ${a[0]} is not above what was already claimed (${a[1]}): nothing to claim`,
  ClaimExceedsDeposit: (a) => `cumulative ${a[0]} exceeds the deposit ${a[1]}: claim at most the deposit`,
  ClaimExceedsAccrued: (a) =>
    `cumulative ${a[0]} exceeds what is allowed so far (${a[1]}): claim less or get a voucher`,
  TooManyRoyalties: (a) => `${a[0]} royalty recipients; at most ${a[1]} are allowed`,
  RoyaltiesExceedTotal: (a) => `royalty shares add up to ${a[0]} bps, more than 10000`,
  FreeFormRoyalty: (a) =>
    `royalty entry ${a[0]} names no listing: a channel pays royalties only to Marketplace listings the pod runs`,
  DuplicateListing: (a) => `listing ${a[0]} appears twice in the royalties: list each listing once`,
  RoyaltiesNotQuoted: (a) =>
    `the royalties (hash ${a[1]}) are not the ones the provider quoted (hash ${a[0]}): open the channel with the royalty list of the provider's quote`,
  QuoteNotBound: () =>
    "the quote is not bound to a publisher and a pod id: ask the provider for a quote for your address and this pod",
  TopUpTooSmall: (a) =>
    `the deposit ran out, and a top-up that restarts the pod must pay at least the notice period at the rate (${a[1]}); ${a[0]} is too little`,
  WaiveTooLong: (a) => `cannot waive ${a[0]} s: only ${a[1]} s have accrued since the channel's anchor`,
  ListingInactive: (a) => `listing ${a[0]} is inactive: its developer stopped new channels`,
  ListingNotFound: (a) => `listing ${a[0]} does not exist: check the listing id`,
  ListingRecipientMismatch: (a) =>
    `listing ${a[0]} pays developer ${a[1]}, not ${a[2]}: use the listing's developer`,
  RoyaltyNotAtListingTerms: (a) =>
    `listing ${a[0]} pays its developer exactly ${a[2]} bps; the royalty entry says ${a[1]}: use the listing's terms`,
  ListingFeeTokenMismatch: (a) =>
    `listing ${a[0]} charges its fee in ${a[1]}, not ${a[2]}: pay in the listing's token`,
  ProviderNotAuthorized: (a) =>
    `provider ${a[1]} is not authorized for listing ${a[0]}: pick an authorized provider`,
  ProviderNotAuthorizedForListing: (a) => `provider ${a[1]} is not authorized for listing ${a[0]}`,
  NothingToWithdraw: (a) => `${a[0]} has no balance in token ${a[1]} to withdraw`,
  AlreadyRegistered: (a) => `provider ${a[0]} is already registered: use update instead`,
  NotRegistered: (a) => `provider ${a[0]} is not registered: register first`,
  EmptyName: () => "the provider name is empty",
  StringTooLong: (a) => `${a[0]} is ${a[1]} bytes; at most ${a[2]} are allowed`,
  ListTooLong: (a) => `${a[0]} has ${a[1]} entries; at most ${a[2]} are allowed`,
  UnknownResource: (a) => `resource id ${a[0]} is unknown: use 0 (CPU), 1 (memory), 2 (storage) or 3 (GPU)`,
  DuplicateResource: (a) => `resource id ${a[0]} is priced twice: list each resource once`,
  NoPrices: () => "the pricing table is empty: price at least one resource",
  ZeroToken: () => "the pricing token is the zero address",
  NotListingDeveloper: (a) => `only the developer ${a[1]} can change listing ${a[0]} (caller ${a[2]})`,
  RoyaltyTooHigh: (a) => `royalty ${a[0]} bps exceeds ${a[1]}`,
  EmptyManifestDigest: () => "the manifest digest is empty: pass the encrypted image's manifest digest",
  CidTooLong: (a) => `the CID is ${a[0]} bytes; at most ${a[1]} are allowed`,
  EmptyCid: () => "the CID is empty",
  FeeTokenRequired: (a) => `a fixed fee of ${a[0]} needs a fee token`,
  NotSigner: (a) =>
    `${a[0]} is not a release signer: only the Releases contract's signers publish and revoke`,
  AlreadyApproved: (a) => `signer ${a[1]} already approved ${a[0]}: the other signers must approve it`,
  BadThreshold: (a) => `threshold ${a[0]} is not between 1 and the ${a[1]} signers`,
  BadSigner: (a) => `signer ${a[0]} is zero or listed twice`,
  ReleaseExists: (a) =>
    `release ${a[0]} is already ${Number(a[1]) === 2 ? "published and revoked" : "published"}: publish a new version instead`,
  UnknownRelease: (a) => `no release ${a[0]}: check the release id (tpod release list)`,
  AlreadyRevoked: (a) => `release ${a[0]} is already revoked`,
  EmptyVersion: () => "the release version is empty",
  VersionTaken: (a) => `version ${a[0]} is already used by release ${a[1]}: pick a new version`,
  ZeroImageDigest: () => "the release's image digest is zero: give the SHA-256 of the provider VM image",
  NoMeasurements: () => "the release lists no measurements",
  UnknownTee: (a) => `TEE id ${a[0]} is unknown: use 1 (sev-snp), 2 (tdx), 3 (sgx) or 4 (insecure-dev)`,
  BadMeasurementLength: (a) =>
    `a measurement for TEE ${a[0]} is ${a[1]} bytes, expected ${a[2]} (SEV-SNP 48, TDX MRTD+RTMR0..2 192, SGX and insecure-dev 32)`,
  MeasurementPublished: (a) =>
    `measurement ${a[0]} is already in release ${a[1]}, which is not revoked: a measurement belongs to one live release`,
  ReentrancyGuardReentrantCall: () => "re-entrant call refused",
  SafeERC20FailedOperation: (a) => `token ${a[0]} refused the transfer: check balance and allowance`,
};

/** A contract call that reverted, with the decoded custom error and a message that says what to fix. */
export class ChainError extends Error {
  override readonly name = "ChainError";
  readonly code: string;
  constructor(
    /** The Solidity error name, e.g. "ClaimExceedsDeposit", or "Unknown". */
    readonly errorName: string,
    readonly args: Args,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = `CHAIN_${errorName}`;
  }
}

function describe(errorName: string, args: Args): string {
  const hint = hints[errorName];
  return hint ? `${errorName}: ${hint(args)}` : `${errorName}(${args.map(String).join(", ")})`;
}

/** Decodes raw revert data (0x + selector + args) into a ChainError, or undefined when unknown. */
export function decodeRevertData(data: Hex): ChainError | undefined {
  try {
    const { errorName, args } = decodeErrorResult({ abi: contractErrorsAbi, data });
    const list = (args ?? []) as Args;
    return new ChainError(errorName, list, describe(errorName, list));
  } catch {
    return undefined;
  }
}

/** Turns anything viem threw into a ChainError when it carries a contract revert; other errors pass through. */
export function explainError(err: unknown): unknown {
  if (err instanceof ChainError) return err;
  if (!(err instanceof BaseError)) return err;
  const reverted = err.walk((e) => e instanceof ContractFunctionRevertedError);
  if (reverted instanceof ContractFunctionRevertedError) {
    if (reverted.data?.errorName) {
      const args = (reverted.data.args ?? []) as Args;
      return new ChainError(reverted.data.errorName, args, describe(reverted.data.errorName, args), {
        cause: err,
      });
    }
    if (reverted.raw) {
      const decoded = decodeRevertData(reverted.raw);
      if (decoded) return new ChainError(decoded.errorName, decoded.args, decoded.message, { cause: err });
    }
    if (reverted.reason) return new ChainError("Error", [reverted.reason], reverted.reason, { cause: err });
  }
  const withData = err.walk((e) => typeof (e as { data?: unknown }).data === "string") as {
    data?: Hex;
  } | null;
  if (withData?.data?.startsWith("0x") && withData.data.length >= 10) {
    const decoded = decodeRevertData(withData.data);
    if (decoded) return new ChainError(decoded.errorName, decoded.args, decoded.message, { cause: err });
  }
  return err;
}
