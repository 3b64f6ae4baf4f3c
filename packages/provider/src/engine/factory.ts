// Chooses and opens the engine the provider config names (engine.kind). The daemon calls this once at start.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { ProviderConfig } from "../config.js";
import type { Logger } from "../log.js";
import { KubernetesEngine } from "./kubernetes-engine.js";
import { PodmanEngine } from "./podman.js";
import type { Engine } from "./types.js";

export interface EngineFactoryDeps {
  log: Logger;
}

export async function createEngine(
  config: Pick<ProviderConfig, "dataDir" | "engine">,
  deps: EngineFactoryDeps,
): Promise<Engine> {
  const e = config.engine;
  if (e.kind === "kubernetes") {
    // parseConfig refuses kind kubernetes without a kubeconfig; a config built in code may still lack it.
    if (!e.kubeconfig) throw new Error("engine.kind kubernetes needs engine.kubeconfig");
    const engine = KubernetesEngine.fromKubeconfigFile(e.kubeconfig, {
      ...(e.context ? { context: e.context } : {}),
      ...(e.namespacePrefix ? { namespacePrefix: e.namespacePrefix } : {}),
      ...(e.runtimeClassName ? { runtimeClassName: e.runtimeClassName } : {}),
      ...(e.storageClassName ? { storageClassName: e.storageClassName } : {}),
    });
    deps.log.info(
      {
        cluster: engine.kubeConfig.getCurrentCluster()?.server,
        context: engine.kubeConfig.getCurrentContext(),
      },
      "engine: kubernetes",
    );
    return engine;
  }
  if (!e.socket) await reapStalePodmanService(path.join(config.dataDir, "engine", "podman.sock"), deps.log);
  return PodmanEngine.open({
    runDir: path.join(config.dataDir, "engine"),
    owner: e.owner,
    publishHostIp: e.publishHostIp,
    ...(e.socket ? { socketPath: e.socket } : {}),
    ...(e.secretsDir ? { secretsDir: e.secretsDir } : {}),
  });
}

/**
 * A daemon killed with SIGKILL leaves the `podman system service` it started running on its socket. Before
 * starting a new one, end that process: found by its exact command line (our own socket path), ended by pid.
 */
async function reapStalePodmanService(socketPath: string, log: Logger): Promise<void> {
  const want = `unix://${socketPath}`;
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const argv = await readFile(`/proc/${e}/cmdline`, "utf8")
      .then((t) => t.split("\0"))
      .catch(() => [] as string[]);
    if (argv.includes("system") && argv.includes("service") && argv.includes(want)) {
      log.warn({ pid: Number(e) }, "stopping the podman service a previous daemon run left behind");
      try {
        process.kill(Number(e), "SIGTERM");
      } catch {
        continue;
      }
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          process.kill(Number(e), 0);
        } catch {
          break;
        }
      }
    }
  }
}
