// The release registry on a real anvil chain: k-of-n publication, one-signer revocation, signer changes, and
// every refusal by its contract error.
import { type Address, type Hex, keccak256, toHex, zeroHash } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChainContext,
  changeReleaseSigners,
  deployReleases,
  devnetReleaseInput,
  eventsOf,
  getProvider,
  getRelease,
  listReleases,
  measurementKey,
  publishRelease,
  type ReleaseInput,
  ReleaseStatus,
  ReleaseTee,
  registerProvider,
  releaseApprovals,
  releaseId,
  releaseOfMeasurement,
  releaseSigners,
  releasesAbi,
  revokeRelease,
} from "../src/index.js";
import { type DevChain, startDevChain } from "../src/node.js";
import { expectChainError, walletFor } from "./helpers.js";

let chain: DevChain;
let seq = 0;
/** A fresh measurement value of `bytes` bytes. */
const value = (bytes: number): Hex => {
  const h = keccak256(toHex(`m-${seq++}-${process.pid}`)).slice(2);
  return `0x${h.repeat(Math.ceil((bytes * 2) / h.length)).slice(0, bytes * 2)}` as Hex;
};
const release = (over: Partial<ReleaseInput> = {}): ReleaseInput => ({
  version: `1.0.${seq++}`,
  imageDigest: keccak256(toHex(`image-${seq}`)),
  source: "git+https://example.org/tpod-image@0123abc",
  measurements: [
    { tee: ReleaseTee.snp, config: "milan, 4 vCPU", value: value(48), firmware: keccak256(toHex("ovmf")) },
    { tee: ReleaseTee.tdx, config: "spr, 4 vCPU", value: value(192), firmware: zeroHash },
  ],
  ...over,
});

beforeAll(async () => {
  chain = await startDevChain({ accounts: 6 });
});
afterAll(async () => {
  await chain?.stop();
});

/** A Releases contract of its own with signers = dev accounts `signers` and threshold `k`, and one context per account. */
async function releasesWith(signers: number[], k: number): Promise<ChainContext[]> {
  const address = await deployReleases(
    chain.publicClient,
    walletFor(chain, 0) as never,
    signers.map((i) => chain.accounts[i]!.address),
    k,
  );
  return chain.accounts.map((_, i) => {
    const c = chain.context(i);
    return { ...c, addresses: { ...c.addresses, releases: address } };
  });
}

describe("Releases, 1 of 1 (the devnet's)", () => {
  it("publishes in one call; the id is the input's hash; lookups find it by measurement", async () => {
    const ctx = chain.context(0);
    const input = release();
    const sent = await publishRelease(ctx, input);
    expect(sent).toMatchObject({ published: true, approvals: 1, threshold: 1 });
    expect(sent.id).toBe(releaseId(input));
    const names = eventsOf(releasesAbi, sent.receipt, chain.contracts.releases).map((e) => e.eventName);
    expect(names).toEqual(["Approved", "ReleasePublished"]);
    const r = await getRelease(ctx, sent.id);
    expect(r).toMatchObject({ version: input.version, imageDigest: input.imageDigest, status: 1 });
    expect(r.measurements.map((m) => m.value)).toEqual(input.measurements.map((m) => m.value));
    const found = await releaseOfMeasurement(ctx, ReleaseTee.tdx, input.measurements[1]!.value);
    expect(found?.id).toBe(sent.id);
    expect(await releaseOfMeasurement(ctx, ReleaseTee.snp, value(48))).toBeUndefined();
    // The same bytes under another TEE are another key.
    expect(measurementKey(ReleaseTee.snp, input.measurements[0]!.value)).not.toBe(
      measurementKey(ReleaseTee.sgx, input.measurements[0]!.value),
    );
    expect((await listReleases(ctx)).map((x) => x.id)).toContain(sent.id);
  });

  it("refuses a release from a non-signer on chain", async () => {
    await expectChainError(publishRelease(chain.context(3), release()), "NotSigner");
    await expectChainError(revokeRelease(chain.context(3), releaseId(release()), "x"), "NotSigner");
  });

  it("revokes: the lookup shows it revoked; the measurement may then be published again, not before", async () => {
    const ctx = chain.context(0);
    const input = release();
    const { id } = await publishRelease(ctx, input);
    const again = release({ measurements: [input.measurements[0]!] });
    await expectChainError(publishRelease(ctx, again), "MeasurementPublished");
    const rev = await revokeRelease(ctx, id, "CVE-2099-0001 in the image's kernel");
    const ev = eventsOf(releasesAbi, rev.receipt, chain.contracts.releases);
    expect(ev[0]).toMatchObject({
      eventName: "ReleaseRevoked",
      args: { id, reason: expect.stringMatching(/CVE/) },
    });
    const r = await releaseOfMeasurement(ctx, ReleaseTee.snp, input.measurements[0]!.value);
    expect(r).toMatchObject({ id, status: ReleaseStatus.revoked, revokedBy: chain.accounts[0]!.address });
    expect(r!.revokeReason).toMatch(/CVE-2099-0001/);
    await expectChainError(revokeRelease(ctx, id, "again"), "AlreadyRevoked");
    await expectChainError(publishRelease(ctx, input), "ReleaseExists");
    const reinstated = await publishRelease(ctx, again);
    expect((await releaseOfMeasurement(ctx, ReleaseTee.snp, input.measurements[0]!.value))?.id).toBe(
      reinstated.id,
    );
  });

  it("refuses malformed releases with a named error", async () => {
    const ctx = chain.context(0);
    const snp = (v: Hex, tee: number = ReleaseTee.snp) => [
      { tee, config: "c", value: v, firmware: zeroHash },
    ];
    await expectChainError(publishRelease(ctx, release({ version: "" })), "EmptyVersion");
    await expectChainError(publishRelease(ctx, release({ imageDigest: zeroHash })), "ZeroImageDigest");
    await expectChainError(publishRelease(ctx, release({ measurements: [] })), "NoMeasurements");
    const bad = await expectChainError(
      publishRelease(ctx, release({ measurements: snp(value(32)) })),
      "BadMeasurementLength",
    );
    expect(bad.message).toMatch(/48/);
    await expectChainError(publishRelease(ctx, release({ measurements: snp(value(48), 9) })), "UnknownTee");
    await expectChainError(publishRelease(ctx, release({ version: "v".repeat(65) })), "StringTooLong");
    const twice = value(48);
    await expectChainError(
      publishRelease(ctx, release({ measurements: [...snp(twice), ...snp(twice)] })),
      "MeasurementPublished",
    );
    const v = release();
    await publishRelease(ctx, v);
    await expectChainError(publishRelease(ctx, release({ version: v.version })), "VersionTaken");
  });

  it("stores a provider's declared release in the Registry", async () => {
    const ctx = chain.context(5);
    const id = releaseId(devnetReleaseInput());
    await registerProvider(ctx, {
      name: "p",
      regions: [],
      multiaddrs: [],
      metadataCid: "",
      teeTypes: ["insecure-dev"],
      token: chain.contracts.token,
      minNoticeSeconds: 60,
      prices: [{ resource: 0, pricePerUnitSecond: 1n }],
      release: id,
    });
    expect((await getProvider(ctx, chain.accounts[5]!.address)).release).toBe(id);
  });
});

