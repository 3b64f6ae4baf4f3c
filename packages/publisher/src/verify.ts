/**
 * The publisher's attestation check of a provider, before anything secret is sent: dial it over libp2p, send a
 * fresh nonce on `attest`, and accept only evidence that is genuine, binds this nonce, the libp2p key of the peer
 * we are actually connected to (Noise authenticated it) and the encryption key we will encrypt to, and that the
 * policy accepts.
 */
import { publicKeyToProtobuf } from "@libp2p/crypto/keys";
import type { Libp2p, PeerId } from "@libp2p/interface";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import {
  AttestationError,
  envelopeFromProto,
  equalBytes,
  newNonce,
  type Policy,
  summarize,
  toHex,
  type VerifiedEvidence,
  type VerifyOptions,
  verifyAttestation,
} from "@trustedpods/attestation";
import { callUnary, errorCodeName, RpcError } from "@trustedpods/p2p/browser";
import { AttestRequestSchema, type AttestResponse, AttestResponseSchema } from "@trustedpods/protocol";
import { PublisherError } from "./errors.js";

export interface VerifyProviderOptions {
  /** The publisher's libp2p node (createP2PNode with no listen addresses). */
  node: Libp2p;
  /** Where to reach the provider (e.g. its Registry multiaddrs); each should end in /p2p/<peer id>. */
  multiaddrs?: (string | Multiaddr)[];
  /** Or a peer the node is already connected to. */
  peer?: PeerId;
  /** The peer id the provider must have (e.g. from its Registry entry); checked after the Noise handshake. */
  expectedPeerId?: string;
  policy: Policy;
  /** Where the policy came from, for messages ("devnet default", "--policy FILE"...). */
  policySource?: string;
  /** Deadline of the dial and of the attest call, each (default 15 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Passed to the evidence verifier (verification time, certificate cache). */
  verify?: VerifyOptions;
  /** Test hook: the nonce to send (16..64 bytes); a fresh random one otherwise. */
  nonce?: Uint8Array;
}

export interface ProviderAttestation {
  peerId: string;
  /** The address the connection actually uses. */
  remoteAddr: string;
  /** The provider's libp2p public key (protobuf encoding), as the evidence binds it. */
  libp2pPublicKey: Uint8Array;
  /** The key to encrypt secrets and image keys to (SPKI DER for the daemon's P-256 key). */
  encryptionPublicKey: Uint8Array;
  nonce: Uint8Array;
  evidence: VerifiedEvidence;
  /** attestation's stable JSON summary of the evidence. */
  summary: Record<string, unknown>;
  /** True for insecure-dev evidence (no TEE), which only a policy with allowInsecureDev accepts. */
  insecure: boolean;
  policySource: string;
}

const DEFAULT_TIMEOUT_MS = 15_000;

function peerIdOf(ma: Multiaddr): string | undefined {
  return ma.getComponents().findLast((c) => c.name === "p2p")?.value;
}

function parseTargets(list: (string | Multiaddr)[]): Multiaddr[] {
  return list.map((m) => {
    if (typeof m !== "string") return m;
    try {
      return multiaddr(m);
    } catch (err) {
      throw new PublisherError("PROVIDER_UNREACHABLE", `"${m}" is not a multiaddr`, { cause: err });
    }
  });
}

async function connect(
  o: VerifyProviderOptions,
  timeoutMs: number,
): Promise<{ peer: PeerId; remoteAddr: string }> {
  const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), ...(o.signal ? [o.signal] : [])]);
  if (o.peer) {
    const existing = o.node.getConnections(o.peer)[0];
    if (existing) return { peer: existing.remotePeer, remoteAddr: existing.remoteAddr.toString() };
  }
  const targets = o.multiaddrs ? parseTargets(o.multiaddrs) : [];
  if (!o.peer && targets.length === 0)
    throw new PublisherError("PROVIDER_UNREACHABLE", "the provider lists no multiaddrs");
  const ids = new Set(targets.map(peerIdOf).filter((x): x is string => x !== undefined));
  if (ids.size > 1) {
    throw new PublisherError(
      "PEER_MISMATCH",
      `the multiaddrs name ${ids.size} different peers: ${[...ids].join(", ")}`,
    );
  }
  try {
    const conn = await o.node.dial(o.peer ?? targets, { signal });
    return { peer: conn.remotePeer, remoteAddr: conn.remoteAddr.toString() };
  } catch (err) {
    const where = o.peer ? o.peer.toString() : targets.map(String).join(", ");
    throw new PublisherError(
      "PROVIDER_UNREACHABLE",
      `cannot connect to the provider at ${where}: ${messageOf(err)}`,
      {
        cause: err,
      },
    );
  }
}

