// Measures the /trusted-pods RPC framework against bare libp2p streams on the same two loopback nodes in the
// same run: unary round trips (latency, calls/s) and server-stream throughput. Run after `npm run build`:
//   node bench/p2p/run.ts            (TCP)   node bench/p2p/run.ts ws   (WebSockets)
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import type { Stream } from "@libp2p/interface";
import type { Multiaddr } from "@multiformats/multiaddr";
import {
  callServerStream,
  callUnary,
  createP2PNode,
  registerServerStream,
  registerUnary,
} from "@trustedpods/p2p";

const kind = process.argv[2] === "ws" ? "ws" : "tcp";
const CALLS = 2000;
const STREAM_CHUNK = 256 * 1024;
const STREAM_CHUNKS = 256; // 64 MiB per stream, 4 streams per variant

const provider = await createP2PNode({ listen: ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"] });
const publisher = await createP2PNode({ transports: [kind] });
const target: Multiaddr = provider
  .getMultiaddrs()
  .find((ma) => ma.toString().includes("/ws") === (kind === "ws")) as Multiaddr;

async function readAll(stream: Stream): Promise<number> {
  let total = 0;
  for await (const chunk of stream) total += chunk.byteLength;
  return total;
}

// Baselines: a bare stream per call, echoing what it reads, and a bare stream pushing raw bytes.
await provider.handle("/bench/echo/1.0.0", async (stream) => {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk.subarray());
  for (const chunk of chunks) stream.send(chunk);
  await stream.close();
});
await provider.handle("/bench/push/1.0.0", async (stream) => {
  const chunk = new Uint8Array(STREAM_CHUNK);
  for (let i = 0; i < STREAM_CHUNKS; i++) if (!stream.send(chunk)) await stream.onDrain();
  await stream.close();
});
await registerUnary(provider, "bench-echo", BytesValueSchema, BytesValueSchema, (req) => ({
  value: req.value,
}));
await registerServerStream(provider, "bench-push", BytesValueSchema, BytesValueSchema, async function* () {
  const value = new Uint8Array(STREAM_CHUNK);
  for (let i = 0; i < STREAM_CHUNKS; i++) yield { value };
});

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

// The machine is shared (other test suites run at the same time), so the two variants alternate in rounds
// and each sees the same background load.
const ROUNDS = 10;
const payload = new Uint8Array(64);
const bareCall = async () => {
  const stream = await publisher.dialProtocol(target, "/bench/echo/1.0.0");
  stream.send(payload);
  await stream.close();
  await readAll(stream);
};
const rpcCall = () =>
  callUnary(publisher, target, "bench-echo", BytesValueSchema, { value: payload }, BytesValueSchema);

const latencies = { bare: [] as number[], rpc: [] as number[] };
const elapsed = { bare: 0, rpc: 0 };
for (let i = 0; i < 100; i++) {
  await bareCall();
  await rpcCall();
}
for (let round = 0; round < ROUNDS; round++) {
  for (const [variant, call] of [
    ["bare", bareCall],
    ["rpc", rpcCall],
  ] as const) {
    const start = performance.now();
    for (let i = 0; i < CALLS / ROUNDS; i++) {
      const t = performance.now();
      await call();
      latencies[variant].push(performance.now() - t);
    }
    elapsed[variant] += performance.now() - start;
  }
}
const stats = (variant: "bare" | "rpc") => {
  const sorted = [...latencies[variant]].sort((a, b) => a - b);
  return {
    perSecond: CALLS / (elapsed[variant] / 1000),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
};
const raw = stats("bare");
const rpc = stats("rpc");

const streamBytes = { bare: 0, rpc: 0 };
const streamMs = { bare: 0, rpc: 0 };
for (let round = 0; round < 4; round++) {
  let start = performance.now();
  streamBytes.bare += await readAll(await publisher.dialProtocol(target, "/bench/push/1.0.0"));
  streamMs.bare += performance.now() - start;
  start = performance.now();
  for await (const m of callServerStream(
    publisher,
    target,
    "bench-push",
    BytesValueSchema,
    {},
    BytesValueSchema,
  )) {
    streamBytes.rpc += m.value.byteLength;
  }
  streamMs.rpc += performance.now() - start;
}
const mibPerSecond = (variant: "bare" | "rpc") => streamBytes[variant] / 2 ** 20 / (streamMs[variant] / 1000);
const rawStream = mibPerSecond("bare");
const rpcStream = mibPerSecond("rpc");

const fmt = (n: number) => n.toFixed(2);
console.log(
  `transport: ${kind}, ${CALLS} sequential unary calls of 64 bytes and 4 streams of 64 MiB per variant`,
);
console.log(
  `unary bare stream: ${fmt(raw.perSecond)} calls/s, p50 ${fmt(raw.p50)} ms, p99 ${fmt(raw.p99)} ms`,
);
console.log(
  `unary callUnary:   ${fmt(rpc.perSecond)} calls/s, p50 ${fmt(rpc.p50)} ms, p99 ${fmt(rpc.p99)} ms`,
);
console.log(`unary ratio (rpc/bare calls/s): ${fmt(rpc.perSecond / raw.perSecond)}`);
console.log(`stream bare: ${fmt(rawStream)} MiB/s, callServerStream: ${fmt(rpcStream)} MiB/s`);
console.log(`stream ratio (rpc/bare): ${fmt(rpcStream / rawStream)}`);

await publisher.stop();
await provider.stop();
