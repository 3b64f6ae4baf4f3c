// The release registry (contracts/Releases.sol): provider releases published by k of n release signers, each
// naming its VM image digest and the launch measurements it produces per TEE and configuration.
import {
  type Address,
  encodeAbiParameters,
  type Hex,
  keccak256,
  sha256,
  stringToBytes,
  toHex,
  zeroHash,
} from "viem";
import { type ChainContext, read, type Sent, send } from "./client.js";
import { eventsOf } from "./events.js";
import { releasesAbi } from "./gen/index.js";

/** TEE ids of the Releases contract (the same numbers as the wire TeeType). */
export const ReleaseTee = { snp: 1, tdx: 2, sgx: 3, "insecure-dev": 4 } as const;
export type ReleaseTeeName = keyof typeof ReleaseTee;

/** Bytes of a measurement value per TEE: SNP MEASUREMENT, TDX MRTD‖RTMR0‖RTMR1‖RTMR2, SGX MRENCLAVE, insecure-dev label. */
export const RELEASE_VALUE_BYTES: Record<ReleaseTeeName, number> = {
  snp: 48,
  tdx: 192,
  sgx: 32,
  "insecure-dev": 32,
};

export function releaseTeeName(id: number): ReleaseTeeName | undefined {
  return (Object.keys(ReleaseTee) as ReleaseTeeName[]).find((k) => ReleaseTee[k] === id);
}

export interface ReleaseMeasurement {
  /** ReleaseTee id. */
  tee: number;
  /** The configuration it was measured under, e.g. "milan, 4 vCPU, OVMF 2024.05". */
  config: string;
  value: Hex;
  /** SHA-256 of the firmware binary (zero when none). */
  firmware: Hex;
}

export interface ReleaseInput {
  version: string;
  /** SHA-256 of the provider VM image. */
  imageDigest: Hex;
  /** Where to rebuild it from; informational. */
  source: string;
  measurements: ReleaseMeasurement[];
}

export const ReleaseStatus = { none: 0, published: 1, revoked: 2 } as const;

export interface Release {
  id: Hex;
  version: string;
  imageDigest: Hex;
  source: string;
  measurements: readonly ReleaseMeasurement[];
  /** ReleaseStatus. */
  status: number;
  publishedAt: bigint;
  revokedAt: bigint;
  revokedBy: Address;
  revokeReason: string;
}

/** Raised when a network has no Releases contract address. */
export class NoReleasesContractError extends Error {
  override readonly name = "NoReleasesContractError";
  readonly code = "NO_RELEASES_CONTRACT";
}

function releasesAddress(ctx: ChainContext): Address {
  const a = ctx.addresses.releases;
  if (!a)
    throw new NoReleasesContractError(
      "this network names no Releases contract (contracts.releases): there is no release registry to check providers against",
    );
  return a;
}

const rel = (ctx: ChainContext) => ({ address: releasesAddress(ctx), abi: releasesAbi });

const RELEASE_TAG = keccak256(stringToBytes("trusted-pods/release/v1"));
const publishInput = releasesAbi.find((x) => x.type === "function" && x.name === "publish")!.inputs[0]!;

/** The release id the contract derives from an input (keccak256 of its ABI encoding under a domain tag). */
export function releaseId(input: ReleaseInput): Hex {
  return keccak256(encodeAbiParameters([{ type: "bytes32" }, publishInput], [RELEASE_TAG, input] as never));
}

/** The contract's lookup key of one measurement. */
export function measurementKey(tee: number, value: Hex): Hex {
  return keccak256(`0x${tee.toString(16).padStart(2, "0")}${value.slice(2)}` as Hex);
}

export interface PublishResult extends Sent {
  id: Hex;
  /** Whether this approval published the release (false: it still waits for other signers). */
  published: boolean;
  /** Approvals after this one, and the threshold. */
  approvals: number;
  threshold: number;
}

