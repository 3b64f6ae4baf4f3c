// The release check on real evidence: real SEV-SNP and TDX samples (../shared/testdata/attestation) against
// releases published on a real anvil chain, and the whole verifyProvider path against a real libp2p provider.
import {
  type EvidenceEnvelope,
  launchMeasurement,
  parsePolicyText,
  toHex,
  type VerifiedEvidence,
  verifyEvidence,
} from "@trustedpods/attestation";
import {
  type ChainContext,
  ChainError,
  devnetReleaseInput,
  publishRelease,
  type ReleaseInput,
  ReleaseTee,
  releaseId,
  revokeRelease,
} from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { createP2PNode, type P2PNode } from "@trustedpods/p2p";
import { type Hex, keccak256, toHex as viemHex, zeroHash } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestProvider, type TestProvider } from "../../../test-support/attest-provider.js";
import { bytes, certs, describeWithSamples, text } from "../../../test-support/attestation-samples.js";
import {
  chainReleaseCheck,
  checkRelease,
  DEVNET_POLICY,
  describeAttestation,
  NETWORK_DEFAULT_POLICY,
  PublisherError,
  parseReleaseFile,
  releaseLabel,
  requiringReleases,
  selectPolicy,
  verifyProvider,
} from "../src/index.js";

let chain: DevChain;
let signer: ChainContext;
let outsider: ChainContext;
let seq = 0;

beforeAll(async () => {
  // Without the devnet release: the tests publish and revoke it themselves.
  chain = await startDevChain({ accounts: 3, devnetRelease: false });
  signer = chain.context(0);
  outsider = chain.context(1);
});
afterAll(async () => {
  await chain?.stop();
});

async function refusal(p: Promise<unknown>): Promise<PublisherError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PublisherError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

const hex = (b: Uint8Array): Hex => `0x${toHex(b)}`;

function releaseOf(evs: VerifiedEvidence[]): ReleaseInput {
  return {
    version: `sample-${seq++}`,
    imageDigest: keccak256(viemHex(`image ${seq}`)),
    source: "test",
    measurements: evs.map((ev) => {
      const m = launchMeasurement(ev);
      return { tee: ReleaseTee[m.tee], config: `${m.tee} sample`, value: hex(m.value), firmware: zeroHash };
    }),
  };
}

