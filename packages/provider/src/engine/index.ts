export * from "./errors.js";
export { FIREWALL_CHAIN, HostFirewall } from "./firewall.js";
export { prepareImageArchive } from "./image-archive.js";
export {
  type HTTPScaledObject,
  K8S_LABEL,
  type KubernetesObjects,
  type KubernetesOptions,
  kubernetesObjects,
  namespaceFor,
  orderedObjects,
  runtimeClass,
  toWire,
} from "./kubernetes.js";
export { FIELD_MANAGER, KubernetesApplier } from "./kubernetes-apply.js";
export { KubernetesEngine, type KubernetesEngineOptions } from "./kubernetes-engine.js";
export {
  KubernetesRegistry,
  type KubernetesRegistryOptions,
  layoutImage,
  registryProblem,
} from "./kubernetes-registry.js";
export { LogDemuxer, mergeAsync } from "./logstream.js";
export { LABEL, PodmanEngine, type PodmanEngineOptions } from "./podman.js";
export { type PodmanService, pingSocket, startPodmanService } from "./podman-service.js";
export { isTmpfs, SecretStore, TMPFS_MAGIC } from "./secrets.js";
export * from "./types.js";
export { assertPodId, validatePodSpec } from "./validate.js";
