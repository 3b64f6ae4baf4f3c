import { createP2PNode, type P2PNode } from "@trustedpods/p2p";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestProvider, type TestProvider } from "../../../test-support/attest-provider.js";
import { DEVNET_POLICY, PublisherError, STRICT_POLICY, verifyProvider } from "../src/index.js";

let provider: TestProvider;
let publisher: P2PNode;

beforeAll(async () => {
  provider = await startTestProvider();
  publisher = await createP2PNode({ transports: ["tcp"] });
});

afterAll(async () => {
  await publisher?.stop();
  await provider?.stop();
});

async function refused(p: Promise<unknown>): Promise<PublisherError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PublisherError) return err;
    throw err;
  }
  throw new Error("expected the provider to be refused");
}

describe("verifyProvider against a real libp2p test provider (insecure-dev attester)", () => {
  it("accepts it under a policy that allows insecure-dev, returning the attested encryption key", async () => {
    provider.mode = "honest";
    const r = await verifyProvider({
      node: publisher,
      multiaddrs: provider.multiaddrs,
      policy: DEVNET_POLICY,
      policySource: "devnet default",
    });
    expect(r.peerId).toBe(provider.peerId);
    expect(r.insecure).toBe(true);
    expect(r.evidence.tee).toBe("insecure-dev");
    expect(Buffer.from(r.encryptionPublicKey).equals(Buffer.from(provider.encryptionPublicKey))).toBe(true);
    expect(r.nonce).toHaveLength(32);
    expect(r.summary).toMatchObject({ valid: true, tee: "insecure-dev" });
    expect(r.remoteAddr).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+/);
  });

  it("sends a fresh nonce every time", async () => {
    provider.mode = "honest";
    const a = await verifyProvider({
      node: publisher,
      multiaddrs: provider.multiaddrs,
      policy: DEVNET_POLICY,
    });
    const b = await verifyProvider({
      node: publisher,
      multiaddrs: provider.multiaddrs,
      policy: DEVNET_POLICY,
    });
    expect(Buffer.from(a.nonce).equals(Buffer.from(b.nonce))).toBe(false);
  });

  it("refuses it under the strict default policy, saying there is no TEE", async () => {
    provider.mode = "honest";
    const err = await refused(
      verifyProvider({
        node: publisher,
        multiaddrs: provider.multiaddrs,
        policy: STRICT_POLICY,
        policySource: "default",
      }),
    );
    expect(err.code).toBe("ATTESTATION_REFUSED");
    expect(err.field).toBe("policy.allowInsecureDev");
    expect(err.message).toMatch(/has no TEE: it sent insecure-dev evidence.*policy \(default\) refuses it/);
  });

  it("refuses evidence that binds another libp2p key (a relay), whichever key the response names", async () => {
    provider.mode = "relay-names-other-key";
    const named = await refused(
      verifyProvider({ node: publisher, multiaddrs: provider.multiaddrs, policy: DEVNET_POLICY }),
    );
    expect(named.code).toBe("ATTESTATION_REFUSED");
    expect(named.field).toBe("libp2pPublicKey");
    expect(named.message).toMatch(/attestation of another libp2p key/);

    provider.mode = "relay-claims-own-key";
    const claimed = await refused(
      verifyProvider({ node: publisher, multiaddrs: provider.multiaddrs, policy: DEVNET_POLICY }),
    );
    expect(claimed.code).toBe("ATTESTATION_REFUSED");
    expect((claimed.cause as { code?: string }).code).toBe("REPORT_DATA_MISMATCH");
    expect(claimed.message).toMatch(/does not bind this session/);
  });

  it("refuses evidence for another nonce (a replay) and for another encryption key", async () => {
    for (const mode of ["replay", "swapped-encryption-key"] as const) {
      provider.mode = mode;
      const err = await refused(
        verifyProvider({ node: publisher, multiaddrs: provider.multiaddrs, policy: DEVNET_POLICY }),
      );
      expect(err.code).toBe("ATTESTATION_REFUSED");
      expect((err.cause as { code?: string }).code).toBe("REPORT_DATA_MISMATCH");
    }
  });

  it("refuses a peer other than the expected one, and reports an unreachable provider", async () => {
    provider.mode = "honest";
    const other = await createP2PNode({ transports: ["tcp"] });
    try {
      const err = await refused(
        verifyProvider({
          node: publisher,
          multiaddrs: provider.multiaddrs,
          expectedPeerId: other.peerId.toString(),
          policy: DEVNET_POLICY,
        }),
      );
      expect(err.code).toBe("PEER_MISMATCH");
    } finally {
      await other.stop();
    }
    const dead = await refused(
      verifyProvider({
        node: publisher,
        multiaddrs: ["/ip4/127.0.0.1/tcp/1"],
        policy: DEVNET_POLICY,
        timeoutMs: 5_000,
      }),
    );
    expect(dead.code).toBe("PROVIDER_UNREACHABLE");
  });
});
