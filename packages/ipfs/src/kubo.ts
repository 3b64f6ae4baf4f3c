import type { AbortOptions } from "@libp2p/interface";
import { IpfsTimeoutError, KuboRpcError, SizeLimitError } from "./errors.js";
import {
  type ContentStore,
  DAG_CBOR_CODEC,
  DAG_PB_CODEC,
  type GetBlockOptions,
  MAX_BLOCK_SIZE,
  parseCid,
  RAW_CODEC,
  verifyBlock,
} from "./store.js";

const CODEC_NAMES: Record<number, string> = {
  [RAW_CODEC]: "raw",
  [DAG_PB_CODEC]: "dag-pb",
  [DAG_CBOR_CODEC]: "dag-cbor",
};
/** Bytes of a JSON answer we read from Kubo; its answers to these calls are a few hundred bytes. */
const MAX_JSON_ANSWER = 1024 * 1024;

export interface KuboOptions {
  /** Base URL of the RPC API, e.g. http://127.0.0.1:5001 (Kubo's default). */
  url: string;
  /** Per-request time bound (default 60 s); block/get of a block Kubo must find on the network can take long. */
  timeoutMs?: number;
  /** Sent as Authorization (Kubo's API.Authorizations), e.g. "Bearer TOKEN". Never logged. */
  authorization?: string;
}

export interface KuboStore extends ContentStore {
  readonly kind: "kubo";
  /** The node's peer id and addresses (POST /api/v0/id). */
  id(opts?: AbortOptions): Promise<{ id: string; addresses: string[] }>;
}

/**
 * A ContentStore over a Kubo node's HTTP RPC API (https://docs.ipfs.tech/reference/kubo/rpc/): block/put,
 * block/get, block/stat, pin/add, pin/rm, pin/ls, id. Every call is a POST, as the API requires. Blocks from Kubo
 * are hashed again here, and answers are size-bounded while reading.
 */
export function createKuboStore(opts: KuboOptions): KuboStore {
  const base = new URL("/api/v0/", opts.url);
  if (base.protocol !== "http:" && base.protocol !== "https:")
    throw new KuboRpcError(0, `bad Kubo API URL ${opts.url}`);
  const timeoutMs = opts.timeoutMs ?? 60_000;

  const call = async (
    path: string,
    args: Record<string, string>,
    o: AbortOptions & { body?: FormData },
  ): Promise<Response> => {
    const url = new URL(path, base);
    for (const [k, v] of Object.entries(args)) url.searchParams.set(k, v);
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, deadline]) : deadline;
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        body: o.body,
        signal,
        headers: opts.authorization ? { authorization: opts.authorization } : {},
      });
    } catch (err) {
      if (deadline.aborted) throw new IpfsTimeoutError(`Kubo ${path}`, timeoutMs);
      if (o.signal?.aborted) throw err;
      throw new KuboRpcError(0, `Kubo ${path}: ${(err as Error).message}`);
    }
    if (!res.ok) {
      const text = new TextDecoder().decode(await readBounded(res, 64 * 1024).catch(() => new Uint8Array()));
      let message = text.trim();
      try {
        message = (JSON.parse(text) as { Message?: string }).Message ?? message;
      } catch {
        // Kubo answers errors as JSON {Message, Code, Type}; keep the raw text when it did not.
      }
      throw new KuboRpcError(res.status, `Kubo ${path} answered ${res.status}: ${message.slice(0, 500)}`);
    }
    return res;
  };

  const json = async <T>(
    path: string,
    args: Record<string, string>,
    o: AbortOptions & { body?: FormData } = {},
  ) => {
    const res = await call(path, args, o);
    const text = new TextDecoder().decode(await readBounded(res, MAX_JSON_ANSWER));
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new KuboRpcError(res.status, `Kubo ${path} answered something that is not JSON`);
    }
  };

  return {
    kind: "kubo",
    async putBlock(cid, bytes, o = {}) {
      const codec = CODEC_NAMES[cid.code];
      if (!codec) throw new KuboRpcError(0, `cannot put block with codec 0x${cid.code.toString(16)}`);
      const body = new FormData();
      body.append("data", new Blob([bytes as Uint8Array<ArrayBuffer>]), "data");
      const answer = await json<{ Key?: string }>(
        "block/put",
        { "cid-codec": codec, mhtype: "sha2-256", pin: "false" },
        { ...o, body },
      );
      if (typeof answer.Key !== "string" || !parseCid(answer.Key).equals(cid.toV1())) {
        throw new KuboRpcError(200, `Kubo stored ${cid} as ${String(answer.Key)}`);
      }
    },
    async getBlock(cid, o: GetBlockOptions = {}) {
      const max = o.maxSize ?? MAX_BLOCK_SIZE;
      const res = await call("block/get", { arg: cid.toString() }, o);
      const bytes = await readBounded(res, max, `block ${cid}`);
      await verifyBlock(cid, bytes, max);
      return bytes;
    },
    async hasBlock(cid, o = {}) {
      try {
        await json("block/stat", { arg: cid.toString(), offline: "true" }, o);
        return true;
      } catch (err) {
        if (err instanceof KuboRpcError && err.status === 500) return false;
        throw err;
      }
    },
    async pin(cid, o = {}) {
      const answer = await json<{ Pins?: string[] }>(
        "pin/add",
        { arg: cid.toString(), recursive: "true" },
        o,
      );
      if (!answer.Pins?.some((p) => parseCid(p).equals(cid.toV1()))) {
        throw new KuboRpcError(200, `Kubo did not confirm pinning ${cid}`);
      }
    },
    async unpin(cid, o = {}) {
      await json("pin/rm", { arg: cid.toString(), recursive: "true" }, o);
    },
    async isPinned(cid, o = {}) {
      try {
        const answer = await json<{ Keys?: Record<string, unknown> }>("pin/ls", { arg: cid.toString() }, o);
        return Object.keys(answer.Keys ?? {}).length > 0;
      } catch (err) {
        if (err instanceof KuboRpcError && err.status === 500) return false;
        throw err;
      }
    },
    async id(o = {}) {
      const answer = await json<{ ID?: string; Addresses?: string[] | null }>("id", {}, o);
      if (typeof answer.ID !== "string") throw new KuboRpcError(200, "Kubo id answer has no ID");
      return { id: answer.ID, addresses: answer.Addresses ?? [] };
    },
  };
}

/** Reads a response body, failing as soon as it grows past `max` bytes. */
async function readBounded(res: Response, max: number, what = "Kubo answer"): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > max) {
    await res.body?.cancel();
    throw new SizeLimitError(`${what} is ${declared} bytes, over the ${max} byte limit`, max);
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  if (!res.body) return new Uint8Array();
  const reader = res.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new SizeLimitError(`${what} is over the ${max} byte limit`, max);
    }
    parts.push(value);
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}
