import {
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
} from "@kubernetes/client-node";
import { EngineError } from "./errors.js";
import {
  K8S_LABEL,
  type KubernetesObjects,
  type KubernetesOptions,
  kubernetesObjects,
  namespaceFor,
  orderedObjects,
} from "./kubernetes.js";
import type { PodSpec } from "./types.js";

export const FIELD_MANAGER = "trustedpods-provider";

/**
 * Applies a pod's objects to a cluster with server-side apply (one field manager, forced: the provider owns
 * these objects). Covers apply, scale (start/stop) and remove; logs, stats and images on Kubernetes go
 * through the cluster's own tooling and are not part of this class.
 */
export class KubernetesApplier {
  readonly client: KubernetesObjectApi;

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: KubernetesOptions = {},
  ) {
    this.client = KubernetesObjectApi.makeApiClient(kubeConfig);
  }

  static fromKubeconfigFile(file: string, options: KubernetesOptions = {}): KubernetesApplier {
    const kc = new KubeConfig();
    kc.loadFromFile(file);
    return new KubernetesApplier(kc, options);
  }

  async apply(spec: PodSpec): Promise<KubernetesObjects> {
    const objects = kubernetesObjects(spec, this.options);
    for (const obj of orderedObjects(objects)) await this.serverSideApply(obj);
    // Objects of an earlier version of the pod that this version no longer has (a removed volume or port).
    await this.prune(spec.podId, orderedObjects(objects));
    return objects;
  }

  private async serverSideApply(obj: KubernetesObject): Promise<void> {
    try {
      await this.client.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (err) {
      throw new EngineError(
        "ENGINE_FAILURE",
        `apply ${obj.kind} ${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  private async prune(podId: string, keep: KubernetesObject[]): Promise<void> {
    const ns = namespaceFor(podId, this.options);
    const wanted = new Set(keep.map((o) => `${o.kind}/${o.metadata?.name}`));
    for (const [apiVersion, kind] of [
      ["v1", "Secret"],
      ["v1", "PersistentVolumeClaim"],
      ["v1", "Service"],
      ["networking.k8s.io/v1", "NetworkPolicy"],
    ] as const) {
      const list = await this.client.list(
        apiVersion,
        kind,
        ns,
        undefined,
        undefined,
        undefined,
        undefined,
        `${K8S_LABEL.pod}=${podId}`,
      );
      for (const item of list.items) {
        if (!wanted.has(`${kind}/${item.metadata?.name}`)) {
          await this.client.delete({
            apiVersion,
            kind,
            metadata: { name: item.metadata?.name, namespace: ns },
          });
        }
      }
    }
  }

  /** Start (1) or stop (0) the pod; volumes and everything else stay. */
  async scale(podId: string, replicas: 0 | 1): Promise<void> {
    const ns = namespaceFor(podId, this.options);
    await this.serverSideApply({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "pod", namespace: ns },
      spec: { replicas },
    } as KubernetesObject);
  }

  /** Deleting the namespace deletes every object of the pod, PVCs included. */
  async remove(podId: string): Promise<void> {
    const ns = namespaceFor(podId, this.options);
    try {
      await this.client.delete({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  }

  /** Pod ids of namespaces we manage, for reconciliation. */
  async listPods(): Promise<string[]> {
    const list = await this.client.list(
      "v1",
      "Namespace",
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      `${K8S_LABEL.managed}=true`,
    );
    return list.items.map((n) => n.metadata?.labels?.[K8S_LABEL.pod]).filter((x): x is string => !!x);
  }
}
