// The browser's deploy environment for the shared deployPod flow (actions/deploy.ts): a browser has no Podman
// store to push from and no files to read, so pods whose images are already on IPFS (by CID and digest) or are
// marketplace listings deploy from it; local images and file secrets are refused up front with what to do. The
// chain's ChannelOpened event is the browser's pod record (My pods reads it). Browser-safe.
import type { Libp2p } from "@libp2p/interface";
import type { Policy } from "@trustedpods/attestation";
import { checkManifest, type Pod } from "@trustedpods/protocol";
import type { Address } from "viem";
import {
  type DeployEnvironment,
  type DeployProgress,
  type DeployResult,
  deployPod,
} from "./actions/deploy.js";
import type { PodConnection } from "./connection.js";
import { PublisherError } from "./errors.js";
import type { NetworkClients } from "./network.js";

export interface WebDeployOptions {
  pod: Pod;
  clients: NetworkClients;
  /** The network's name (the web app's config name), for messages. */
  networkName?: string;
  signer: PodConnection["signer"];
  node: Libp2p;
  policy: Policy;
  /** A registered provider instead of the cheapest that fits. */
  provider?: Address;
  /**
   * Decimal amount in the provider's token; default: the provider's quoted minimum run time plus a margin.
   * Less than that minimum is refused (DEPOSIT_TOO_SMALL) before anything is approved or opened.
   */
  funds?: string;
  /** How the user sets `funds`, named in DEPOSIT_TOO_SMALL's fix; default "the Funds field". */
  fundsFlag?: string;
  /** How long to wait for the quoted confirmations of the channel before provisioning; default 60 s. */
  confirmationTimeoutMs?: number;
  onProgress?: (p: DeployProgress) => void;
}

export type WebDeployResult = DeployResult;

/** Why a pod cannot be deployed from a browser, or undefined when it can. */
export function browserDeployBlocker(pod: Pod): string | undefined {
  for (const c of pod.containers) {
    if (c.env.some((e) => e.kind === "secret"))
      return `container "${c.name}" takes a secret in its environment: the browser deploy does not upload secrets yet. Use \`tpod deploy\`.`;
    if (c.image.kind === "local")
      return `container "${c.name}" uses a local image: a browser cannot push it. Push it with \`tpod deploy\` (or reference it as ipfs: CID with its digest).`;
  }
  for (const v of pod.volumes) {
    if (v.kind === "secret" && v.source.kind === "file")
      return `volume "${v.name}" reads a secret from a file: a browser cannot. Use \`tpod deploy\` for this pod.`;
  }
  return undefined;
}

/** The manifest as a pod the browser can deploy, or a PublisherError saying what to fix (line by line). */
export function podForBrowserDeploy(text: string, file = "pod.yaml"): Pod {
  const check = checkManifest(text, file);
  if (!check.pod) {
    const first = check.diagnostics
      .filter((d) => d.severity === "error")
      .slice(0, 3)
      .map((d) => `line ${d.line}: ${d.message}`)
      .join("; ");
    throw new PublisherError("POD_RECORD", `the manifest has problems (${first}): fix them and retry`);
  }
  const blocker = browserDeployBlocker(check.pod);
  if (blocker) throw new PublisherError("NO_PROVIDER_FITS", blocker);
  return check.pod;
}

/** The browser's environment: nothing to upload (blocked up front), progress to the page, no local record. */
export function browserDeployEnvironment(
  o: Pick<WebDeployOptions, "onProgress" | "fundsFlag">,
): DeployEnvironment {
  const refuse = (pod: Pod) => {
    const blocker = browserDeployBlocker(pod);
    if (blocker) throw new PublisherError("NO_PROVIDER_FITS", blocker);
  };
  return {
    uploadImages: async (pod) => {
      refuse(pod);
      return { pod, images: {} };
    },
    uploadSecrets: async (pod) => {
      refuse(pod);
      return pod;
    },
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    fundsFlag: o.fundsFlag ?? "the Funds field",
    openChannelHint: "close it under My pods to get the deposit back",
    topUpHint: "Top up under My pods adds time",
  };
}

/** Deploys from the browser: the shared deployPod flow with the browser's environment. */
export async function deployFromBrowser(o: WebDeployOptions): Promise<WebDeployResult> {
  const blocker = browserDeployBlocker(o.pod);
  if (blocker) throw new PublisherError("NO_PROVIDER_FITS", blocker);
  return deployPod(
    {
      pod: o.pod,
      networkName: o.networkName ?? "this network",
      clients: o.clients,
      signer: o.signer,
      node: o.node,
      policy: o.policy,
      ...(o.provider ? { provider: o.provider } : {}),
      ...(o.funds !== undefined ? { funds: o.funds } : {}),
      ...(o.confirmationTimeoutMs !== undefined ? { confirmationTimeoutMs: o.confirmationTimeoutMs } : {}),
      manifest: `${o.pod.name || "pod"}.yaml (browser)`,
    },
    browserDeployEnvironment(o),
  );
}