describe("Releases, 2 of 3", () => {
  it("publishes only at the second signer's approval; one signer alone cannot", async () => {
    const c = await releasesWith([1, 2, 3], 2);
    const input = release();
    const first = await publishRelease(c[1]!, input);
    expect(first).toMatchObject({ published: false, approvals: 1, threshold: 2 });
    await expectChainError(getRelease(c[1]!, first.id), "UnknownRelease");
    expect(await releaseOfMeasurement(c[1]!, ReleaseTee.snp, input.measurements[0]!.value)).toBeUndefined();
    await expectChainError(publishRelease(c[1]!, input), "AlreadyApproved");
    await expectChainError(publishRelease(c[4]!, input), "NotSigner");
    expect(await releaseApprovals(c[1]!, first.id)).toEqual({
      count: 1,
      approvedBy: [chain.accounts[1]!.address],
    });
    // A different input is a different release: approving it does not count toward the first.
    const other = await publishRelease(c[2]!, { ...input, source: "tampered" });
    expect(other.published).toBe(false);
    const second = await publishRelease(c[2]!, input);
    expect(second).toMatchObject({ id: first.id, published: true, approvals: 2 });
    expect((await getRelease(c[1]!, first.id)).status).toBe(ReleaseStatus.published);
    // Revocation takes one signer.
    await revokeRelease(c[3]!, first.id, "bad image");
    expect((await getRelease(c[1]!, first.id)).status).toBe(ReleaseStatus.revoked);
  });

  it("changes signers with k approvals and forgets approvals given under the old set", async () => {
    const c = await releasesWith([1, 2, 3], 2);
    const pending = release();
    await publishRelease(c[1]!, pending);
    const newSet: Address[] = [chain.accounts[1]!.address, chain.accounts[4]!.address];
    await expectChainError(changeReleaseSigners(c[4]!, newSet, 1), "NotSigner");
    await expectChainError(changeReleaseSigners(c[1]!, newSet, 3), "BadThreshold");
    await expectChainError(changeReleaseSigners(c[1]!, [newSet[0]!, newSet[0]!], 1), "BadSigner");
    expect((await changeReleaseSigners(c[1]!, newSet, 2)).result).toBe(false);
    expect((await changeReleaseSigners(c[3]!, newSet, 2)).result).toBe(true);
    expect(await releaseSigners(c[1]!)).toEqual({ signers: newSet, threshold: 2, epoch: 2n });
    await expectChainError(publishRelease(c[2]!, pending), "NotSigner");
    // Account 1's approval was given in epoch 1: it no longer counts, so it may (must) approve again.
    expect((await releaseApprovals(c[1]!, releaseId(pending))).count).toBe(0);
    expect((await publishRelease(c[1]!, pending)).published).toBe(false);
    expect((await publishRelease(c[4]!, pending)).published).toBe(true);
  });
});
