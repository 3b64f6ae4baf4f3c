export { type DirectBoot, kernelHashesTable } from "./kernel-hashes.js";
export { LAUNCH_DIGEST_SIZE, SnpLaunchDigest } from "./launch-digest.js";
export {
  DEFAULT_GUEST_FEATURES,
  type KernelHashesStatus,
  MAX_VCPUS,
  measureSev,
  SEV_MODES,
  type SevMeasurement,
  type SevMeasureOptions,
  type SevMode,
  snpOvmfHash,
} from "./measure.js";
export { type OvmfImage, parseOvmf, type SectionTypeName, type SnpSection } from "./ovmf.js";
export { cpuSignature, VCPU_TYPES, vcpuSignature } from "./vcpu.js";
export { KVM_INITS, type KvmInit, VMM_TYPES, type VmmType, vmsaPage } from "./vmsa.js";
