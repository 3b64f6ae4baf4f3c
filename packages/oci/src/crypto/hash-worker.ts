import { Worker } from "node:worker_threads";

// Runs in a worker thread: SHA-256 and optionally HMAC-SHA256 over the chunks it receives, in order.
// Plain CommonJS source evaluated in the worker, so it works the same from src (vitest) and dist.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createHash, createHmac } = require("node:crypto");
let hash = null, hmac = null;
parentPort.on("message", (m) => {
  if (m.type === "start") {
    hash = createHash("sha256");
    hmac = m.hmacKey ? createHmac("sha256", Buffer.from(m.hmacKey)) : null;
  } else if (m.type === "chunk") {
    const b = new Uint8Array(m.buf, 0, m.len);
    hash.update(b);
    if (hmac) hmac.update(b);
    parentPort.postMessage({ type: "ack" });
  } else if (m.type === "end") {
    const out = { type: "done", sha256: hash.digest("hex"), hmac: hmac ? hmac.digest() : null };
    hash = null; hmac = null;
    parentPort.postMessage(out);
  }
});
`;

/** At most this many chunks wait in the worker's queue: bounds memory to a few MiB. */
const MAX_IN_FLIGHT = 4;

export interface HashResult {
  sha256: string;
  hmac?: Buffer;
}

/**
 * Hashes (and HMACs) a byte stream: either inline on the calling thread, or in a worker thread so that
 * encryption and hashing use both cores. Chunks passed to `update` must not be used by the caller afterwards.
 */
export interface StreamHasher {
  start(hmacKey?: Uint8Array): void;
  update(chunk: Buffer): Promise<void>;
  finish(): Promise<HashResult>;
  close(): Promise<void>;
}

export function createInlineHasher(): StreamHasher {
  let hash: import("node:crypto").Hash | undefined;
  let hmac: import("node:crypto").Hmac | undefined;
  let crypto: typeof import("node:crypto") | undefined;
  return {
    start(hmacKey) {
      crypto ??= process.getBuiltinModule("node:crypto");
      hash = crypto.createHash("sha256");
      hmac = hmacKey ? crypto.createHmac("sha256", hmacKey) : undefined;
    },
    async update(chunk) {
      hash!.update(chunk);
      hmac?.update(chunk);
    },
    async finish() {
      const result: HashResult = { sha256: hash!.digest("hex") };
      if (hmac) result.hmac = hmac.digest();
      return result;
    },
    async close() {},
  };
}

export function createWorkerHasher(): StreamHasher {
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  worker.unref();
  let inFlight = 0;
  let waiter: (() => void) | undefined;
  let done: ((r: HashResult) => void) | undefined;
  let failure: Error | undefined;
  let failed: ((e: Error) => void) | undefined;
  worker.on("message", (m: { type: string; sha256?: string; hmac?: Uint8Array | null }) => {
    if (m.type === "ack") {
      inFlight--;
      const w = waiter;
      waiter = undefined;
      w?.();
    } else if (m.type === "done") {
      const result: HashResult = { sha256: m.sha256! };
      if (m.hmac) result.hmac = Buffer.from(m.hmac);
      done?.(result);
    }
  });
  worker.on("error", (err) => {
    failure = err;
    failed?.(err);
    waiter?.();
  });
  return {
    start(hmacKey) {
      worker.postMessage({ type: "start", hmacKey: hmacKey ? Buffer.from(hmacKey) : null });
    },
    async update(chunk) {
      if (failure) throw failure;
      while (inFlight >= MAX_IN_FLIGHT) {
        await new Promise<void>((r) => {
          waiter = r;
        });
        if (failure) throw failure;
      }
      // Transfer (zero copy) when the chunk owns its whole ArrayBuffer; otherwise send a copy.
      const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
      const buf = own ? (chunk.buffer as ArrayBuffer) : Uint8Array.prototype.slice.call(chunk).buffer;
      inFlight++;
      worker.postMessage({ type: "chunk", buf, len: chunk.byteLength }, [buf]);
    },
    finish() {
      return new Promise<HashResult>((resolve, reject) => {
        if (failure) return reject(failure);
        done = resolve;
        failed = reject;
        worker.postMessage({ type: "end" });
      });
    },
    async close() {
      await worker.terminate();
    },
  };
}
