// Marketplace SDK pieces that need no chain: listing documents, the price breakdown's split (the same floor
// arithmetic as the Payments contract), fixed fees in the channel's token, and the entrypoint rule checked before
// a publisher pays. (The chain-backed parts run end to end in packages/provider/test/market-story.test.ts and
// packages/cli/test/market.test.ts.)
import type { Pod } from "@trustedpods/protocol";
import type { Address } from "viem";
import { describe, expect, it } from "vitest";
import {
  breakdownLines,
  checkPodAgainstListings,
  LISTING_METADATA_TYPE,
  type ListingInfo,
  type ListingRequirements,
  listingFeesIn,
  listingsOfPod,
  MarketError,
  parseListingMetadataDoc,
  priceBreakdown,
} from "../src/index.js";

const A = "0x00000000000000000000000000000000000000aa" as Address;
const B = "0x00000000000000000000000000000000000000bb" as Address;
const P = "0x00000000000000000000000000000000000000cc" as Address;
const T = "0x00000000000000000000000000000000000000dd" as Address;
const ZERO = "0x0000000000000000000000000000000000000000" as Address;
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function listing(id: bigint, developer: Address, bps: number, fee = 0n, override = false): ListingInfo {
  return {
    listingId: id,
    developer,
    royaltyBps: bps,
    allowEntrypointOverride: override,
    active: true,
    feeToken: fee > 0n ? T : ZERO,
    fixedFee: fee,
    manifestDigest: `0x${"11".repeat(32)}`,
    metadataCid: "bafy",
    authorizedProviders: [P],
  };
}

function reqOf(...ls: ListingInfo[]): ListingRequirements {
  return {
    listings: ls,
    royalties: ls.map((l) => ({ recipient: l.developer, bps: l.royaltyBps, listingId: l.listingId })),
    fees: ls
      .filter((l) => l.fixedFee > 0n)
      .map((l) => ({
        listingId: l.listingId,
        developer: l.developer,
        token: l.feeToken,
        amount: l.fixedFee,
      })),
    providers: [P],
    entrypoint: ls.map((l) => ({ listingId: l.listingId, allowOverride: l.allowEntrypointOverride })),
  };
}

function podWith(...cs: { id?: bigint; command?: string[] }[]): Pod {
  return {
    name: "p",
    containers: cs.map((c, i) => ({
      name: `c${i}`,
      image: c.id !== undefined ? { kind: "listing", listingId: c.id } : { kind: "local", name: "x" },
      command: c.command ?? [],
      args: ["--port", "80"],
      env: [],
      ports: [],
      volumeMounts: [],
      resources: { cpuMillis: 100n, memoryBytes: 1n << 25n, storageBytes: 0n, gpu: 0n },
    })),
    volumes: [],
    replicas: { min: 1, max: 1, idleSeconds: 0n },
  };
}

describe("listing metadata", () => {
  const good = {
    type: LISTING_METADATA_TYPE,
    name: "db",
    image: { cid: "bafy", digest: `sha256:${"ab".repeat(32)}` },
  };
  it("reads a valid document and keeps the sample manifest", () => {
    const m = parseListingMetadataDoc(
      enc({ ...good, description: "a database", sampleManifest: "kind: Pod\n" }),
    );
    expect(m.name).toBe("db");
    expect(m.sampleManifest).toBe("kind: Pod\n");
  });
  it("refuses other types, bad digests, non-JSON and oversized documents", () => {
    for (const bad of [
      enc({ ...good, type: "something/else" }),
      enc({ ...good, image: { cid: "bafy", digest: "sha256:XYZ" } }),
      new TextEncoder().encode("not json"),
      new Uint8Array(300 * 1024),
    ])
      expect(() => parseListingMetadataDoc(bad)).toThrow(MarketError);
  });
});

describe("price breakdown", () => {
  it("splits the rate as the contract splits claims (floor per developer, the rest to the provider)", () => {
    const req = reqOf(listing(1n, A, 1000), listing(2n, B, 333, 7n));
    const lines = priceBreakdown(P, 1001n, req);
    expect(lines.map((l) => [l.role, l.payee, l.perSecond, l.once])).toEqual([
      ["provider", P, 1001n - 100n - 33n, 0n],
      ["developer", A, 100n, 0n],
      ["developer", B, 33n, 7n],
    ]);
    expect(lines.reduce((t, l) => t + l.perSecond, 0n)).toBe(1001n);
    const text = breakdownLines(lines, (a) => `${a}w`);
    expect(text[0]).toBe(
      `${(1001n - 133n) * 3600n}w/hour to ${P}: provider: runs the pod (CPU, memory, storage, network) inside its TEE`,
    );
    expect(text[2]).toContain("+ 7w once");
    expect(text[2]).toContain("3.33% of what the provider claims");
  });

  it("sums fixed fees in the channel's token and refuses a fee in another token", () => {
    const req = reqOf(listing(1n, A, 100, 5n), listing(2n, B, 100, 6n));
    expect(listingFeesIn(req, T)).toBe(11n);
    expect(listingFeesIn(undefined, T)).toBe(0n);
    expect(() => listingFeesIn(req, P)).toThrow(/charges its fixed fee in token/);
  });
});

describe("entrypoint rule before paying", () => {
  it("lists each listing once and refuses a command on a fixed-entrypoint listing; args pass", () => {
    const pod = podWith({ id: 1n }, { id: 2n, command: ["sh"] }, { id: 1n }, {});
    expect(listingsOfPod(pod)).toEqual([1n, 2n]);
    expect(() => checkPodAgainstListings(pod, reqOf(listing(1n, A, 1), listing(2n, B, 1)))).toThrow(
      /overrides the entrypoint of listing 2/,
    );
    expect(() =>
      checkPodAgainstListings(pod, reqOf(listing(1n, A, 1), listing(2n, B, 1, 0n, true))),
    ).not.toThrow();
  });
});
