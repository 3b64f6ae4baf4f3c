/**
 * The publisher's own record of the pods it deployed (`$TPOD_HOME/pods.json`): the chain is the truth about
 * money, the provider about the pod's state; this file remembers which pods are ours, where they run and which
 * manifest they came from, so `tpod pods`, `status`, `logs`, `fund` and `close` need only a pod id.
 */
import { type Address, getAddress, type Hex, isAddress } from "viem";
import { PublisherError } from "./errors.js";

export interface PodRecord {
  /** bytes32 pod id, 0x and 64 hex digits. */
  podId: Hex;
  /** The manifest's metadata.name, for people. */
  name?: string;
  /** The provider's Ethereum address (its Registry entry). */
  provider: Address;
  /** The provider's libp2p peer id and addresses at deploy time. */
  peerId?: string;
  multiaddrs?: string[];
  chainId: number;
  /** The network name it was deployed on ("devnet", a network file's name, "custom"). */
  network?: string;
  /** Payment channel id (bytes32), keccak256(publisher, provider, podId). */
  channel: Hex;
  /** The publisher address that opened the channel. */
  publisher?: Address;
  /** Absolute path of the manifest it was deployed from. */
  manifest: string;
  /** ISO 8601 times. */
  createdAt: string;
  updatedAt?: string;
  closedAt?: string;
}

export interface PodsFile {
  version: 1;
  pods: PodRecord[];
}

export const MAX_POD_RECORDS = 10_000;
const BYTES32 = /^0x[0-9a-f]{64}$/;

const bad = (message: string): never => {
  throw new PublisherError("POD_RECORD", `pods.json: ${message}`);
};

function str(v: unknown, field: string, max = 4096): string {
  if (typeof v !== "string" || v.length === 0 || v.length > max) bad(`${field} must be a non-empty string`);
  return v as string;
}

function time(v: unknown, field: string): string {
  if (typeof v !== "string" || Number.isNaN(Date.parse(v))) bad(`${field} must be an ISO 8601 time`);
  return v as string;
}

/** Validates one record (from disk or from a caller about to store it) and normalizes hex to lowercase. */
export function parsePodRecord(v: unknown, where = "pod"): PodRecord {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return bad(`${where} must be an object`);
  const o = v as Record<string, unknown>;
  const hex32 = (x: unknown, field: string): Hex => {
    const s = typeof x === "string" ? x.toLowerCase() : "";
    if (!BYTES32.test(s)) bad(`${where}.${field} must be 0x and 64 hex digits`);
    return s as Hex;
  };
  const addr = (x: unknown, field: string): Address => {
    if (typeof x !== "string" || !isAddress(x, { strict: false }))
      bad(`${where}.${field} must be an address`);
    return getAddress(x as string);
  };
  if (typeof o.chainId !== "number" || !Number.isSafeInteger(o.chainId) || o.chainId <= 0)
    bad(`${where}.chainId must be a positive integer`);
  const rec: PodRecord = {
    podId: hex32(o.podId, "podId"),
    provider: addr(o.provider, "provider"),
    chainId: o.chainId as number,
    channel: hex32(o.channel, "channel"),
    manifest: str(o.manifest, `${where}.manifest`),
    createdAt: time(o.createdAt, `${where}.createdAt`),
  };
  if (o.name !== undefined) rec.name = str(o.name, `${where}.name`, 253);
  if (o.peerId !== undefined) rec.peerId = str(o.peerId, `${where}.peerId`, 128);
  if (o.multiaddrs !== undefined) {
    if (!Array.isArray(o.multiaddrs) || o.multiaddrs.length > 64) bad(`${where}.multiaddrs must be a list`);
    rec.multiaddrs = (o.multiaddrs as unknown[]).map((m, i) => str(m, `${where}.multiaddrs[${i}]`, 512));
  }
  if (o.network !== undefined) rec.network = str(o.network, `${where}.network`, 128);
  if (o.publisher !== undefined) rec.publisher = addr(o.publisher, "publisher");
  if (o.updatedAt !== undefined) rec.updatedAt = time(o.updatedAt, `${where}.updatedAt`);
  if (o.closedAt !== undefined) rec.closedAt = time(o.closedAt, `${where}.closedAt`);
  return rec;
}

export function parsePodsFile(doc: unknown): PodsFile {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return bad("must be an object");
  const d = doc as Record<string, unknown>;
  if (d.version !== 1) bad(`version ${String(d.version)} is not 1`);
  if (!Array.isArray(d.pods) || d.pods.length > MAX_POD_RECORDS)
    bad(`pods must be a list of at most ${MAX_POD_RECORDS}`);
  const pods = (d.pods as unknown[]).map((p, i) => parsePodRecord(p, `pods[${i}]`));
  const seen = new Set<string>();
  for (const p of pods) {
    const key = `${p.chainId}:${p.podId}`;
    if (seen.has(key)) bad(`pod ${p.podId} on chain ${p.chainId} is listed twice`);
    seen.add(key);
  }
  return { version: 1, pods };
}

/**
 * The pods a reference names: a full pod id or channel id, a unique id prefix (at least 6 hex digits after 0x,
 * like a short git hash) or a name.
 */
export function matchPods(pods: PodRecord[], ref: string): PodRecord[] {
  const r = ref.toLowerCase();
  const exact = pods.filter((p) => p.podId === r || p.channel === r);
  if (exact.length === 1) return exact;
  const byPrefix = /^0x[0-9a-f]{6,63}$/.test(r) ? pods.filter((p) => p.podId.startsWith(r)) : [];
  const byName = pods.filter((p) => p.name === ref);
  return [...new Set([...exact, ...byPrefix, ...byName])];
}

/** Finds exactly one pod (see matchPods); throws POD_RECORD when nothing or more than one pod matches. */
export function findPod(pods: PodRecord[], ref: string): PodRecord {
  const matches = matchPods(pods, ref);
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new PublisherError("POD_RECORD", `no pod ${ref} in the local record`);
  throw ambiguous(
    ref,
    matches.map((p) => p.podId),
  );
}

export function ambiguous(ref: string, podIds: string[]): PublisherError {
  return new PublisherError(
    "POD_RECORD",
    `${ref} matches ${podIds.length} pods (${podIds.map((p) => p.slice(0, 10)).join(", ")}): use the full pod id`,
  );
}
