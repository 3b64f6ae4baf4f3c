// The engine contract on Kubernetes: always against the FAKE API server of test-support/ (a real HTTP server
// speaking the Kubernetes API that validates every object against the OpenAPI schemas but runs no
// containers), and against a real cluster when TPOD_KUBECONFIG names a kubeconfig (TPOD_K8S_IMAGE: an image
// with busybox the cluster can pull, default busybox:1.36). What only the fake can show (the objects sent,
// 409 conflicts, foreground deletion, a pod that never gets ready) is in engine-kubernetes.test.ts.
import { KubeConfig } from "@kubernetes/client-node";
import { describe } from "vitest";
import { FakeKubeApiServer } from "../../../test-support/kube-fake-apiserver.js";
import { KubernetesEngine } from "../src/index.js";
import { engineContract } from "./engine-contract.js";

function fakeKubeConfig(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server, skipTLSVerify: true }],
    users: [{ name: "fake", token: "fake-token" }],
    contexts: [{ name: "fake", cluster: "fake", user: "fake" }],
    currentContext: "fake",
  });
  return kc;
}

describe("Kubernetes against the FAKE API server", () => {
  engineContract("kubernetes (fake API server)", async () => {
    const fake = new FakeKubeApiServer();
    const engine = new KubernetesEngine(fakeKubeConfig(await fake.start()), { readyTimeoutMs: 20_000 });
    return {
      engine,
      image: "registry.provider.local/contract/busybox:1",
      printed: async (podId, container, line) => {
        for (const p of fake.list("Pod", `tpod-${podId}`))
          fake.appendLog(`tpod-${podId}`, p.metadata.name, container, line);
      },
      close: async () => {
        await engine.close();
        await fake.stop();
      },
    };
  });
});

const realKubeconfig = process.env.TPOD_KUBECONFIG;
describe.skipIf(!realKubeconfig)("Kubernetes against a real cluster (TPOD_KUBECONFIG)", () => {
  engineContract(
    "kubernetes (real cluster)",
    async () => {
      const engine = KubernetesEngine.fromKubeconfigFile(realKubeconfig ?? "", {
        namespacePrefix: "tpod-ct-",
        ...(process.env.TPOD_K8S_CONTEXT ? { context: process.env.TPOD_K8S_CONTEXT } : {}),
      });
      return { engine, image: process.env.TPOD_K8S_IMAGE ?? "busybox:1.36", close: () => engine.close() };
    },
    300_000,
  );
});