/** Release signer: approves a release; the k-th signer's approval publishes it. */
export async function publishRelease(ctx: ChainContext, input: ReleaseInput): Promise<PublishResult> {
  const sent = await send<readonly [Hex, boolean]>(ctx, {
    ...rel(ctx),
    functionName: "publish",
    args: [input],
  });
  const [id, published] = sent.result;
  const approved = eventsOf(releasesAbi, sent.receipt, releasesAddress(ctx)).find(
    (e) => e.eventName === "Approved",
  );
  const a = approved?.args as { approvals?: bigint; threshold?: bigint } | undefined;
  return {
    ...sent,
    id,
    published,
    approvals: Number(a?.approvals ?? 0n),
    threshold: Number(a?.threshold ?? 0n),
  };
}

/** Release signer: revokes a release at once (one signer is enough). */
export function revokeRelease(ctx: ChainContext, id: Hex, reason: string): Promise<Sent> {
  return send(ctx, { ...rel(ctx), functionName: "revoke", args: [id, reason] });
}

/** Release signer: approves a new signer set; the k-th approval applies it. Resolves with whether it applied. */
export function changeReleaseSigners(
  ctx: ChainContext,
  signers: Address[],
  threshold: number,
): Promise<Sent<boolean>> {
  return send<boolean>(ctx, { ...rel(ctx), functionName: "changeSigners", args: [signers, threshold] });
}

export async function releaseSigners(
  ctx: ChainContext,
): Promise<{ signers: Address[]; threshold: number; epoch: bigint }> {
  const [signers, threshold, epoch] = await Promise.all([
    read<readonly Address[]>(ctx, { ...rel(ctx), functionName: "signers", args: [] }),
    read<number>(ctx, { ...rel(ctx), functionName: "threshold", args: [] }),
    read<bigint>(ctx, { ...rel(ctx), functionName: "epoch", args: [] }),
  ]);
  return { signers: [...signers], threshold: Number(threshold), epoch };
}

/** Approvals a release id (or signers action) holds from the current signers. */
export async function releaseApprovals(
  ctx: ChainContext,
  action: Hex,
): Promise<{ count: number; approvedBy: Address[] }> {
  const [count, approvedBy] = await read<readonly [bigint, readonly Address[]]>(ctx, {
    ...rel(ctx),
    functionName: "approvalsOf",
    args: [action],
  });
  return { count: Number(count), approvedBy: [...approvedBy] };
}

export function getRelease(ctx: ChainContext, id: Hex): Promise<Release> {
  return read<Release>(ctx, { ...rel(ctx), functionName: "getRelease", args: [id] });
}

/** The latest release holding this measurement, or undefined when none ever did. */
export async function releaseOfMeasurement(
  ctx: ChainContext,
  tee: number,
  value: Hex,
): Promise<Release | undefined> {
  const id = await read<Hex>(ctx, { ...rel(ctx), functionName: "releaseOf", args: [tee, value] });
  return id === zeroHash ? undefined : getRelease(ctx, id);
}

/** Every release in publication order, read in pages. */
export async function listReleases(ctx: ChainContext, pageSize = 50): Promise<Release[]> {
  const count = await read<bigint>(ctx, { ...rel(ctx), functionName: "releaseCount", args: [] });
  const all: Release[] = [];
  for (let offset = 0n; offset < count; offset += BigInt(pageSize)) {
    const page = await read<readonly Release[]>(ctx, {
      ...rel(ctx),
      functionName: "listReleases",
      args: [offset, BigInt(pageSize)],
    });
    all.push(...page);
  }
  return all;
}

/** The label of insecure-dev evidence, which a devnet-only release lists as its "measurement". */
export const INSECURE_DEV_RELEASE_VALUE: Hex = toHex(
  stringToBytes("INSECURE-DEV-NO-TEE-tpod-v1".padEnd(32, "\0")),
);

/**
 * The release a devnet publishes for its providers: insecure-dev (no TEE), so a devnet exercises the same
 * release check a real network does. Publishers accept insecure-dev evidence only on the devnet.
 */
export function devnetReleaseInput(): ReleaseInput {
  return {
    version: "devnet-insecure-dev",
    imageDigest: sha256(stringToBytes("trusted-pods devnet: no VM image, no TEE")),
    source: "tpod devnet up (no image: the provider daemon runs on the host without a TEE)",
    measurements: [
      {
        tee: ReleaseTee["insecure-dev"],
        config: "devnet, no TEE",
        value: INSECURE_DEV_RELEASE_VALUE,
        firmware: zeroHash,
      },
    ],
  };
}