describeWithSamples("release check on real TEE evidence", () => {
  let snp: VerifiedEvidence;
  let otherSnp: VerifiedEvidence;
  let tdx: VerifiedEvidence;

  beforeAll(async () => {
    const snpEnv: EvidenceEnvelope = {
      tee: "snp",
      raw: bytes("sev-snp/virtee/report_milan.bin"),
      certificates: certs("sev-snp/virtee/vcek_milan.der", "sev-snp/virtee/cert_chain_milan"),
    };
    snp = await verifyEvidence(snpEnv, { now: new Date("2024-01-01T00:00:00Z") });
    otherSnp = await verifyEvidence(
      {
        tee: "snp",
        raw: bytes("sev-snp/go-sev-guest/attestation.bin"),
        certificates: certs("sev-snp/go-sev-guest/vcek.testcer", "sev-snp/go-sev-guest/ask_ark_milan.pem"),
      },
      { now: new Date("2024-01-01T00:00:00Z") },
    );
    tdx = await verifyEvidence(
      {
        tee: "tdx",
        raw: bytes("dcap-qvl/tdx_quote"),
        certificates: [],
        collateralJson: text("dcap-qvl/tdx_quote_collateral.json"),
      },
      { now: new Date("2025-07-01T00:00:00Z") },
    );
    expect(toHex(snp.measurement)).not.toBe(toHex(otherSnp.measurement));
  });

  it("accepts a sample whose measurement a published release holds, and says which release", async () => {
    const input = releaseOf([snp, tdx]);
    const { id } = await publishRelease(signer, input);
    const check = chainReleaseCheck(signer, "test chain", id)!;
    const m = await checkRelease(snp, check, "snp-provider");
    expect(m.release).toMatchObject({ id, version: input.version, imageDigest: input.imageDigest });
    expect(m.measurement.config).toBe("snp sample");
    expect(m.declaredMismatch).toBeUndefined();
    // TDX: MRTD and RTMR0..2 of the real quote.
    const t = await checkRelease(tdx, check, "tdx-provider");
    expect(t.measurement.value).toBe(hex(launchMeasurement(tdx).value));
    expect(launchMeasurement(tdx).value).toHaveLength(192);
    // A provider declaring another release is still judged by its evidence, with a warning.
    const mismatch = await checkRelease(
      snp,
      chainReleaseCheck(signer, "test chain", keccak256("0x01"))!,
      "p",
    );
    expect(mismatch.declaredMismatch).toBe(keccak256("0x01"));
  });

  it("refuses a genuine sample whose measurement no release holds, naming the measurement", async () => {
    // The registry is not empty: another release exists, just not one holding this measurement.
    await publishRelease(signer, releaseOf([tdxLike()]));
    const err = await refusal(checkRelease(otherSnp, chainReleaseCheck(signer, "test chain")!, "p"));
    expect(err.code).toBe("ATTESTATION_REFUSED");
    expect(err.field).toBe("release.unpublished");
    const short = toHex(otherSnp.measurement).slice(0, 16);
    expect(err.message).toContain(
      `measurement ${short}… (SEV-SNP MEASUREMENT) is not a published provider release`,
    );
    expect(err.details?.measurement).toBe(hex(otherSnp.measurement));
  });

  it("refuses a sample once its release is revoked, saying it was revoked and why", async () => {
    const input = releaseOf([otherSnp]);
    const { id } = await publishRelease(signer, input);
    const check = chainReleaseCheck(signer, "test chain")!;
    expect((await checkRelease(otherSnp, check, "p")).release.id).toBe(id);
    await revokeRelease(signer, id, "test: image withdrawn");
    const err = await refusal(checkRelease(otherSnp, check, "p"));
    expect(err.field).toBe("release.revoked");
    expect(err.message).toMatch(
      new RegExp(`is release ${input.version} .*which was revoked at .*: test: image withdrawn`),
    );
  });

  it("rejects on chain a release published by a non-signer", async () => {
    const attempt = publishRelease(outsider, releaseOf([snp]));
    await expect(attempt).rejects.toBeInstanceOf(ChainError);
    await expect(attempt).rejects.toMatchObject({ errorName: "NotSigner" });
  });
});

/** A fresh fake TDX value for a filler release (keeps the sample tests independent of publication order). */
function tdxLike(): VerifiedEvidence {
  const value = new Uint8Array(48).map((_, i) => (i + seq) & 0xff);
  const rtmr = () => new Uint8Array(48).map((_, i) => (i * 7 + seq) & 0xff);
  return {
    tee: "tdx",
    quote: { td: { mrTd: value, rtmrs: [rtmr(), rtmr(), rtmr(), rtmr()] } },
  } as unknown as VerifiedEvidence;
}

describe("verifyProvider with the release registry (real libp2p provider, insecure-dev, devnet release)", () => {
  let provider: TestProvider;
  let node: P2PNode;
  let devRelease: Hex;
  const policy = requiringReleases(DEVNET_POLICY);

  beforeAll(async () => {
    provider = await startTestProvider();
    node = await createP2PNode({ transports: ["tcp"] });
    devRelease = releaseId(devnetReleaseInput());
  });
  afterAll(async () => {
    await node?.stop();
    await provider?.stop();
  });

  it("refuses when the policy requires a release and the network has no release registry", async () => {
    const err = await refusal(verifyProvider({ node, multiaddrs: provider.multiaddrs, policy }));
    expect(err).toMatchObject({ code: "ATTESTATION_REFUSED", field: "release.registry" });
    expect(err.message).toMatch(/no release registry/);
  });

  it("refuses before the devnet release is published, accepts after, refuses again once it is revoked", async () => {
    const releases = chainReleaseCheck(signer, "devnet", devRelease)!;
    const before = await refusal(verifyProvider({ node, multiaddrs: provider.multiaddrs, policy, releases }));
    expect(before.field).toBe("release.unpublished");
    expect(before.message).toMatch(/insecure-dev label, no TEE\) is not a published provider release/);

    await publishRelease(signer, devnetReleaseInput());
    const ok = await verifyProvider({ node, multiaddrs: provider.multiaddrs, policy, releases });
    expect(ok.release?.release.version).toBe("devnet-insecure-dev");
    const lines = describeAttestation(ok);
    expect(lines.join("\n")).toMatch(/hardware: NONE/);
    expect(lines.join("\n")).toMatch(/release: devnet-insecure-dev/);
    expect(lines.join("\n")).toMatch(/image: sha256 [0-9a-f]{64}/);
    expect(lines.join("\n")).toContain(`peer ${provider.peerId}`);

    // A policy that does not require releases still reports the release, and never refuses over one.
    const relaxed = await verifyProvider({
      node,
      multiaddrs: provider.multiaddrs,
      policy: DEVNET_POLICY,
      releases,
    });
    expect(relaxed.release?.release.id).toBe(devRelease);

    await revokeRelease(signer, devRelease, "devnet release withdrawn by the test");
    const after = await refusal(verifyProvider({ node, multiaddrs: provider.multiaddrs, policy, releases }));
    expect(after.field).toBe("release.revoked");
    expect(after.message).toMatch(/which was revoked at .*devnet release withdrawn by the test/);
    const info = await verifyProvider({
      node,
      multiaddrs: provider.multiaddrs,
      policy: DEVNET_POLICY,
      releases,
    });
    expect(info.release).toBeUndefined();
    expect(describeAttestation(info).join("\n")).toMatch(/release: .*revoked.*does not require/);
  });
});

