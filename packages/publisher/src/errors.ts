/**
 * Every failure the SDK raises on purpose. Codes are stable (the CLI and the web app branch on them); messages
 * say what to do about it.
 */
export type PublisherErrorCode =
  /** A keystore file is not a Web3 Secret Storage v3 document we can read, or its parameters are out of bounds. */
  | "KEYSTORE_MALFORMED"
  /** The passphrase does not open the keystore (MAC mismatch). */
  | "WRONG_PASSPHRASE"
  /** No key with that address (or file) exists. */
  | "KEY_NOT_FOUND"
  /** A key with that address is already in the keystore. */
  | "KEY_EXISTS"
  /** A raw private key is not 32 bytes of hex, or not a valid secp256k1 scalar. */
  | "INVALID_PRIVATE_KEY"
  /** No passphrase source: no --password-file, no TPOD_PASSWORD and no terminal to ask on. */
  | "NO_PASSPHRASE"
  /** A key, keystore or state file is readable by group or others. */
  | "FILE_PERMISSIONS"
  /** No chain could be found: no flags, no environment, no network file, no running devnet. */
  | "NO_NETWORK"
  /** A network file, contracts file or devnet state file is malformed. */
  | "NETWORK_MALFORMED"
  /** The RPC endpoint or the contracts it should hold do not answer as expected. */
  | "NETWORK_UNREACHABLE"
  /** The network resolved, but which key signs is unknown. */
  | "NO_KEY"
  /** A provider address is not registered. */
  | "PROVIDER_NOT_FOUND"
  /** No registered provider fits the pod and the filters. */
  | "NO_PROVIDER_FITS"
  /** Several tokens among the candidates: prices cannot be compared without choosing one. */
  | "AMBIGUOUS_TOKEN"
  /** The provider cannot be reached over libp2p, or the attest call failed. */
  | "PROVIDER_UNREACHABLE"
  /** The peer we reached is not the one the Registry or the multiaddr names. */
  | "PEER_MISMATCH"
  /** The provider's evidence was rejected (see `cause`, an AttestationError, and `field`). */
  | "ATTESTATION_REFUSED"
  /** The local pod record file is malformed, or a pod is missing or duplicated. */
  | "POD_RECORD"
  /** The offered funds do not pay for the provider's minimum run time (details: the suggested amount). */
  | "DEPOSIT_TOO_SMALL"
  /**
   * A top-up of a channel whose deposit ran out pays less than the notice period at the rate, the least the
   * contract accepts to restart the pod (details: the minimum).
   */
  | "TOP_UP_TOO_SMALL"
  /** The publisher's token balance is below the deposit. */
  | "INSUFFICIENT_FUNDS"
  /** The provider's quote is malformed, expired, for another pod, publisher or contract, or not signed by it. */
  | "QUOTE_INVALID"
  /** A local image could not be read from Podman or pushed to IPFS, or a secret file could not be read. */
  | "UPLOAD_FAILED"
  /** The provider refused or failed a request (provision, update, status, logs, delete): see `providerCode`. */
  | "PROVIDER_REFUSED"
  /** A chain transaction (approve, open, topUp, changeRate, requestClose, refund) failed. */
  | "CHAIN_FAILED"
  /** The pod's channel is closing or closed: the operation needs an open channel. */
  | "CHANNEL_CLOSED"
  /** A token amount is malformed or has more decimals than the token. */
  | "INVALID_AMOUNT"
  /** A deploy step did not finish within its deadline (details: the step and the deadline). */
  | "STEP_TIMEOUT"
  /** A release file is malformed (see `field`). */
  | "RELEASE_MALFORMED";

export class PublisherError extends Error {
  override readonly name = "PublisherError";
  /** The rule, file or flag the error is about, when there is one. */
  readonly field?: string;
  /** Machine-readable facts for callers that build their own message (e.g. the suggested deposit). */
  readonly details?: Record<string, string>;
  constructor(
    readonly code: PublisherErrorCode,
    message: string,
    options: { cause?: unknown; field?: string; details?: Record<string, string> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (options.field !== undefined) this.field = options.field;
    if (options.details !== undefined) this.details = options.details;
  }
}
