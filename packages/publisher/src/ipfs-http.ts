// Raw IPFS blocks over HTTP for the browser (which cannot dial the nodes' TCP libp2p): fetched from trustless
// gateways (`GET URL/ipfs/CID?format=raw`) and checked against their CID, so no gateway is trusted. Browser-safe.
import { sha256 } from "@noble/hashes/sha2";
import { MarketError } from "./listings.js";

const RAW_CODEC = 0x55;
const SHA2_256 = 0x12;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

function base32Decode(text: string): Uint8Array | undefined {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of text) {
    const v = BASE32.indexOf(ch);
    if (v < 0) return undefined;
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

function readVarint(bytes: Uint8Array, at: number): [number, number] | undefined {
  let value = 0;
  for (let i = 0; i < 4 && at + i < bytes.length; i++) {
    const b = bytes[at + i]!;
    value |= (b & 0x7f) << (7 * i);
    if ((b & 0x80) === 0) return [value, at + i + 1];
  }
  return undefined;
}

/** The sha2-256 digest a CIDv1 of a raw block names (base32, `b…`: what tpod writes), or undefined. */
export function rawBlockDigest(cid: string): Uint8Array | undefined {
  if (!cid.startsWith("b") || cid.length > 100) return undefined;
  const bytes = base32Decode(cid.slice(1));
  if (!bytes) return undefined;
  const version = readVarint(bytes, 0);
  const codec = version && readVarint(bytes, version[1]);
  const hash = codec && readVarint(bytes, codec[1]);
  const length = hash && readVarint(bytes, hash[1]);
  if (!version || !codec || !hash || !length) return undefined;
  if (version[0] !== 1 || codec[0] !== RAW_CODEC || hash[0] !== SHA2_256 || length[0] !== 32)
    return undefined;
  const digest = bytes.subarray(length[1]);
  return digest.length === 32 ? digest : undefined;
}

async function fetchFrom(
  gateway: string,
  cid: string,
  want: Uint8Array,
  maxSize: number,
  signal?: AbortSignal,
) {
  const url = new URL(`ipfs/${cid}?format=raw`, gateway.endsWith("/") ? gateway : `${gateway}/`);
  const res = await fetch(url, {
    headers: { accept: "application/vnd.ipld.raw" },
    ...(signal ? { signal } : {}),
  });
  if (!res.ok) throw new Error(`${url.origin} answered ${res.status}`);
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > maxSize) throw new Error(`${url.origin} sent ${declared} bytes, over ${maxSize}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.byteLength > maxSize)
    throw new Error(`${url.origin} sent ${bytes.byteLength} bytes, over ${maxSize}`);
  const got = sha256(bytes);
  if (got.length !== want.length || got.some((b, i) => b !== want[i]))
    throw new Error(`${url.origin} sent a block that does not match ${cid}`);
  return bytes;
}

/**
 * A raw block by CID from the first gateway that has it, checked against the CID. Refuses a CID that is not a
 * CIDv1 raw sha2-256 block (INVALID_LISTING) and fails with METADATA_UNAVAILABLE when no gateway served it intact.
 */
export async function fetchRawBlockOverHttp(
  gateways: readonly string[],
  cid: string,
  opts: { maxSize?: number; signal?: AbortSignal } = {},
): Promise<Uint8Array> {
  const want = rawBlockDigest(cid);
  if (!want)
    throw new MarketError("INVALID_LISTING", `${cid} is not the CID of a raw block (CIDv1, sha2-256)`);
  const problems: string[] = [];
  for (const gw of gateways) {
    try {
      return await fetchFrom(gw, cid, want, opts.maxSize ?? 256 * 1024, opts.signal);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  throw new MarketError(
    "METADATA_UNAVAILABLE",
    `no IPFS gateway served ${cid}${problems.length ? `: ${problems.join("; ")}` : " (none configured)"}`,
  );
}
