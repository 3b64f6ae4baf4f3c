export {
  accruedAt,
  afterTopUp,
  type ChannelTerms,
  claimableAt,
  claimCap,
  remainingSeconds,
  restartsOnTopUp,
  runOutTime,
} from "./accrual.js";
export { Billing, type BillingOptions } from "./billing.js";
export {
  asChainFailure,
  type ChainPoint,
  chainPoints,
  channelAt,
  type ListingTerms,
  listingPaymentAt,
  listingTermsAt,
  royaltiesAt,
} from "./chain-read.js";
export {
  CLAIM_GAS,
  type ClaimCandidate,
  type ClaimPlan,
  type ClaimPolicyInput,
  claimGas,
  gasCostInToken,
  planClaims,
} from "./claim-policy.js";
export {
  billingToWire,
  createDaemonBilling,
  type DaemonBillingOptions,
  DaemonPodLifecycle,
  providerChainContext,
} from "./daemon-wiring.js";
export {
  ChainUnavailableError,
  type ChannelProblem,
  PaymentRequiredError,
  UnknownPodError,
} from "./errors.js";
export { ChannelGate, type ChannelGateOptions, reservedOf } from "./gate.js";
export { EngineLifecycle } from "./lifecycle.js";
export { BillingLoop, type BillingLoopOptions, type TickResult } from "./loop.js";
export { UsageMeter } from "./meter.js";
export { BillingMetrics } from "./metrics.js";
export {
  listingsOf,
  podSpecHash,
  type QuoteParams,
  type QuoteTerms,
  quotePod,
  quoteTerms,
  royaltiesForPod,
  type SignedQuote,
} from "./quote.js";
export { type BillingStatus, billingStatus, reservedSeconds } from "./status.js";
export * from "./store.js";
export * from "./types.js";
