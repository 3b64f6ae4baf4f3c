// Attesting a provider from the browser, with the outcome in words for the providers page.
import type { Libp2p } from "@libp2p/interface";
import type { Policy } from "@trustedpods/attestation";
import type { ChainContext } from "@trustedpods/chain";
import type { Hex } from "viem";
import { PublisherError } from "../errors.js";
import { explainError } from "../explain-error.js";
import type { ProviderOffer } from "../providers.js";
import { chainReleaseCheck } from "../releases.js";
import { describeAttestation, verifyProvider } from "../verify.js";

export type AttestationStatus =
  | {
      state: "verified";
      tee: string;
      insecure: boolean;
      peerId: string;
      summary: Record<string, unknown>;
      /** The release the evidence matched, when a release registry was consulted. */
      release?: { id: Hex; version: string; imageDigest: Hex; config: string };
      /** What was verified, in words (describeAttestation). */
      lines: string[];
    }
  | { state: "refused" | "unreachable"; message: string };

/**
 * Attests one provider from this browser (fresh nonce, binding checked, release looked up on `ctx`'s release
 * registry) and says the outcome in words.
 */
export async function attestOffer(
  node: Libp2p,
  offer: ProviderOffer,
  policy: Policy,
  ctx?: ChainContext,
): Promise<AttestationStatus> {
  try {
    const releases = ctx ? chainReleaseCheck(ctx, "this network", offer.release) : undefined;
    const r = await verifyProvider({
      node,
      multiaddrs: offer.multiaddrs,
      policy,
      timeoutMs: 20_000,
      ...(releases ? { releases } : {}),
    });
    const rel = r.release;
    return {
      state: "verified",
      tee: r.evidence.tee,
      insecure: r.insecure,
      peerId: r.peerId,
      summary: r.summary,
      ...(rel
        ? {
            release: {
              id: rel.release.id,
              version: rel.release.version,
              imageDigest: rel.release.imageDigest,
              config: rel.measurement.config,
            },
          }
        : {}),
      lines: describeAttestation(r),
    };
  } catch (err) {
    const refused = err instanceof PublisherError && err.code !== "PROVIDER_UNREACHABLE";
    return { state: refused ? "refused" : "unreachable", message: explainError(err) };
  }
}
