/**
 * The Node side of the deploy flow: uploads from the Podman store and from secret files (the DeployEnvironment
 * of `tpod deploy`), `deploy` (the shared deployPod with that environment and the CLI's pod record), and
 * `updatePod`, which reuses the uploads. Exported from "@trustedpods/publisher/node".
 */
import { createHash, createPublicKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Libp2p } from "@libp2p/interface";
import { getChannel } from "@trustedpods/chain";
import type { ContentStore } from "@trustedpods/ipfs";
import type { ImageSource } from "@trustedpods/oci";
import { callSignedUnary } from "@trustedpods/p2p";
import {
  type Container,
  type Pod,
  podToWire,
  UpdateRequestSchema,
  UpdateResponseSchema,
  type Volume,
} from "@trustedpods/protocol";
import type { LocalAccount } from "viem";
import { changePodRate } from "../actions/change-rate.js";
import {
  type DeployEnvironment,
  type DeployPodOptions,
  type DeployProgress,
  type DeployResult,
  type DeployStep,
  deployPod,
  type PodRecorder,
  releaseCheckOption,
  stepper,
} from "../actions/deploy.js";
import { type CheckedQuote, requestQuote } from "../actions/quote.js";
import {
  endpointsFromWire,
  type PodConnection,
  type PodEndpoints,
  podConnection,
  providerError,
  waitForConfirmations,
} from "../connection.js";
import { PublisherError } from "../errors.js";
import { formatRate } from "../format.js";
import type { NetworkClients, ResolvedNetwork, SelectedPolicy } from "../network.js";
import type { PodRecord } from "../pods.js";
import { whileProviderLags } from "../provider-lag.js";
import { tokenInfo } from "../providers.js";
import { type ProviderAttestation, verifyProvider } from "../verify.js";

export interface UploadOptions {
  /** Where images and secrets go: a node the provider can fetch from (see docs/deploy.md). */
  ipfs: ContentStore;
  /** Directory secret file paths are relative to (the manifest's). */
  baseDir?: string;
  /** Opens a local image by name (default: the Podman store, `podman save`). */
  openLocalImage?: (name: string) => Promise<ImageSource & { close?: () => Promise<void> }>;
}

export interface DeployOptions
  extends UploadOptions,
    Omit<DeployPodOptions, "networkName" | "signer" | "policy" | "policySource" | "manifest"> {
  /** The manifest file, remembered in the pod record (absolute or relative to the working directory). */
  manifestPath?: string;
  network: ResolvedNetwork;
  account: LocalAccount;
  policy: SelectedPolicy;
  store?: PodRecorder;
  onProgress?: (e: DeployProgress) => void;
  /** How the caller's user sets `funds`, named in DEPOSIT_TOO_SMALL's fix; default "--funds". */
  fundsFlag?: string;
}

/** The terminal's deploy environment: local images from Podman, secret files from disk, the CLI's hints. */
export function nodeDeployEnvironment(
  o: UploadOptions & Pick<DeployOptions, "store" | "onProgress" | "fundsFlag">,
): DeployEnvironment {
  return {
    uploadImages: (pod) => pushLocalImages(pod, o),
    uploadSecrets: (pod, attestation) => uploadSecrets(pod, attestation, o),
    ...(o.store ? { store: o.store } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(o.fundsFlag ? { fundsFlag: o.fundsFlag } : {}),
    topUpHint: "`tpod fund` adds time",
  };
}

/**
 * Deploys a pod from this machine: the shared deployPod flow with local images pushed from Podman, secret files
 * encrypted from disk, and the pod recorded with its manifest's absolute path.
 */
export function deploy(o: DeployOptions): Promise<DeployResult> {
  const {
    manifestPath,
    network,
    account,
    policy,
    store,
    onProgress,
    fundsFlag,
    ipfs,
    baseDir,
    openLocalImage,
    ...rest
  } = o;
  return deployPod(
    {
      ...rest,
      networkName: network.name,
      signer: account,
      policy: policy.policy,
      policySource: policy.source,
      manifest: resolve(manifestPath ?? `${o.pod.name}.yaml`),
    },
    nodeDeployEnvironment({
      ipfs,
      ...(baseDir !== undefined ? { baseDir } : {}),
      ...(openLocalImage ? { openLocalImage } : {}),
      ...(store ? { store } : {}),
      ...(onProgress ? { onProgress } : {}),
      ...(fundsFlag ? { fundsFlag } : {}),
    }),
  );
}

/** RFC 7638 thumbprint of a P-256 SPKI key: the provider's `encryptionKeyId`, a secret's `keyRef`. */
export function encryptionKeyId(spki: Uint8Array): string {
  const jwk = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" }).export({
    format: "jwk",
  });
  if (jwk.kty !== "EC" || !jwk.crv || !jwk.x || !jwk.y)
    throw new PublisherError("ATTESTATION_REFUSED", "the provider's encryption key is not an EC key", {
      field: "encryptionPublicKey",
    });
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash("sha256").update(canonical).digest("base64url");
}

