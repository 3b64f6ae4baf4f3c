// Test-only, shared by the publisher and cli tests. A TEST PROVIDER: a real libp2p node that serves only
// `attest`, answering with insecure-dev evidence from @trustedpods/attestation. It stands in for the provider
// daemon so the publisher's verification runs against a real peer without a chain, IPFS or Podman. `mode`
// makes it misbehave the ways a verifier must catch.
import { generateKeyPair, publicKeyToProtobuf } from "@libp2p/crypto/keys";
import { computeReportData, envelopeToProto, insecureDevAttester } from "@trustedpods/attestation";
import { createP2PNode, type P2PNode, registerUnary } from "@trustedpods/p2p";
import { AttestRequestSchema, AttestResponseSchema } from "@trustedpods/protocol";

export type TestProviderMode =
  /** Evidence binds this session: the nonce, this node's libp2p key and its encryption key. */
  | "honest"
  /** Relay: evidence of another node (binding that node's libp2p key), its key named in the response. */
  | "relay-names-other-key"
  /** Relay: another node's evidence, but this node's key in the response field. */
  | "relay-claims-own-key"
  /** Replay: evidence binding an earlier nonce. */
  | "replay"
  /** Evidence binds a different encryption key than the one the response offers. */
  | "swapped-encryption-key";

export interface TestProvider {
  node: P2PNode;
  peerId: string;
  multiaddrs: string[];
  encryptionPublicKey: Uint8Array;
  mode: TestProviderMode;
  stop(): Promise<void>;
}

async function p256Spki(): Promise<Uint8Array> {
  const pair = (await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
    "deriveBits",
  ])) as CryptoKeyPair;
  return new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
}

export async function startTestProvider(mode: TestProviderMode = "honest"): Promise<TestProvider> {
  // TCP for Node publishers, WebSockets for the browser test.
  const node = await createP2PNode({
    listen: ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"],
    inboundConnectionsPerSecondPerHost: 1000,
  });
  const ownKey = publicKeyToProtobuf(node.peerId.publicKey!);
  const otherKey = publicKeyToProtobuf((await generateKeyPair("Ed25519")).publicKey);
  const encryptionPublicKey = await p256Spki();
  const otherEncryptionKey = await p256Spki();
  const attester = insecureDevAttester();
  const provider: TestProvider = {
    node,
    peerId: node.peerId.toString(),
    multiaddrs: node.getMultiaddrs().map(String),
    encryptionPublicKey,
    mode,
    stop: async () => {
      await node.stop();
    },
  };
  await registerUnary(node, "attest", AttestRequestSchema, AttestResponseSchema, async (req) => {
    const m = provider.mode;
    const boundKey = m === "relay-names-other-key" || m === "relay-claims-own-key" ? otherKey : ownKey;
    const nonce = m === "replay" ? new Uint8Array(32).fill(7) : req.nonce;
    const boundEncryption = m === "swapped-encryption-key" ? otherEncryptionKey : encryptionPublicKey;
    const reportData = await computeReportData({
      nonce,
      libp2pPublicKey: boundKey,
      encryptionPublicKey: boundEncryption,
    });
    return {
      evidence: envelopeToProto(await attester.attest(reportData)),
      libp2pPublicKey: m === "relay-names-other-key" ? otherKey : ownKey,
      encryptionPublicKey,
    };
  });
  return provider;
}
