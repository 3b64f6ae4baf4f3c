export type ImageErrorCode =
  | "HOST_TOOLS_MISSING"
  | "NOT_BUILT"
  | "BUILD_FAILED"
  | "LOCK_MISMATCH"
  | "NODE_INTEGRITY"
  | "DIGEST_MISMATCH"
  | "BAD_IMAGE_DIR"
  | "VM_FAILED"
  | "TOO_MANY_MEASUREMENTS"
  | "FIRMWARE_LOCK_MALFORMED";

/** Every failure of the image builder, measurer and launcher, with a code scripts can test. */
export class ImageError extends Error {
  override readonly name = "ImageError";
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
