/**
 * Pricing math in bigint only. A provider prices each resource in token base units per unit per second:
 * CPU per millicore, memory per MiB, storage per GiB, GPU per device. What a pod is billed for:
 *
 * - per replica: the sum over its containers of cpu, memory, storage (ephemeral) and gpu;
 * - replicas: max replicas, always. A channel pays a fixed rate, and the provider must keep capacity for every
 *   replica the pod may scale to; scale-to-zero frees the provider's machine but does not lower the rate;
 * - persistent volumes: once per pod (all replicas share them), added to storage;
 * - rounding: each resource's pod total is rounded UP to whole pricing units (memory to MiB, storage to GiB),
 *   once, after summing, so splitting a pod into containers never costs more than the same total in one.
 */
import { create } from "@bufbuild/protobuf";
import type { Node } from "yaml";
import { ManifestError } from "./diagnostics.js";
import { type PricingTable, PricingTableSchema, Resource } from "./gen/trustedpods/v1/pricing_pb.js";
import type { Pod } from "./pod.js";
import { YamlReader } from "./yaml-reader.js";

export const PRICED_RESOURCES = ["cpu", "memory", "storage", "gpu"] as const;
export type PricedResource = (typeof PRICED_RESOURCES)[number];

export const PRICING_UNITS: Record<PricedResource, string> = {
  cpu: "millicore",
  memory: "MiB",
  storage: "GiB",
  gpu: "GPU",
};

const WIRE_RESOURCE: Record<PricedResource, Resource> = {
  cpu: Resource.CPU,
  memory: Resource.MEMORY,
  storage: Resource.STORAGE,
  gpu: Resource.GPU,
};

/** A provider's prices in one ERC-20 token; a resource without a price is not offered. */
export interface Pricing {
  /** Token address, 0x and 40 hex digits. */
  token: string;
  /** Token base units per unit per second. */
  prices: Partial<Record<PricedResource, bigint>>;
}

/** A pricing file: prices plus what is needed to show amounts to people. */
export interface PricingFile extends Pricing {
  symbol: string;
  decimals: number;
}

export class PricingError extends Error {
  override readonly name = "PricingError";
  constructor(
    readonly code: "RESOURCE_NOT_OFFERED" | "INVALID_PRICING",
    message: string,
  ) {
    super(message);
  }
}

export type BilledUnits = Record<PricedResource, bigint>;

const MIB = 1n << 20n;
const GIB = 1n << 30n;
const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;

/** The units a pod is billed for, per the rules above. */
export function billedUnits(pod: Pod): BilledUnits & { replicas: number } {
  let cpu = 0n;
  let memory = 0n;
  let storage = 0n;
  let gpu = 0n;
  for (const c of pod.containers) {
    cpu += c.resources.cpuMillis;
    memory += c.resources.memoryBytes;
    storage += c.resources.storageBytes;
    gpu += c.resources.gpu;
  }
  const replicas = BigInt(pod.replicas.max);
  let persistent = 0n;
  for (const v of pod.volumes) if (v.kind === "persistent") persistent += v.sizeBytes;
  return {
    replicas: pod.replicas.max,
    cpu: cpu * replicas,
    memory: ceilDiv(memory * replicas, MIB),
    storage: ceilDiv(storage * replicas + persistent, GIB),
    gpu: gpu * replicas,
  };
}

export interface PriceLine {
  resource: PricedResource;
  units: bigint;
  unit: string;
  /** Token base units per unit per second. */
  unitPrice: bigint;
  perSecond: bigint;
}

export interface PodPrice {
  replicas: number;
  lines: PriceLine[];
  /** Token base units per second for the whole pod. */
  perSecond: bigint;
}

/** What a pod costs per second under a pricing; throws PricingError when it needs a resource not offered. */
export function podPrice(pod: Pod, pricing: Pricing): PodPrice {
  const units = billedUnits(pod);
  const lines: PriceLine[] = [];
  for (const resource of PRICED_RESOURCES) {
    const n = units[resource];
    const unitPrice = pricing.prices[resource];
    if (unitPrice === undefined) {
      if (n > 0n)
        throw new PricingError(
          "RESOURCE_NOT_OFFERED",
          `the pricing offers no ${resource}, but the pod needs ${n} ${PRICING_UNITS[resource]}`,
        );
      continue;
    }
    lines.push({ resource, units: n, unit: PRICING_UNITS[resource], unitPrice, perSecond: n * unitPrice });
  }
  return { replicas: units.replicas, lines, perSecond: lines.reduce((s, l) => s + l.perSecond, 0n) };
}

