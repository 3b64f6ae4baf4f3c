/** Every error this package throws on purpose carries a stable `code` callers can switch on. */
export class IpfsError extends Error {
  override readonly name: string = "IpfsError";
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A blob's bytes (from a peer, bitswap or Kubo) do not hash to the digest the image root names. */
export class BlobDigestMismatchError extends IpfsError {
  override readonly name = "BlobDigestMismatchError";
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super("DIGEST_MISMATCH", `blob digest mismatch: expected ${expected}, got ${actual}`);
  }
}

/** Content is larger than declared or than a configured bound; the transfer stopped before reading more. */
export class SizeLimitError extends IpfsError {
  override readonly name = "SizeLimitError";
  constructor(
    message: string,
    readonly limit: number,
  ) {
    super("SIZE_LIMIT", message);
  }
}

/** Content ended before its declared size. */
export class TruncatedError extends IpfsError {
  override readonly name = "TruncatedError";
  constructor(
    readonly what: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super("TRUNCATED", `${what} ended after ${actual} of ${expected} bytes`);
  }
}

/** An operation did not finish within its time bound. */
export class IpfsTimeoutError extends IpfsError {
  override readonly name = "IpfsTimeoutError";
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super("TIMEOUT", `${what} did not finish within ${timeoutMs} ms`);
  }
}

/** A root object (image or secret) is malformed, has the wrong type, or names unsupported content. */
export class InvalidRootError extends IpfsError {
  override readonly name = "InvalidRootError";
  constructor(message: string) {
    super("INVALID_ROOT", message);
  }
}

/** A peer answered the blob protocol with an error (not found, busy) or broke the protocol. */
export class BlobProtocolError extends IpfsError {
  override readonly name = "BlobProtocolError";
  constructor(
    readonly remoteCode: string,
    message: string,
  ) {
    super("BLOB_PROTOCOL", message);
  }
}

/** The Kubo RPC API answered with an error or something that is not what its documentation promises. */
export class KuboRpcError extends IpfsError {
  override readonly name = "KuboRpcError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super("KUBO_RPC", message);
  }
}

/** The node configuration would reach outside what was asked (e.g. a public address in devnet mode). */
export class ConfigError extends IpfsError {
  override readonly name = "ConfigError";
  constructor(message: string) {
    super("CONFIG", message);
  }
}
