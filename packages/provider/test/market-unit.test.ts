// The provider's listing rules that need no chain: what a publisher may change on a listing container, and the
// validation of the listing documents fetched from IPFS (hostile input).
import { RpcError } from "@trustedpods/p2p";
import { type Container, ErrorCode } from "@trustedpods/protocol";
import { describe, expect, it } from "vitest";
import {
  checkListingContainer,
  LISTING_KEYS_TYPE,
  LISTING_METADATA_TYPE,
  ListingDocError,
  type ListingView,
  parseKeyEnvelope,
  parseListingMetadata,
} from "../src/provision/listing.js";

const view = (allowEntrypointOverride: boolean): ListingView => ({
  listingId: 7n,
  developer: "0x00000000000000000000000000000000000000aa",
  manifestDigest: `sha256:${"ab".repeat(32)}`,
  metadataCid: "bafy",
  wrappedKeyCid: "bafz",
  allowEntrypointOverride,
  block: 1n,
});

function ctr(extra: Partial<Container> = {}): Container {
  return {
    name: "app",
    image: { kind: "listing", listingId: 7n },
    command: [],
    args: [],
    env: [],
    ports: [],
    volumeMounts: [],
    resources: { cpuMillis: 100n, memoryBytes: 1n << 25n, storageBytes: 0n, gpu: 0n },
    ...extra,
  };
}

function refusal(fn: () => void): RpcError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RpcError);
    return err as RpcError;
  }
  throw new Error("not refused");
}

describe("checkListingContainer", () => {
  it("allows args, env, an http probe and a working dir on a fixed-entrypoint listing", () => {
    expect(() =>
      checkListingContainer(
        ctr({
          args: ["--port", "80"],
          env: [{ name: "MODE", kind: "value", value: "fast" }],
          workingDir: "/data",
          healthCheck: {
            probe: { kind: "http", path: "/", port: 80 },
            intervalMs: 1000n,
            timeoutMs: 1000n,
            retries: 1,
            startPeriodMs: 0n,
          },
        }),
        0,
        view(false),
      ),
    ).not.toThrow();
  });

  it("refuses a command, an exec probe and dynamic-loader variables, naming the field", () => {
    const cases: [Partial<Container>, string][] = [
      [{ command: ["/bin/sh"] }, "spec.containers[2].command"],
      [
        {
          healthCheck: {
            probe: { kind: "exec", command: ["cat", "/app/secret"] },
            intervalMs: 1000n,
            timeoutMs: 1000n,
            retries: 1,
            startPeriodMs: 0n,
          },
        },
        "spec.containers[2].healthCheck",
      ],
      [{ env: [{ name: "LD_PRELOAD", kind: "value", value: "/x.so" }] }, "spec.containers[2].env.LD_PRELOAD"],
      [
        { env: [{ name: "LD_LIBRARY_PATH", kind: "secret", secret: "s" }] },
        "spec.containers[2].env.LD_LIBRARY_PATH",
      ],
      [
        { env: [{ name: "GLIBC_TUNABLES", kind: "value", value: "x" }] },
        "spec.containers[2].env.GLIBC_TUNABLES",
      ],
    ];
    for (const [extra, field] of cases) {
      const e = refusal(() => checkListingContainer(ctr(extra), 2, view(false)));
      expect(e.code).toBe(ErrorCode.PERMISSION_DENIED);
      expect(e.details.field).toBe(field);
      expect(e.details.listing).toBe("7");
    }
  });

  it("lets a listing that allows overrides take a command", () => {
    expect(() => checkListingContainer(ctr({ command: ["/bin/sh"] }), 0, view(true))).not.toThrow();
  });
});

describe("listing documents", () => {
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const digest = `sha256:${"cd".repeat(32)}`;
  it("parses a metadata document and a key envelope", () => {
    const m = parseListingMetadata(
      enc({ type: LISTING_METADATA_TYPE, name: "x", image: { cid: "bafy", digest } }),
    );
    expect(m.image.digest).toBe(digest);
    const e = parseKeyEnvelope(
      enc({
        type: LISTING_KEYS_TYPE,
        listingId: "7",
        provider: "0x00000000000000000000000000000000000000aa",
        manifestDigest: digest,
        layers: { [digest]: "e30=" },
      }),
    );
    expect(Object.keys(e.layers)).toEqual([digest]);
  });

  it("refuses wrong types, bad addresses, bad layer digests and oversized documents", () => {
    const base = {
      type: LISTING_KEYS_TYPE,
      listingId: "7",
      provider: "0x00000000000000000000000000000000000000aa",
      manifestDigest: digest,
      layers: {},
    };
    for (const bad of [
      { ...base, type: LISTING_METADATA_TYPE },
      { ...base, provider: "nobody" },
      { ...base, layers: { "sha256:short": "x" } },
      { ...base, layers: { [digest]: 5 } },
      { ...base, manifestDigest: "md5:x" },
    ])
      expect(() => parseKeyEnvelope(enc(bad))).toThrow(ListingDocError);
    expect(() => parseKeyEnvelope(new Uint8Array(300 * 1024))).toThrow(/too large/);
    expect(() =>
      parseListingMetadata(enc({ type: LISTING_METADATA_TYPE, name: "x", image: { cid: "b", digest: "x" } })),
    ).toThrow(ListingDocError);
  });
});
