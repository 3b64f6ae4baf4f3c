export {
  type BuildOptions,
  type BuildResult,
  buildImage,
  DEFAULT_LOCK,
  ensureBuildTools,
  ensureHostPackages,
  IMAGE_SOURCES,
  writeImageReleaseNotes,
} from "./build.js";
export { ImageError, type ImageErrorCode } from "./errors.js";
export {
  FIRMWARE_BUILD_SCRIPT,
  FIRMWARE_LOCK,
  type FirmwareLock,
  type FirmwareProvenance,
  firmwareProvenance,
  parseFirmwareLock,
  readFirmwareLock,
} from "./firmware.js";
export { formatLock, type ImageLock, type LockEntry, lockDifferences, parseLock } from "./lock.js";
export { type FileDigest, type ImageManifest, imageDigest, MANIFEST_FILE, readManifest } from "./manifest.js";
export {
  DEFAULT_MAX_VCPUS,
  DEFAULT_VCPU_TYPES,
  type ImageMeasurement,
  type ImageMeasurements,
  type ImageMeasureOptions,
  measureImage,
} from "./measure.js";
export {
  configLabel,
  imageReleaseVersion,
  MAX_RELEASE_MEASUREMENTS,
  RELEASE_FILE,
  RELEASE_NOTES_FILE,
  type ReleaseFile,
  type ReleaseFileMeasurement,
  releaseFileOf,
  SUPPORTED_VCPU_TYPES,
  SUPPORTED_VCPUS,
  SUPPORTED_VMM_TYPES,
  writeReleaseNotes,
} from "./release.js";
export {
  ensureQemu,
  freePort,
  freePortRange,
  GUEST_HOST_ADDRESS,
  GUEST_PORTS,
  type GuestPort,
  type GuestReady,
  hostMultiaddr,
  makeStateDisk,
  POD_PORT_COUNT,
  type PodPortRange,
  type ProviderVm,
  podPortForwards,
  qemuArgs,
  startProviderVm,
  type VmOptions,
} from "./vm.js";