/** 1500000n with 6 decimals → "1.5"; exact, trailing zeros trimmed, with the symbol when given. */
export function formatTokenAmount(amount: bigint, decimals: number, symbol?: string): string {
  const negative = amount < 0n;
  const abs = negative ? -amount : amount;
  const scale = 10n ** BigInt(decimals);
  const whole = abs / scale;
  const frac = (abs % scale).toString().padStart(decimals, "0").replace(/0+$/, "");
  const text = `${negative ? "-" : ""}${whole}${frac ? `.${frac}` : ""}`;
  return symbol ? `${text} ${symbol}` : text;
}

export function pricingToWire(p: Pricing): PricingTable {
  return create(PricingTableSchema, {
    token: p.token,
    prices: PRICED_RESOURCES.filter((r) => p.prices[r] !== undefined).map((r) => ({
      resource: WIRE_RESOURCE[r],
      price: p.prices[r]!.toString(),
    })),
  });
}

const TOKEN_RE = /^0x[0-9a-fA-F]{40}$/;
const PRICE_RE = /^(0|[1-9]\d{0,77})$/;

/** Checks a provider's pricing table from the wire. */
export function pricingFromWire(t: PricingTable): Pricing {
  if (!TOKEN_RE.test(t.token))
    throw new PricingError("INVALID_PRICING", `token "${t.token}" is not an address`);
  const prices: Pricing["prices"] = {};
  for (const e of t.prices) {
    const r = PRICED_RESOURCES.find((x) => WIRE_RESOURCE[x] === e.resource);
    if (!r) throw new PricingError("INVALID_PRICING", `unknown resource ${e.resource}`);
    if (prices[r] !== undefined) throw new PricingError("INVALID_PRICING", `${r} is priced twice`);
    if (!PRICE_RE.test(e.price))
      throw new PricingError("INVALID_PRICING", `price "${e.price}" of ${r} is not a decimal integer`);
    prices[r] = BigInt(e.price);
  }
  return { token: t.token, prices };
}

/** Reads a pricing file (see docs/manifest.md); throws ManifestError with every error located. */
export function parsePricing(text: string, file: string): PricingFile {
  const { reader: r, root } = YamlReader.parse(text, file);
  const out: PricingFile = { token: "", symbol: "", decimals: 0, prices: {} };
  const m = root && r.map(root, [], "the pricing file", ["token", "symbol", "decimals", "prices"]);
  if (!root && !r.hasErrors()) r.report(null, "MISSING_KEY", "the pricing file is empty");
  if (m) {
    const token = r.require(m, "token", "the pricing file", []);
    out.token = (token && r.string(token.value, ["token"], "token", token.keyNode)) ?? "";
    if (token && out.token && !TOKEN_RE.test(out.token))
      r.report(token.value, "INVALID_VALUE", `token "${out.token}" is not an address (0x and 40 hex digits)`);
    const symbol = r.require(m, "symbol", "the pricing file", []);
    out.symbol = (symbol && r.scalarText(symbol.value, ["symbol"], "symbol", symbol.keyNode)) ?? "";
    const decimals = r.require(m, "decimals", "the pricing file", []);
    out.decimals = (decimals && r.integer(decimals.value, ["decimals"], "decimals", decimals.keyNode)) ?? 0;
    if (out.decimals > 77) r.report(decimals?.value, "INVALID_VALUE", "decimals must be at most 77");
    const prices = r.require(m, "prices", "the pricing file", []);
    const p = prices && r.map(prices.value, ["prices"], "prices", PRICED_RESOURCES, prices.keyNode);
    if (p) {
      for (const res of PRICED_RESOURCES) {
        const e = p.get(res);
        if (!e) continue;
        const v = r.scalarText(e.value as Node | null, ["prices", res], res, e.keyNode);
        if (v === undefined) continue;
        if (!PRICE_RE.test(v))
          r.report(
            e.value,
            "INVALID_VALUE",
            `price of ${res} must be a whole number of token base units, not "${v}"`,
          );
        else out.prices[res] = BigInt(v);
      }
    }
  }
  if (r.hasErrors()) throw new ManifestError(r.diagnostics.sort((a, b) => a.line - b.line || a.col - b.col));
  return out;
}
