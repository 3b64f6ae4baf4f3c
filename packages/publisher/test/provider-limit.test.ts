// The web app's My pods asks every pod's provider for its status at once. A provider serves at most 8 calls of
// one protocol per peer (more get RESOURCE_EXHAUSTED), so the calls go through PerProviderLimit: at most
// CALLS_PER_PROVIDER in flight per provider. Against a real libp2p provider node serving the signed `status`.
import { createP2PNode, type P2PNode, ReplayCache, registerSignedUnary } from "@trustedpods/p2p";
import { PodPhase, StatusRequestSchema, StatusResponseSchema } from "@trustedpods/protocol";
import { type Hex, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CALLS_PER_PROVIDER,
  isNotFoundOnProvider,
  PerProviderLimit,
  type PodConnection,
  PublisherError,
  podConnection,
  podStatus,
  providerCalls,
} from "../src/index.js";

const CHAIN_ID = 31337;
const provider = privateKeyToAccount(generatePrivateKey()).address;
const publisher = privateKeyToAccount(generatePrivateKey());
const podIds: Hex[] = Array.from({ length: 12 }, (_, i) => toHex(i + 1, { size: 32 }));

let server: P2PNode;
let client: P2PNode;
let conn: PodConnection;
let inFlight = 0;
let most = 0;

beforeAll(async () => {
  server = await createP2PNode({
    listen: ["/ip4/127.0.0.1/tcp/0"],
    inboundConnectionsPerSecondPerHost: 1000,
  });
  client = await createP2PNode();
  // The daemon's limits (8 per peer by default); each call takes a moment, as a real status does.
  await registerSignedUnary(
    server,
    "status",
    StatusRequestSchema,
    StatusResponseSchema,
    async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 500));
      inFlight--;
      return { phase: PodPhase.RUNNING };
    },
    { verifier: { provider, chainId: CHAIN_ID, replay: await ReplayCache.open() } },
  );
  conn = podConnection(
    client,
    { provider, chainId: CHAIN_ID },
    publisher,
    server.getMultiaddrs().map(String),
  );
  // One connection up front: the calls below share it, as the web app's do once it has dialed the provider.
  await podStatus(conn, podIds[0]!);
}, 60_000);

afterAll(async () => {
  await client?.stop();
  await server?.stop();
});

describe("status calls to one provider", () => {
  it("all at once, 12 of them overrun the provider's per-peer limit: the problem the limit solves", async () => {
    most = 0;
    const results = await Promise.allSettled(podIds.map((id) => podStatus(conn, id)));
    const refused = results.filter(
      (r) =>
        r.status === "rejected" &&
        r.reason instanceof PublisherError &&
        r.reason.details?.providerCode === "RESOURCE_EXHAUSTED",
    );
    expect(refused.length).toBeGreaterThan(0);
    expect(isNotFoundOnProvider(refused[0]!.status === "rejected" ? refused[0]!.reason : null)).toBe(false);
  }, 60_000);

  it("through the web app's limit, at most 4 are in flight and every one is answered", async () => {
    most = 0;
    expect(providerCalls.max).toBe(CALLS_PER_PROVIDER);
    expect(CALLS_PER_PROVIDER).toBe(4);
    const phases = await Promise.all(
      podIds.map((id) => providerCalls.run(provider, () => podStatus(conn, id).then((s) => s.phase))),
    );
    expect(phases).toEqual(podIds.map(() => "running"));
    expect(most).toBeLessThanOrEqual(CALLS_PER_PROVIDER);
    expect(most).toBeGreaterThan(1);
  }, 60_000);

  it("the limit is per provider: another provider's calls do not wait, and a failure frees its slot", async () => {
    const limit = new PerProviderLimit(2);
    const active = new Map<string, number>();
    const peak = new Map<string, number>();
    const task = (p: `0x${string}`, fail = false) =>
      limit.run(p, async () => {
        active.set(p, (active.get(p) ?? 0) + 1);
        peak.set(p, Math.max(peak.get(p) ?? 0, active.get(p)!));
        await new Promise((r) => setTimeout(r, 20));
        active.set(p, active.get(p)! - 1);
        if (fail) throw new Error("refused");
        return p;
      });
    const a = "0x000000000000000000000000000000000000000a";
    const b = "0x000000000000000000000000000000000000000b";
    const results = await Promise.allSettled([
      task(a, true),
      task(a, true),
      ...Array.from({ length: 4 }, () => task(a)),
      ...Array.from({ length: 6 }, () => task(b)),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
    expect([peak.get(a), peak.get(b)]).toEqual([2, 2]);
  });
});
