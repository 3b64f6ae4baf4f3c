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

/** The API server's own words (its Status body's message), else the error's message. */
export function apiReason(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === "string") {
    try {
      const m = (JSON.parse(body) as { message?: unknown }).message;
      if (typeof m === "string") return m;
    } catch {
      // not JSON: fall through
    }
  } else if (body && typeof (body as { message?: unknown }).message === "string") {
    return (body as { message: string }).message;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Applies a pod's objects to a cluster with server-side apply (one field manager, forced: the provider owns
 * these objects). KubernetesEngine builds the Engine contract on it: replica changes (start/stop) and
 * deletion go through the engine, which uses the scale subresource and foreground namespace deletion.
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
        `apply ${obj.kind} ${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}: ${apiReason(err)}`,
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
