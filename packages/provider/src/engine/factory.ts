/**
 * The engine a daemon runs pods on, chosen by `engine.kind` in the config. This is the seam for other engines:
 * a new kind adds a case here (and to the config's `engine.kind`), nothing in the daemon changes.
 */
import path from "node:path";
import type { ProviderConfig } from "../config.js";
import type { Logger } from "../log.js";
import { KubernetesEngine } from "./kubernetes-engine.js";
import { PodmanEngine } from "./podman.js";
import { reapStalePodmanService } from "./podman-service.js";
import type { Engine } from "./types.js";

export type EngineConfig = Pick<ProviderConfig, "dataDir" | "engine">;

export async function createEngine(config: EngineConfig, log: Logger): Promise<Engine> {
  const kind = config.engine.kind;
  switch (kind) {
    case "podman":
      return openPodman(config, log);
    case "kubernetes":
      return openKubernetes(config, log);
    default:
      throw new Error(`engine.kind ${String(kind)} is not supported by this daemon`);
  }
}

async function openPodman(config: EngineConfig, log: Logger): Promise<Engine> {
  const runDir = path.join(config.dataDir, "engine");
  // Without a socket the daemon runs its own podman service; one left by a killed run holds the socket.
  if (!config.engine.socket) await reapStalePodmanService(path.join(runDir, "podman.sock"), log);
  return PodmanEngine.open({
    runDir,
    owner: config.engine.owner,
    publishHostIp: config.engine.publishHostIp,
    ...(config.engine.socket ? { socketPath: config.engine.socket } : {}),
    ...(config.engine.secretsDir ? { secretsDir: config.engine.secretsDir } : {}),
  });
}

async function openKubernetes(config: EngineConfig, log: Logger): Promise<Engine> {
  const e = config.engine;
  // parseConfig refuses kind kubernetes without a kubeconfig; a config built in code may still lack it.
  if (!e.kubeconfig) throw new Error("engine.kind kubernetes needs engine.kubeconfig");
  const engine = KubernetesEngine.fromKubeconfigFile(e.kubeconfig, {
    ...(e.context ? { context: e.context } : {}),
    ...(e.namespacePrefix ? { namespacePrefix: e.namespacePrefix } : {}),
    ...(e.runtimeClassName ? { runtimeClassName: e.runtimeClassName } : {}),
    ...(e.storageClassName ? { storageClassName: e.storageClassName } : {}),
    ...(e.registry
      ? { registry: { ...e.registry, workDir: path.join(config.dataDir, "engine", "images") } }
      : {}),
  });
  log.info(
    {
      cluster: engine.kubeConfig.getCurrentCluster()?.server,
      context: engine.kubeConfig.getCurrentContext(),
      registry: engine.registry?.repository,
    },
    "engine: kubernetes",
  );
  return engine;
}
