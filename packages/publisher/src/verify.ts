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
import { checkRelease, type ReleaseCheck, type ReleaseMatch, shortHex } from "./releases.js";

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
  /**
   * The network's release registry. Required when the policy says `releases: "required"` (every default policy
   * does); otherwise consulted only to say which release the provider runs.
   */
  releases?: ReleaseCheck;
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
  /** The published release whose measurement the evidence carries, when a release registry was consulted. */
  release?: ReleaseMatch;
  /** Whether the policy required that release (false: it was looked up for information only). */
  releaseRequired: boolean;
  /** Without a required release: why none is shown (no registry, or the lookup's refusal). */
  releaseNote?: string;
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
  const releaseRequired = o.policy.releases === "required";
  const { release, note } = await releaseOf(evidence, o.releases, releaseRequired, peerId, policySource);
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
    ...(release ? { release } : {}),
    releaseRequired,
    ...(note ? { releaseNote: note } : {}),
  };
}

/**
 * The release check after the evidence passed: refuses (ATTESTATION_REFUSED) when the policy requires a
 * release and there is no registry or the measurement is not in a live release; without the requirement the
 * registry is only asked, and an unknown or revoked measurement is no error.
 */
async function releaseOf(
  evidence: VerifiedEvidence,
  check: ReleaseCheck | undefined,
  required: boolean,
  peerId: string,
  policySource: string,
): Promise<{ release?: ReleaseMatch; note?: string }> {
  if (required && !check) {
    throw new PublisherError(
      "ATTESTATION_REFUSED",
      `the policy (${policySource}) accepts only providers running a published release, but this network has no ` +
        "release registry (contracts.releases): add its address to the network, or use a policy file with " +
        '"releases: any" and the measurements you accept',
      { field: "release.registry" },
    );
  }
  if (!check) return { note: "not checked: no release registry is known for this network" };
  if (required) return { release: await checkRelease(evidence, check, peerId) };
  return checkRelease(evidence, check, peerId).then(
    (release) => ({ release }),
    (err: Error) => ({ note: `${err.message} (the policy does not require a published release)` }),
  );
}

const HARDWARE: Record<string, string> = {
  snp: "AMD SEV-SNP",
  tdx: "Intel TDX",
  sgx: "Intel SGX",
};

/**
 * What an accepted attestation established, in words, one line per fact: hardware and TCB, the release and its
 * image, and how the evidence is bound to this connection. The CLI prints these and the web app shows them.
 */
export function describeAttestation(a: ProviderAttestation): string[] {
  const ev = a.evidence;
  const lines: string[] = [];
  if (ev.tee === "insecure-dev") {
    lines.push(
      "hardware: NONE: insecure-dev evidence from no TEE proves nothing (accepted only on a devnet)",
    );
  } else {
    const root =
      ev.tee === "snp"
        ? `report signed by its ${ev.snp?.signer.toUpperCase() ?? "VCEK"}, chained to AMD's pinned ARK-${ev.snp?.product ?? "?"}`
        : "quote signed by the quoting enclave, PCK chained to Intel's pinned SGX Root CA";
    lines.push(`hardware: genuine ${HARDWARE[ev.tee]} (${root})${ev.debug ? ", DEBUG guest" : ""}`);
    const tcb = Object.entries(ev.tcb)
      .filter(([, v]) => typeof v === "number")
      .map(([k, v]) => `${k} ${v}`)
      .slice(0, 6)
      .join(", ");
    const status =
      ev.tcbStatus === "Unknown"
        ? ev.tee === "snp"
          ? "Unknown (AMD publishes no TCB status)"
          : "Unknown (no collateral)"
        : ev.tcbStatus;
    lines.push(
      `TCB: status ${status}${ev.advisoryIds.length ? `, advisories ${ev.advisoryIds.join(", ")}` : ""}${tcb ? `; ${tcb}` : ""}`,
    );
  }
  if (a.release) {
    const r = a.release.release;
    lines.push(
      `release: ${r.version} (${shortHex(r.id)}), published ${new Date(Number(r.publishedAt) * 1000).toISOString()}; ` +
        `measured configuration "${a.release.measurement.config}"`,
    );
    lines.push(`image: sha256 ${r.imageDigest.slice(2)}${r.source ? ` (source: ${r.source})` : ""}`);
    if (a.release.declaredMismatch)
      lines.push(
        `warning: the provider declares release ${shortHex(a.release.declaredMismatch)} in the Registry, but its evidence is release ${r.version}`,
      );
  } else {
    lines.push(`release: ${a.releaseNote ?? "none"}`);
  }
  lines.push(
    `binding: the evidence's report data commits to this session's fresh nonce, to the libp2p key of peer ` +
      `${a.peerId} (which authenticated this connection to ${a.remoteAddr}) and to the encryption key ` +
      `${shortHex(toHex(a.encryptionPublicKey), 24)} that secrets are sealed to`,
  );
  lines.push(`policy: ${a.policySource}`);
  return lines;
}
