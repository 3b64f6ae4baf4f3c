import { type Address, type Hex, zeroHash } from "viem";
import { type ChainContext, read, type Sent, send } from "./client.js";
import { registryAbi } from "./gen/index.js";

/** Resource ids of the pricing table; prices are integer token units per unit-second. */
export const Resource = {
  /** per millicore-second */
  cpu: 0,
  /** per MiB-second */
  memory: 1,
  /** per GiB-second */
  storage: 2,
  /** per GPU-second */
  gpu: 3,
} as const;
export type Resource = (typeof Resource)[keyof typeof Resource];

export interface Price {
  resource: number;
  pricePerUnitSecond: bigint;
}

export interface ProviderInput {
  name: string;
  regions: string[];
  multiaddrs: string[];
  metadataCid: string;
  teeTypes: string[];
  token: Address;
  minNoticeSeconds: number;
  prices: Price[];
  /** The provider release it runs (a Releases id); absent or zero = none declared. */
  release?: Hex;
}

export interface ProviderInfo
  extends Omit<ProviderInput, "regions" | "multiaddrs" | "teeTypes" | "prices" | "release"> {
  provider: Address;
  regions: readonly string[];
  multiaddrs: readonly string[];
  teeTypes: readonly string[];
  prices: readonly Price[];
  registeredAt: bigint;
  updatedAt: bigint;
  /** The declared release id (zero = none). */
  release: Hex;
}

export interface ProviderFilter {
  region?: string;
  teeType?: string;
  token?: Address;
}

const r = (ctx: ChainContext) => ({ address: ctx.addresses.registry, abi: registryAbi });

const withRelease = (input: ProviderInput) => ({ ...input, release: input.release ?? zeroHash });

export function registerProvider(ctx: ChainContext, input: ProviderInput): Promise<Sent> {
  return send(ctx, { ...r(ctx), functionName: "register", args: [withRelease(input)] });
}

export function updateProvider(ctx: ChainContext, input: ProviderInput): Promise<Sent> {
  return send(ctx, { ...r(ctx), functionName: "update", args: [withRelease(input)] });
}

export function deregisterProvider(ctx: ChainContext): Promise<Sent> {
  return send(ctx, { ...r(ctx), functionName: "deregister", args: [] });
}

export function isRegistered(ctx: ChainContext, provider: Address): Promise<boolean> {
  return read(ctx, { ...r(ctx), functionName: "isRegistered", args: [provider] });
}

export function getProvider(ctx: ChainContext, provider: Address): Promise<ProviderInfo> {
  return read(ctx, { ...r(ctx), functionName: "getProvider", args: [provider] });
}

/** Every registered provider, read in pages of `pageSize`. */
export async function listProviders(ctx: ChainContext, pageSize = 50): Promise<ProviderInfo[]> {
  const count = await read<bigint>(ctx, { ...r(ctx), functionName: "providerCount", args: [] });
  const all: ProviderInfo[] = [];
  for (let offset = 0n; offset < count; offset += BigInt(pageSize)) {
    const page = await read<readonly ProviderInfo[]>(ctx, {
      ...r(ctx),
      functionName: "listProviders",
      args: [offset, BigInt(pageSize)],
    });
    all.push(...page);
  }
  return all;
}

/** Providers matching `filter` (region, TEE type, token), scanned on chain in pages of `pageSize`. */
export async function findProviders(
  ctx: ChainContext,
  filter: ProviderFilter,
  pageSize = 50,
): Promise<ProviderInfo[]> {
  const count = await read<bigint>(ctx, { ...r(ctx), functionName: "providerCount", args: [] });
  const f = {
    region: filter.region ?? "",
    teeType: filter.teeType ?? "",
    token: filter.token ?? "0x0000000000000000000000000000000000000000",
  };
  const found: ProviderInfo[] = [];
  for (let offset = 0n; offset < count; ) {
    const [matches, next] = await read<readonly [readonly ProviderInfo[], bigint]>(ctx, {
      ...r(ctx),
      functionName: "findProviders",
      args: [f, offset, BigInt(pageSize)],
    });
    found.push(...matches);
    offset = next;
  }
  return found;
}

/** The price of a pod per second from a provider's table: sum of quantity x price for each resource. */
export function pricePerSecond(
  prices: readonly Price[],
  quantities: Partial<Record<Resource, bigint>>,
): bigint {
  let total = 0n;
  for (const [resource, qty] of Object.entries(quantities)) {
    if (qty === undefined || qty === 0n) continue;
    const price = prices.find((p) => p.resource === Number(resource));
    if (!price) throw new RangeError(`the provider does not price resource ${resource}`);
    total += price.pricePerUnitSecond * qty;
  }
  return total;
}
