export {
  type BuildOptions,
  type BuildResult,
  buildImage,
  DEFAULT_LOCK,
  ensureBuildTools,
  ensureHostPackages,
  IMAGE_SOURCES,
} from "./build.js";
export { ImageError, type ImageErrorCode } from "./errors.js";
export { formatLock, type ImageLock, type LockEntry, lockDifferences, parseLock } from "./lock.js";
export { type FileDigest, type ImageManifest, imageDigest, MANIFEST_FILE, readManifest } from "./manifest.js";
