/** Every error this package throws on purpose carries a stable `code` callers can switch on. */
export class OciError extends Error {
  override readonly name: string = "OciError";
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A blob's bytes do not hash to the digest that names it. */
export class DigestMismatchError extends OciError {
  override readonly name = "DigestMismatchError";
  constructor(
    readonly expected: string,
    readonly actual: string,
    what = "blob",
  ) {
    super("DIGEST_MISMATCH", `${what} digest mismatch: expected ${expected}, got ${actual}`);
  }
}

/** A blob is longer or shorter than its descriptor says. */
export class SizeMismatchError extends OciError {
  override readonly name = "SizeMismatchError";
  constructor(
    readonly digest: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super("SIZE_MISMATCH", `blob ${digest} size mismatch: expected ${expected} bytes, got ${actual}`);
  }
}

export class InvalidDigestError extends OciError {
  override readonly name = "InvalidDigestError";
  constructor(readonly digest: string) {
    super("INVALID_DIGEST", `invalid or unsupported digest ${JSON.stringify(digest.slice(0, 100))}`);
  }
}

export class BlobNotFoundError extends OciError {
  override readonly name = "BlobNotFoundError";
  constructor(readonly digest: string) {
    super("BLOB_NOT_FOUND", `blob ${digest} not found`);
  }
}

/** The directory, archive or JSON document is not a valid OCI image. */
export class InvalidImageError extends OciError {
  override readonly name = "InvalidImageError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("INVALID_IMAGE", message, options);
  }
}

/** The layout holds several images and no (or no matching) --ref chose one. */
export class RefNotFoundError extends OciError {
  override readonly name = "RefNotFoundError";
  constructor(message: string) {
    super("REF_NOT_FOUND", message);
  }
}

export class DestinationExistsError extends OciError {
  override readonly name = "DestinationExistsError";
  constructor(readonly path: string) {
    super("DESTINATION_EXISTS", `${path} already exists and is not an empty directory`);
  }
}

/** None of the given private keys unwraps a layer key. */
export class NoMatchingKeyError extends OciError {
  override readonly name = "NoMatchingKeyError";
  constructor(message: string) {
    super("NO_MATCHING_KEY", message);
  }
}

/** An encrypted layer failed its HMAC: the ciphertext or its public options were changed. */
export class LayerIntegrityError extends OciError {
  override readonly name = "LayerIntegrityError";
  constructor(readonly digest: string) {
    super("LAYER_INTEGRITY", `encrypted layer ${digest} failed HMAC verification (tampered or corrupted)`);
  }
}

export class InvalidKeyError extends OciError {
  override readonly name = "InvalidKeyError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("INVALID_KEY", message, options);
  }
}

export class UnsupportedError extends OciError {
  override readonly name = "UnsupportedError";
  constructor(message: string) {
    super("UNSUPPORTED", message);
  }
}

export class RecipientNotFoundError extends OciError {
  override readonly name = "RecipientNotFoundError";
  constructor(message: string) {
    super("RECIPIENT_NOT_FOUND", message);
  }
}

/** An external tool (podman) failed. */
export class ToolError extends OciError {
  override readonly name = "ToolError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("TOOL_FAILED", message, options);
  }
}
