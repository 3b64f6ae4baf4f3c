// The Marketplace end to end on real anvil + real libp2p + real Helia + real Podman: two developers publish
// encrypted images and authorize the provider (attested over libp2p, keys re-wrapped to its attested key); a
// publisher reads the listings' requirements, opens a channel paying both developers, provisions one pod that
// runs both listings and uses it over HTTP; the provider claims; each developer withdraws exactly its share.
// Then every edge case is tried and refused with a clear error. (Test-only use of @trustedpods/publisher: the
// developer and publisher SDKs are the real clients of this provider.)

import { execFile } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import {
  balanceOf,
  ensureAllowance,
  getChannel,
  openChannel,
  paymentsAbi,
  type Royalty,
  revokeProvider,
  updateListingMetadata,
  withdraw,
} from "@trustedpods/chain";
import type { DevChain } from "@trustedpods/chain/node";
import type { IpfsNode } from "@trustedpods/ipfs";
import { createP2PNode } from "@trustedpods/p2p";
import {
  type Container,
  DeleteRequestSchema,
  DeleteResponseSchema,
  ErrorCode,
  type Pod,
  PodPhase,
  StatusRequestSchema,
  StatusResponseSchema,
} from "@trustedpods/protocol";
import {
  DEVNET_POLICY,
  listingRequirements,
  listingsOfPod,
  priceBreakdown,
  verifyProvider,
} from "@trustedpods/publisher";
import {
  authorizeListingProvider,
  type DeveloperKey,
  loadOrCreateDeveloperKey,
  publishListing,
} from "@trustedpods/publisher/node";
import { bytesToHex, erc20Abi, getAddress, type Hex, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { Daemon } from "../src/daemon.js";
import { ListingImages } from "../src/provision/listing.js";
import {
  buildBusyboxLayout,
  type DaemonTestWorld,
  haveTools,
  mineBlocks,
  Publisher,
  provisionPod,
  randomPodId,
  rpcRefusal,
  startDaemonTestWorld,
  stopDaemonTestWorld,
  waitFor,
} from "./daemon-helpers.js";

const run = promisify(execFile);
const uid = randomBytes(4).toString("hex");
if (!haveTools) console.warn("SKIP market-story.test.ts: podman, buildah or busybox-static missing");

let world: DaemonTestWorld | undefined;
let tmp: string;
let chain: DevChain;
let ipfs: IpfsNode;
let daemon: Daemon;
let alice: Publisher;
let provider: Hex;
let providerKey: Uint8Array;
let layoutA: string;
let layoutB: string;
const devA = () => chain.context(3);
const devB = () => chain.context(4);
let keyA: DeveloperKey;
let keyB: DeveloperKey;
let listingA: bigint;
let listingB: bigint;

const mine = (blocks = 1) => mineBlocks(chain, blocks);

function listingContainer(
  name: string,
  listingId: bigint,
  port: number,
  extra: Partial<Container> = {},
): Container {
  return {
    name,
    image: { kind: "listing", listingId },
    command: [],
    // Args replace the image's CMD: allowed on every listing.
    args: ["sh", "-c", `exec httpd -f -p ${port} -h /www`],
    env: [],
    ports: [{ containerPort: port, protocol: "tcp" }],
    volumeMounts: [],
    resources: { cpuMillis: 100n, memoryBytes: 32n << 20n, storageBytes: 0n, gpu: 0n },
    ...extra,
  };
}

const podOf = (name: string, containers: Container[]): Pod => ({
  name,
  containers,
  volumes: [],
  replicas: { min: 1, max: 1, idleSeconds: 0n },
});

/** Quote from the daemon, then open the channel with `royalties` (and the listings' fees). */
async function openFor(p: Pod, royalties: Royalty[], fees = 0n, quoted: Pod = p) {
  const podId = randomPodId();
  const quote = await alice.quote(quoted, podId);
  const rate = BigInt(quote.pricePerSecond);
  const opened = await openChannel(chain.context(2), {
    quote: {
      provider: getAddress(quote.provider),
      publisher: alice.account.address,
      podId,
      token: getAddress(quote.pricing!.token),
      ratePerSecond: rate,
      minNoticeSeconds: Number(quote.minNoticeSeconds),
      expiry: quote.expiresAt,
      specHash: bytesToHex(quote.specHash),
      royaltiesHash: bytesToHex(quote.royaltiesHash),
    },
    quoteSignature: bytesToHex(quote.signature),
    podId,
    deposit: rate * 10_000n,
    noticeSeconds: 600,
    royalties,
    fees,
    approve: false,
  });
  await mine(2);
  return { podId, rate, channelId: opened.channelId };
}

const provision = (podId: Hex, p: Pod) => provisionPod(alice, chain, podId, p);
const refusal = rpcRefusal;

function tcpOf(e: { target: { case?: string; value?: unknown } } | undefined): string {
  return e?.target.case === "tcpAddress" ? String(e.target.value) : "";
}

/** An SPKI key nobody here holds the private half of. */
function strangerSpki(): Uint8Array {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return new Uint8Array(publicKey.export({ type: "spki", format: "der" }));
}

async function publish(layout: string, key: DeveloperKey, dev: number, royaltyBps: number, extra = {}) {
  return publishListing({
    chain: chain.context(dev),
    store: ipfs,
    image: layout,
    key,
    name: `listing-${dev}-${royaltyBps}`,
    royaltyBps,
    ...extra,
  });
}

async function authorize(listingId: bigint, dev: number, key: DeveloperKey, encKey = providerKey) {
  const out = await authorizeListingProvider({
    chain: chain.context(dev),
    store: ipfs,
    listingId,
    provider,
    providerEncryptionKey: encKey,
    key: key.privateKey,
  });
  await mine(2);
  return out;
}

beforeAll(async () => {
  if (!haveTools) return;
  world = await startDaemonTestWorld("tpod-market-", `mk${uid}`);
  ({ tmp, chain, pubIpfs: ipfs } = world);
  const a = buildBusyboxLayout(path.join(tmp, "a"), `localhost/tpod-market-a-${uid}:latest`, "listing-a\n");
  const b = buildBusyboxLayout(path.join(tmp, "b"), `localhost/tpod-market-b-${uid}:latest`, "listing-b\n");
  daemon = await Daemon.start(loadConfig(world.cfgFile), {
    billing: { claimIntervalMs: 200, meterIntervalMs: 300, maxBackoffMs: 1000 },
  });
  provider = daemon.info().provider;
  layoutA = await a;
  layoutB = await b;
  keyA = await loadOrCreateDeveloperKey(path.join(tmp, "devA", "image-key.pem"));
  keyB = await loadOrCreateDeveloperKey(path.join(tmp, "devB", "image-key.pem"));
  alice = await Publisher.forDaemon(chain, daemon, 2);
  await ensureAllowance(chain.context(2), chain.contracts.token, 2n ** 200n);

  // Each developer attests the provider over libp2p with its (devnet) policy: the key it wraps to is the one
  // the evidence binds, not one the provider merely claims.
  const node = await createP2PNode({ transports: ["tcp"] });
  try {
    const att = await verifyProvider({ node, multiaddrs: daemon.info().multiaddrs, policy: DEVNET_POLICY });
    providerKey = att.encryptionPublicKey;
  } finally {
    await node.stop();
  }
  expect(bytesToHex(providerKey).slice(2)).toBe(daemon.info().encryptionPublicKey.replace(/^0x/, ""));

  listingA = (await publish(layoutA, keyA, 3, 1000)).listingId;
  listingB = (await publish(layoutB, keyB, 4, 250, { feeToken: chain.contracts.token, fixedFee: 5000n }))
    .listingId;
  await authorize(listingA, 3, keyA);
  await authorize(listingB, 4, keyB);
}, 240_000);

afterAll(async () => {
  if (!haveTools) return;
  await stopDaemonTestWorld(world, daemon, [alice]);
}, 120_000);

async function imageExists(ref: string): Promise<boolean> {
  return run("podman", ["image", "exists", ref]).then(
    () => true,
    () => false,
  );
}

describe.skipIf(!haveTools)("marketplace end to end", () => {
  it("two developers in one pod: deploy, use, claim, and each developer withdraws exactly its share", async () => {
    const p = podOf("two", [listingContainer("a", listingA, 8080), listingContainer("b", listingB, 8081)]);
    const ids = listingsOfPod(p);
    expect(ids).toEqual([listingA, listingB]);
    const req = await listingRequirements(chain.context(2), ids, provider);
    expect(req.providers).toEqual([getAddress(provider)]);
    expect(req.royalties).toEqual([
      { recipient: chain.accounts[3]!.address, bps: 1000, listingId: listingA },
      { recipient: chain.accounts[4]!.address, bps: 250, listingId: listingB },
    ]);
    expect(req.fees).toEqual([
      {
        listingId: listingB,
        developer: chain.accounts[4]!.address,
        token: getAddress(chain.contracts.token),
        amount: 5000n,
      },
    ]);
    const { podId, rate, channelId } = await openFor(p, req.royalties, 5000n);
    const lines = priceBreakdown(provider, rate, req);
    expect(lines.map((l) => l.perSecond)).toEqual([
      rate - (rate * 1000n) / 10000n - (rate * 250n) / 10000n,
      (rate * 1000n) / 10000n,
      (rate * 250n) / 10000n,
    ]);

    const res = await provision(podId, p);
    const tcp = (c: string) => tcpOf(res.endpoints.find((e) => e.container === c));
    const body = async (c: string) => (await fetch(`http://${tcp(c)}/`)).text();
    expect(
      await waitFor("listing a serving", async () => (await body("a").catch(() => "")) || undefined),
    ).toBe("listing-a\n");
    expect(
      await waitFor("listing b serving", async () => (await body("b").catch(() => "")) || undefined),
    ).toBe("listing-b\n");

    // The decrypted images live under this pod's engine names only.
    const rec = daemon.state.listPods().find((x) => x.podId === podId)!;
    const refA = rec.images.a!;
    expect(refA).toContain(rec.id);
    expect(await imageExists(refA)).toBe(true);
    // Another pod cannot name it: only ipfs and listing images reach the engine.
    const other = podOf("thief", [
      { ...listingContainer("t", listingA, 8082), image: { kind: "local", name: refA } },
    ]);
    const thief = await refusal(provision(randomPodId(), other));
    expect(thief.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(thief.message).toContain("is a local name");

    // Let it accrue, then delete: the provider's final claim splits on chain.
    await chain.publicClient.request({ method: "evm_increaseTime" as never, params: [toHex(100)] as never });
    await mine(2);
    const key = { publisher: alice.account.address, provider, podId };
    await waitFor("a claim", async () => (await getChannel(chain.context(2), key)).claimed > 0n);
    await alice.call(
      "delete",
      DeleteRequestSchema,
      { podId: Buffer.from(podId.slice(2), "hex") },
      DeleteResponseSchema,
      podId,
    );
    await waitFor("providerClose", async () => (await getChannel(chain.context(2), key)).closeAt !== 0n);
    await waitFor("no claim pending", async () => {
      const c = await getChannel(chain.context(2), key);
      const accrued = (await chain.publicClient.readContract({
        address: chain.contracts.payments,
        abi: paymentsAbi,
        functionName: "accrued",
        args: [alice.account.address, provider, podId],
      })) as bigint;
      return c.claimed === accrued;
    });
    expect(await imageExists(refA)).toBe(false);

    // Exactly each developer's share: floor(amount × bps / 10000) of every claim, plus B's fixed fee.
    const claims = await chain.publicClient.getContractEvents({
      address: chain.contracts.payments,
      abi: paymentsAbi,
      eventName: "Claimed",
      args: { channelId },
      fromBlock: 0n,
    });
    expect(claims.length).toBeGreaterThan(0);
    const amounts = claims.map((c) => (c.args as { amount: bigint }).amount);
    const share = (bps: bigint) => amounts.reduce((t, a) => t + (a * bps) / 10000n, 0n);
    const token = chain.contracts.token;
    const [devA3, devB4] = [chain.accounts[3]!.address, chain.accounts[4]!.address];
    expect(await balanceOf(chain.context(2), devA3, token)).toBe(share(1000n));
    expect(await balanceOf(chain.context(2), devB4, token)).toBe(share(250n) + 5000n);
    const held = () =>
      chain.publicClient.readContract({
        address: token,
        abi: erc20Abi,
        functionName: "balanceOf",
        args: [devA3],
      });
    const before = await held();
    const w = await withdraw(devA(), token);
    expect(w.result).toBe(share(1000n));
    expect((await held()) - before).toBe(share(1000n));
    expect((await withdraw(devB(), token)).result).toBe(share(250n) + 5000n);
    expect(await balanceOf(chain.context(2), devA3, token)).toBe(0n);
  }, 240_000);

  it("refuses a channel that does not pay every developer of the pod", async () => {
    const p = podOf("unpaid", [listingContainer("a", listingA, 8080), listingContainer("b", listingB, 8081)]);
    // The channel was opened with a quote for a pod of the same size running only listing A (the contract only
    // opens a channel with the royalty list its quote signed), then a pod also running B is provisioned on it.
    const onlyA = podOf("unpaid", [
      listingContainer("a", listingA, 8080),
      listingContainer("b", listingA, 8081),
    ]);
    const { podId } = await openFor(
      p,
      [{ recipient: chain.accounts[3]!.address, bps: 1000, listingId: listingA }],
      0n,
      onlyA,
    );
    const e = await refusal(provision(podId, p));
    expect(e.code).toBe(ErrorCode.PAYMENT_REQUIRED);
    expect(e.message).toContain(`royalty missing: the pod runs listing ${listingB}`);
    // And the contract refuses a royalty list other than the quoted one (here: below the listing's terms).
    await expect(
      openFor(p, [
        { recipient: chain.accounts[3]!.address, bps: 999, listingId: listingA },
        { recipient: chain.accounts[4]!.address, bps: 250, listingId: listingB },
      ]),
    ).rejects.toThrow();
  }, 120_000);

  it("refuses to override the entrypoint or run code in the listed image; args are allowed", async () => {
    const cases: [string, Partial<Container>, string][] = [
      ["command", { command: ["sh", "-c", "cat /bin/busybox"] }, "does not allow overriding the entrypoint"],
      [
        "probe",
        {
          healthCheck: {
            probe: { kind: "exec", command: ["cat", "/www/index.html"] },
            intervalMs: 10_000n,
            timeoutMs: 1000n,
            retries: 3,
            startPeriodMs: 0n,
          },
        },
        "an exec health check would run a command inside the listed image",
      ],
      ["preload", { env: [{ name: "LD_PRELOAD", kind: "value", value: "/tmp/x.so" }] }, "env var LD_PRELOAD"],
    ];
    for (const [name, extra, msg] of cases) {
      const p = podOf(`ep-${name}`, [listingContainer("a", listingA, 8080, extra)]);
      const { podId } = await openFor(p, [
        { recipient: chain.accounts[3]!.address, bps: 1000, listingId: listingA },
      ]);
      const e = await refusal(provision(podId, p));
      expect(e.code).toBe(ErrorCode.PERMISSION_DENIED);
      expect(e.message).toContain(msg);
      expect(e.details.reason).toBe("listing-entrypoint-fixed");
    }
    // A listing that allows overrides runs a replaced entrypoint.
    const open = await publish(layoutA, keyA, 3, 500, { allowEntrypointOverride: true });
    await authorize(open.listingId, 3, keyA);
    const p = podOf("ep-ok", [
      listingContainer("a", open.listingId, 8080, {
        command: ["sh", "-c", "exec httpd -f -p 8080 -h /www"],
        args: [],
      }),
    ]);
    const { podId } = await openFor(p, [
      { recipient: chain.accounts[3]!.address, bps: 500, listingId: open.listingId },
    ]);
    const res = await provision(podId, p);
    const s = await alice.call(
      "status",
      StatusRequestSchema,
      { podId: Buffer.from(podId.slice(2), "hex") },
      StatusResponseSchema,
      podId,
    );
    expect(s.phase).toBe(PodPhase.RUNNING);
    expect(res.endpoints, JSON.stringify(res.endpoints)).toHaveLength(1);
    expect(tcpOf(res.endpoints[0])).toMatch(/^127\.0\.0\.1:\d+$/);
    await alice.call(
      "delete",
      DeleteRequestSchema,
      { podId: Buffer.from(podId.slice(2), "hex") },
      DeleteResponseSchema,
      podId,
    );
  }, 180_000);

  it("refuses an envelope that does not unwrap with the provider's key", async () => {
    const l = await publish(layoutA, keyA, 3, 100);
    await authorize(l.listingId, 3, keyA, strangerSpki());
    const p = podOf("badkey", [listingContainer("a", l.listingId, 8080)]);
    const { podId } = await openFor(p, [
      { recipient: chain.accounts[3]!.address, bps: 100, listingId: l.listingId },
    ]);
    const e = await refusal(provision(podId, p));
    expect(e.code).toBe(ErrorCode.FAILED_PRECONDITION);
    expect(e.details.reason).toBe("envelope-does-not-unwrap");
    expect(e.message).toContain("does not unwrap with this provider's key");
  }, 120_000);

  it("runs exactly the listed image digest: another image behind the listing, or the encrypted image by CID, is refused", async () => {
    const pinned = await publish(layoutA, keyA, 3, 100);
    await authorize(pinned.listingId, 3, keyA);
    // Same software encrypted again (what an extended or re-tagged image amounts to: another manifest digest).
    const other = await publish(layoutA, keyA, 3, 100);
    expect(other.manifestDigest).not.toBe(pinned.manifestDigest);
    await updateListingMetadata(devA(), pinned.listingId, other.metadataCid);
    await mine(2);
    const p = podOf("swap", [listingContainer("a", pinned.listingId, 8080)]);
    const { podId } = await openFor(p, [
      { recipient: chain.accounts[3]!.address, bps: 100, listingId: pinned.listingId },
    ]);
    const e = await refusal(provision(podId, p));
    expect(e.code).toBe(ErrorCode.PERMISSION_DENIED);
    expect(e.details.reason).toBe("listing-digest-mismatch");
    expect(e.message).toContain(`pins image manifest ${pinned.manifestDigest}`);

    // Sidestepping the Marketplace: the encrypted image referenced directly cannot be decrypted here.
    const direct = podOf("direct", [
      {
        ...listingContainer("a", 0n, 8080),
        image: { kind: "ipfs", cid: other.imageCid, digest: other.manifestDigest },
      },
    ]);
    const d = await openFor(direct, []);
    const de = await refusal(provision(d.podId, direct));
    expect(de.code).toBe(ErrorCode.FAILED_PRECONDITION);
    expect(de.message).toContain("cannot decrypt image");
  }, 120_000);

  it("stops deployments where the developer revoked the provider", async () => {
    const l = await publish(layoutB, keyB, 4, 100);
    await authorize(l.listingId, 4, keyB);
    const p = podOf("revoked", [listingContainer("b", l.listingId, 8081)]);
    const { podId } = await openFor(p, [
      { recipient: chain.accounts[4]!.address, bps: 100, listingId: l.listingId },
    ]);
    await revokeProvider(devB(), l.listingId, provider);
    await mine(2);
    const e = await refusal(provision(podId, p));
    expect(e.code).toBe(ErrorCode.PAYMENT_REQUIRED);
    expect(e.message).toContain(`is not authorized for listing ${l.listingId}`);
    await expect(listingRequirements(chain.context(2), [l.listingId], provider)).rejects.toThrow(
      /not authorized for listing/,
    );
  }, 120_000);

  it("decides on confirmed state and refuses when its chain view is stale", async () => {
    const l = await publish(layoutA, keyA, 3, 100);
    await mine(6);
    const store = ipfs;
    const base = {
      chain: chain.context(1),
      provider,
      store,
      key: daemon.encryptionKey,
    };
    // Authorized at the head, but not yet under 5 confirmations: not authorized for this provider yet.
    await authorizeListingProvider({
      chain: devA(),
      store,
      listingId: l.listingId,
      provider,
      providerEncryptionKey: providerKey,
      key: keyA.privateKey,
    });
    const strict = new ListingImages({ ...base, confirmations: 5, maxHeadAgeSeconds: 0 });
    const early = await refusal(strict.resolve(l.listingId));
    expect(early.code).toBe(ErrorCode.PERMISSION_DENIED);
    expect(early.details.reason).toBe("provider-not-authorized");
    await mine(5);
    expect((await strict.resolve(l.listingId)).developer).toBe(chain.accounts[3]!.address);

    // A chain head an hour old (an RPC stuck on a stale fork): listing images are refused.
    const head = await chain.publicClient.getBlock();
    const stale = new ListingImages({
      ...base,
      confirmations: 1,
      maxHeadAgeSeconds: 600,
      now: () => Number(head.timestamp) + 3600,
    });
    const e = await refusal(stale.resolve(l.listingId));
    expect(e.code).toBe(ErrorCode.UNAVAILABLE);
    expect(e.details.reason).toBe("chain-view-stale");
    expect(e.message).toContain("chain.maxHeadAgeSeconds=600");
    // The daemon's config carries the bound.
    expect(daemon.config.chain.maxHeadAgeSeconds).toBe(900);
  }, 120_000);
});