function uploadError(what: string, err: unknown): PublisherError {
  return new PublisherError("UPLOAD_FAILED", `${what}: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  });
}

/**
 * Uploads every local image to IPFS (once per name) and rewrites the containers to the pushed root CID and
 * manifest digest. Images already on IPFS are kept.
 */
export async function pushLocalImages(
  pod: Pod,
  o: UploadOptions,
): Promise<{ pod: Pod; images: Record<string, string> }> {
  // Loaded on use: Helia and the OCI code are heavy, and every tpod command imports this entry.
  const { pushImage } = await import("@trustedpods/ipfs");
  const open = o.openLocalImage ?? (await import("@trustedpods/oci")).openPodmanImage;
  const pushed = new Map<string, Promise<{ cid: string; digest: string }>>();
  const pushOne = async (name: string) => {
    let src: Awaited<ReturnType<typeof open>>;
    try {
      src = await open(name);
    } catch (err) {
      throw uploadError(`cannot read local image ${name} (build it first, e.g. with buildah)`, err);
    }
    try {
      const { cid, root } = await pushImage(o.ipfs, src);
      return { cid: cid.toString(), digest: root.root.digest };
    } catch (err) {
      throw uploadError(`cannot push image ${name} to IPFS`, err);
    } finally {
      await src.close?.();
    }
  };
  const containers: Container[] = [];
  for (const c of pod.containers) {
    if (c.image.kind !== "local") {
      containers.push(c);
      continue;
    }
    const name = c.image.name;
    if (!pushed.has(name)) pushed.set(name, pushOne(name));
    containers.push({ ...c, image: { kind: "ipfs", ...(await pushed.get(name)!) } });
  }
  const images: Record<string, string> = {};
  for (const [name, p] of pushed) images[name] = (await p).cid;
  return { pod: { ...pod, containers }, images };
}

/** Encrypts every secret file to the provider's attested key and stores it on IPFS. */
export async function uploadSecrets(
  pod: Pod,
  attestation: Pick<ProviderAttestation, "encryptionPublicKey">,
  o: UploadOptions,
): Promise<Pod> {
  const files = pod.volumes.filter((v) => v.kind === "secret" && v.source.kind === "file");
  if (files.length === 0) return pod;
  const key = createPublicKey({
    key: Buffer.from(attestation.encryptionPublicKey),
    format: "der",
    type: "spki",
  });
  const keyRef = encryptionKeyId(attestation.encryptionPublicKey);
  const { encryptSecret, putSecret } = await import("@trustedpods/ipfs");
  const volumes: Volume[] = [];
  for (const v of pod.volumes) {
    if (v.kind !== "secret" || v.source.kind !== "file") {
      volumes.push(v);
      continue;
    }
    const file = resolve(o.baseDir ?? ".", v.source.path);
    let plain: Buffer;
    try {
      plain = await readFile(file);
    } catch (err) {
      throw uploadError(`cannot read secret file ${file}`, err);
    }
    try {
      const cid = await putSecret(o.ipfs, await encryptSecret(plain, key));
      volumes.push({ name: v.name, kind: "secret", source: { kind: "ipfs", cid: cid.toString(), keyRef } });
    } catch (err) {
      throw uploadError(`cannot store secret ${v.name}`, err);
    } finally {
      plain.fill(0);
    }
  }
  return { ...pod, volumes };
}

export interface UpdateOptions extends UploadOptions {
  /** The pod: from the local record, or found on chain with its provider's addresses from the Registry. */
  record: Pick<PodRecord, "podId" | "provider" | "multiaddrs" | "chainId"> &
    Partial<Pick<PodRecord, "network">>;
  pod: Pod;
  clients: NetworkClients;
  account: LocalAccount;
  policy: SelectedPolicy;
  node: Libp2p;
  onProgress?: (e: DeployProgress) => void;
  /** How long to keep asking while the provider waits for the new rate's confirmations; default 60 s. */
  confirmationTimeoutMs?: number;
}

export interface UpdateResult {
  endpoints: PodEndpoints;
  /** The channel's rate after the update. */
  ratePerSecond: bigint;
  rateChanged: boolean;
  timings: Partial<Record<DeployStep, number>>;
}

/**
 * Replaces a running pod's manifest: attests the provider again (secrets are encrypted to its current key),
 * uploads changed images and secrets, asks for a new quote, changes the channel's rate when the price changed,
 * and sends the signed `update` (persistent volumes are kept).
 */
export async function updatePod(o: UpdateOptions): Promise<UpdateResult> {
  const timings: UpdateResult["timings"] = {};
  const step = stepper(o.onProgress, timings);
  const ctx = o.clients.context;
  const conn: PodConnection = podConnection(o.node, o.record, o.account);
  const attestation = await step(
    "attest",
    `attesting ${o.record.provider} (policy: ${o.policy.source})`,
    () =>
      verifyProvider({
        node: o.node,
        multiaddrs: o.record.multiaddrs ?? [],
        policy: o.policy.policy,
        policySource: o.policy.source,
        ...releaseCheckOption(ctx, o.record.network ?? "this network"),
      }),
    (r) => `attested: ${r.evidence.tee} evidence${r.release ? `, release ${r.release.release.version}` : ""}`,
  );
  const pod = await step(
    "upload",
    "pushing local images and secrets",
    async () => uploadSecrets((await pushLocalImages(o.pod, o)).pod, attestation, o),
    () => "uploaded",
  );
  const key = { publisher: o.account.address, provider: o.record.provider, podId: o.record.podId };
  const ch = await getChannel(ctx, key);
  if (!ch.exists || ch.finalized || ch.closeAt !== 0n)
    throw new PublisherError("CHANNEL_CLOSED", `the channel of pod ${o.record.podId} is closing or closed`);
  const token = await tokenInfo(o.clients.publicClient, ch.token);
  const quote: CheckedQuote = await step(
    "quote",
    "asking for a signed quote",
    () =>
      requestQuote(conn, {
        pod,
        podId: o.record.podId,
        publisher: o.account.address,
        payments: ctx.addresses.payments,
      }),
    (q) => `price ${formatRate(q.quote.ratePerSecond, token)}`,
  );
  const rateChanged = quote.quote.ratePerSecond !== ch.ratePerSecond;
  // The provider serves only while the channel pays at least the running spec's price: a higher price is paid
  // before the update, a lower one after it (the provider accepts an update the channel overpays).
  const rateUp = quote.quote.ratePerSecond > ch.ratePerSecond;
  const changeRateStep = () =>
    step(
      "channel",
      `changing the channel's rate from ${formatRate(ch.ratePerSecond, token)} to ${formatRate(quote.quote.ratePerSecond, token)}`,
      () => changePodRate(ctx, quote, o.record.podId),
      () => "rate changed",
    );
  const changedAt = rateUp ? await changeRateStep() : undefined;
  const res = await step(
    "provision",
    "updating the pod",
    async () => {
      const deadline = Date.now() + (o.confirmationTimeoutMs ?? 60_000);
      // The provider reads the rate `confirmations` blocks below the head: asking earlier only races it.
      if (changedAt !== undefined && quote.terms.confirmations > 0)
        await waitForConfirmations(ctx.publicClient, changedAt, quote.terms.confirmations, deadline);
      // Should it still see the old rate (an older daemon that did not say), ask again until the deadline.
      const updateOnce = () =>
        callSignedUnary(
          o.node,
          conn.target,
          "update",
          UpdateRequestSchema,
          { podId: Buffer.from(o.record.podId.slice(2), "hex"), pod: podToWire(pod) },
          UpdateResponseSchema,
          { signer: o.account, chainId: conn.chainId, provider: conn.provider, podId: o.record.podId },
          { timeoutMs: 600_000 },
        );
      try {
        return rateUp ? await whileProviderLags("ratePerSecond", deadline, updateOnce) : await updateOnce();
      } catch (err) {
        throw providerError("update", err);
      }
    },
    () => "pod updated",
  );
  if (rateChanged && !rateUp) await changeRateStep();
  return {
    endpoints: endpointsFromWire(res.endpoints),
    ratePerSecond: quote.quote.ratePerSecond,
    rateChanged,
    timings,
  };
}
