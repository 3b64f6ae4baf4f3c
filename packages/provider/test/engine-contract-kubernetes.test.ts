// The engine contract on Kubernetes: always against the FAKE API server of test-support/ (a real HTTP server
// speaking the Kubernetes API that validates every object against the OpenAPI schemas but runs no
// containers), and against a real cluster when TPOD_KUBECONFIG names a kubeconfig (TPOD_K8S_IMAGE: an image
// with busybox the cluster can pull, default busybox:1.36). What only the fake can show (the objects sent,
// 409 conflicts, foreground deletion, a pod that never gets ready) is in engine-kubernetes.test.ts.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect } from "vitest";
import {
  buildBusyboxLayout,
  inspectImage,
  REGISTRY_MISSING,
  startRegistry,
  type TestRegistry,
} from "../../../test-support/docker-registry.js";
import { FakeKubeApiServer, fakeKubeConfig } from "../../../test-support/kube-fake-apiserver.js";
import { KubernetesEngine } from "../src/index.js";
import { type EngineHarness, engineContract } from "./engine-contract.js";

describe("Kubernetes against the FAKE API server", () => {
  engineContract("kubernetes (fake API server)", async () => {
    const fake = new FakeKubeApiServer();
    const server = await fake.start();
    // The provision path pushes to a REAL registry (docker-registry on a free port) a busybox image built here.
    let registry: TestRegistry | undefined;
    let tmp: string | undefined;
    const images: Partial<EngineHarness> = { noImageSource: REGISTRY_MISSING };
    if (!REGISTRY_MISSING) {
      registry = await startRegistry();
      tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-contract-k8s-"));
      await buildBusyboxLayout(path.join(tmp, "busybox"), "contract");
      images.imageSource = { kind: "oci-layout", dir: path.join(tmp, "busybox") };
      images.loaded = async (podId, image) => {
        // The registry has exactly that digest, and every Pod the cluster runs names it (nothing else).
        const digest = image.ref.slice(image.ref.indexOf("@") + 1);
        expect(image.ref).toMatch(new RegExp(`^${registry?.host}/tpod/${podId}/web@sha256:[0-9a-f]{64}$`));
        expect(await inspectImage(image.ref)).toEqual({ digest, config: image.id });
        const pods = fake.list("Pod", `tpod-${podId}`);
        expect(pods.length).toBeGreaterThan(0);
        for (const p of pods) for (const c of p.spec.containers) expect(c.image).toBe(image.ref);
      };
    }
    const engine = new KubernetesEngine(fakeKubeConfig(server), {
      readyTimeoutMs: 20_000,
      ...(registry ? { registry: { repository: `${registry.host}/tpod`, tlsVerify: false } } : {}),
    });
    return {
      engine,
      image: "registry.provider.local/contract/busybox:1",
      ...images,
      printed: async (podId, container, line) => {
        for (const p of fake.list("Pod", `tpod-${podId}`))
          fake.appendLog(`tpod-${podId}`, p.metadata.name, container, line);
      },
      close: async () => {
        await engine.close();
        await fake.stop();
        await registry?.stop();
        if (tmp) await rm(tmp, { recursive: true, force: true });
      },
    };
  });
});

const realKubeconfig = process.env.TPOD_KUBECONFIG;
describe.skipIf(!realKubeconfig)("Kubernetes against a real cluster (TPOD_KUBECONFIG)", () => {
  engineContract(
    "kubernetes (real cluster)",
    async () => {
      // TPOD_K8S_REGISTRY (host[:port]/path the cluster pulls from; TPOD_K8S_REGISTRY_TLS=false for plain
      // HTTP on loopback) turns on the provision path: a busybox layout built here is pushed there.
      const repository = process.env.TPOD_K8S_REGISTRY;
      const engine = KubernetesEngine.fromKubeconfigFile(realKubeconfig ?? "", {
        namespacePrefix: "tpod-ct-",
        ...(process.env.TPOD_K8S_CONTEXT ? { context: process.env.TPOD_K8S_CONTEXT } : {}),
        ...(repository
          ? { registry: { repository, tlsVerify: process.env.TPOD_K8S_REGISTRY_TLS !== "false" } }
          : {}),
      });
      const tmp = repository ? await mkdtemp(path.join(os.tmpdir(), "tpod-contract-real-")) : undefined;
      if (tmp) await buildBusyboxLayout(path.join(tmp, "busybox"), "contract-real");
      return {
        engine,
        image: process.env.TPOD_K8S_IMAGE ?? "busybox:1.36",
        ...(tmp
          ? { imageSource: { kind: "oci-layout" as const, dir: path.join(tmp, "busybox") } }
          : { noImageSource: "TPOD_K8S_REGISTRY is not set" }),
        close: async () => {
          await engine.close();
          if (tmp) await rm(tmp, { recursive: true, force: true });
        },
      };
    },
    300_000,
  );
});
