/**
 * Fetching what a pod needs from IPFS: images by root CID (every blob's digest verified while streaming, the
 * manifest digest checked against the one the publisher signed, encrypted layers decrypted with the daemon's
 * key) and secret blobs (compact JWE to the daemon's key, decrypted in memory only).
 */
import { rename, rm } from "node:fs/promises";
import { type ContentStore, decryptSecret, getSecret, pullImageToLayout } from "@trustedpods/ipfs";
import { decryptLayout, isEncryptedLayer, openOciLayout, walkImage } from "@trustedpods/oci";
import { RpcError } from "@trustedpods/p2p";
import { ErrorCode } from "@trustedpods/protocol";
import type { EncryptionKey } from "../keys.js";

export interface ContentFetcher {
  /** Writes the plain (decrypted) OCI layout of the image at `dir`, which must not exist. */
  fetchImage(cid: string, manifestDigest: string, dir: string, signal: AbortSignal): Promise<void>;
  /** The decrypted bytes of a secret blob. */
  fetchSecret(cid: string, keyRef: string, signal: AbortSignal): Promise<Uint8Array>;
}

export class IpfsContentFetcher implements ContentFetcher {
  constructor(
    private readonly store: ContentStore,
    private readonly key: EncryptionKey,
    private readonly peers: () => string[] = () => [],
  ) {}

  async fetchImage(cid: string, manifestDigest: string, dir: string, signal: AbortSignal): Promise<void> {
    const pulled = `${dir}.pulled`;
    await rm(pulled, { recursive: true, force: true });
    try {
      let root: Awaited<ReturnType<typeof pullImageToLayout>>;
      try {
        root = await pullImageToLayout(this.store, cid, pulled, { peers: this.peers(), signal });
      } catch (err) {
        if (signal.aborted) throw err;
        throw new RpcError(ErrorCode.UNAVAILABLE, `cannot pull image ${cid}: ${(err as Error).message}`, {
          details: { field: "image", cid },
          cause: err,
        });
      }
      // Every blob was verified against its digest; the root must be the manifest the publisher signed for.
      if (root.root.digest !== manifestDigest)
        throw new RpcError(
          ErrorCode.INVALID_ARGUMENT,
          `image ${cid} has manifest ${root.root.digest}, not the requested ${manifestDigest}`,
          { details: { field: "image.digest", cid } },
        );
      if (await hasEncryptedLayers(pulled)) {
        try {
          await decryptLayout(pulled, dir, [this.key.ociKey]);
        } catch (err) {
          throw new RpcError(
            ErrorCode.FAILED_PRECONDITION,
            `cannot decrypt image ${cid} with this provider's key: ${(err as Error).name}`,
            { details: { field: "image", reason: "no-key-for-provider", cid } },
          );
        }
      } else {
        await rename(pulled, dir);
      }
    } finally {
      await rm(pulled, { recursive: true, force: true });
    }
  }

  async fetchSecret(cid: string, keyRef: string, signal: AbortSignal): Promise<Uint8Array> {
    if (keyRef !== this.key.kid)
      throw new RpcError(
        ErrorCode.FAILED_PRECONDITION,
        `secret ${cid} is encrypted to key ${keyRef}, not to this provider's key ${this.key.kid}`,
        { details: { field: "secret.keyRef", cid } },
      );
    let blob: Uint8Array;
    try {
      blob = await getSecret(this.store, cid, { signal });
    } catch (err) {
      if (signal.aborted) throw err;
      throw new RpcError(ErrorCode.UNAVAILABLE, `cannot fetch secret ${cid}: ${(err as Error).message}`, {
        details: { field: "secret", cid },
      });
    }
    try {
      return await decryptSecret(blob, this.key.privateKey);
    } catch {
      // No detail from the crypto library: it could only say which check failed, which helps nobody honest.
      throw new RpcError(
        ErrorCode.FAILED_PRECONDITION,
        `secret ${cid} cannot be decrypted with this provider's key`,
        {
          details: { field: "secret", cid },
        },
      );
    }
  }
}

async function hasEncryptedLayers(dir: string): Promise<boolean> {
  const src = await openOciLayout(dir);
  const nodes = await walkImage(src.root, (d) => src.openBlob(d));
  return nodes.some((n) => n.manifest?.layers.some((l) => isEncryptedLayer(l)) ?? false);
}