function messageOf(err: unknown): string {
  if (err instanceof RpcError) return `${errorCodeName(err.code)}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** Why a policy refused evidence, in words a user can act on. */
function refusal(err: AttestationError, peerId: string, policySource: string): PublisherError {
  let message: string;
  if (err.field === "policy.allowInsecureDev") {
    message =
      `provider ${peerId} has no TEE: it sent insecure-dev evidence, which proves nothing, and the policy ` +
      `(${policySource}) refuses it. Only on a development network, use a policy with "allowInsecureDev: true".`;
  } else if (err.code === "REPORT_DATA_MISMATCH") {
    message =
      `provider ${peerId}'s evidence does not bind this session (this nonce, this peer's libp2p key and its ` +
      `encryption key): it may be replayed or relayed from another node. ${err.message}`;
  } else {
    message = `provider ${peerId}'s attestation was refused (${err.code}${err.field ? `, ${err.field}` : ""}): ${err.message}`;
  }
  return new PublisherError("ATTESTATION_REFUSED", message, {
    cause: err,
    ...(err.field ? { field: err.field } : {}),
  });
}

/**
 * Attests a provider. Throws PROVIDER_UNREACHABLE (dial or call failed), PEER_MISMATCH (not the expected peer)
 * or ATTESTATION_REFUSED (cause: the AttestationError; field: the rule or binding that failed).
 */
export async function verifyProvider(o: VerifyProviderOptions): Promise<ProviderAttestation> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const policySource = o.policySource ?? "given policy";
  const { peer, remoteAddr } = await connect(o, timeoutMs);
  const peerId = peer.toString();
  if (o.expectedPeerId !== undefined && o.expectedPeerId !== peerId) {
    throw new PublisherError(
      "PEER_MISMATCH",
      `expected provider peer ${o.expectedPeerId}, but ${remoteAddr} is ${peerId}`,
    );
  }
  if (!peer.publicKey)
    throw new PublisherError("PEER_MISMATCH", `peer ${peerId} does not carry its public key`);
  const libp2pPublicKey = publicKeyToProtobuf(peer.publicKey);
  const nonce = o.nonce ?? newNonce(32);
  let res: AttestResponse;
  try {
    res = await callUnary(o.node, peer, "attest", AttestRequestSchema, { nonce }, AttestResponseSchema, {
      timeoutMs,
      ...(o.signal ? { signal: o.signal } : {}),
    });
  } catch (err) {
    throw new PublisherError("PROVIDER_UNREACHABLE", `attest call to ${peerId} failed: ${messageOf(err)}`, {
      cause: err,
    });
  }
  // The evidence must be about the node we are talking to: a relay forwarding another node's answer names that
  // node's key, and must be caught before the report data (which would bind the other key consistently).
  if (!equalBytes(res.libp2pPublicKey, libp2pPublicKey)) {
    throw new PublisherError(
      "ATTESTATION_REFUSED",
      `provider ${peerId} answered with the attestation of another libp2p key (${toHex(res.libp2pPublicKey).slice(0, 24)}…): ` +
        "its evidence belongs to another node, as when a request is relayed",
      { field: "libp2pPublicKey" },
    );
  }
  let evidence: VerifiedEvidence;
  try {
    if (!res.evidence) throw new AttestationError("MALFORMED", "AttestResponse has no evidence", "evidence");
    evidence = await verifyAttestation(
      envelopeFromProto(res.evidence),
      { nonce, libp2pPublicKey, encryptionPublicKey: res.encryptionPublicKey },
      o.policy,
      o.verify ?? {},
    );
  } catch (err) {
    if (err instanceof AttestationError) throw refusal(err, peerId, policySource);
    throw err;
  }
  return {
    peerId,
    remoteAddr,
    libp2pPublicKey,
    encryptionPublicKey: res.encryptionPublicKey,
    nonce,
    evidence,
    summary: summarize(evidence),
    insecure: evidence.tee === "insecure-dev",
    policySource,
  };
}