describe("policy defaults and release files", () => {
  it("requires releases by default, in policy files without the key, and not when a file says any", () => {
    expect(selectPolicy(undefined).policy.releases).toBe("required");
    expect(NETWORK_DEFAULT_POLICY.allowInsecureDev).toBeUndefined();
    const devnet = { name: "devnet", isDevnet: true } as Parameters<typeof selectPolicy>[0];
    expect(selectPolicy(devnet).policy).toEqual({ allowInsecureDev: true, releases: "required" });
    const narrow = parsePolicyText("tdx: { acceptedTcbStatus: [UpToDate] }");
    expect(selectPolicy(undefined, { policy: narrow, source: "--policy f" }).policy.releases).toBe(
      "required",
    );
    const wide = parsePolicyText("releases: any\nsnp: { measurements: ['" + "ab".repeat(48) + "'] }");
    expect(selectPolicy(undefined, { policy: wide, source: "--policy f" }).policy.releases).toBe("any");
    expect(() => parsePolicyText("releases: maybe")).toThrow(/releases: must be "required" or "any"/);
  });

  it("parses a release file into the contract's input, refusing what does not fit", () => {
    const input = parseReleaseFile({
      version: "1.0.0",
      imageDigest: `sha256:${"11".repeat(32)}`,
      measurements: [
        { tee: "snp", config: "milan", measurement: "aa".repeat(48), firmware: "22".repeat(32) },
        {
          tee: "tdx",
          mrtd: "01".repeat(48),
          rtmr0: "02".repeat(48),
          rtmr1: "03".repeat(48),
          rtmr2: "04".repeat(48),
        },
        { tee: "insecure-dev", config: "devnet" },
      ],
    });
    expect(input.measurements[1]!.value).toBe(
      `0x${"01".repeat(48)}${"02".repeat(48)}${"03".repeat(48)}${"04".repeat(48)}`,
    );
    expect(input.measurements[2]!.value).toBe(devnetReleaseInput().measurements[0]!.value);
    expect(input.imageDigest).toBe(`0x${"11".repeat(32)}`);
    const bad = (doc: unknown) => {
      try {
        parseReleaseFile(doc, "r.yaml");
      } catch (err) {
        return (err as PublisherError).message;
      }
      return "accepted";
    };
    const base = { version: "1", imageDigest: "11".repeat(32) };
    expect(bad({ ...base, measurements: [{ tee: "snp", measurement: "aa" }] })).toMatch(
      /measurement must be 48 bytes/,
    );
    expect(bad({ ...base, measurements: [{ tee: "snp", mrtd: "aa".repeat(48) }] })).toMatch(
      /mrtd does not apply to snp/,
    );
    expect(bad({ ...base, measurements: [{ tee: "sev" }] })).toMatch(/tee must be snp, tdx/);
    expect(bad({ ...base, measurements: [] })).toMatch(/1 to 16/);
    expect(bad({ ...base, measurements: [{ tee: "insecure-dev" }], extra: 1 })).toMatch(
      /extra is not a known key/,
    );
    expect(releaseLabel(zeroHash, undefined)).toBe("none");
  });
});
