import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema, StringValueSchema } from "@bufbuild/protobuf/wkt";
import { ErrorCode, FrameSchema } from "@trustedpods/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  callServerStream,
  callUnary,
  FrameDecoder,
  type P2PNode,
  protocolId,
  RpcError,
  registerServerStream,
  registerUnary,
} from "../src/index.js";
import { addressOf, eventually, sleep, startProvider, startPublisher } from "./helpers.js";

let provider: P2PNode;
let publisher: P2PNode;
let counter = 0;
// Each test registers its own protocol name so tests cannot see each other's handlers.
const uniqueName = (base: string) => `${base}-${++counter}`;

beforeAll(async () => {
  provider = await startProvider();
  publisher = await startPublisher();
});

afterAll(async () => {
  await publisher?.stop();
  await provider?.stop();
});

async function expectRpcError(promise: Promise<unknown>): Promise<RpcError> {
  const error = await promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RpcError);
  return error as RpcError;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

describe("unary calls", () => {
  it.each(["tcp", "ws"] as const)("answers a request over %s", async (kind) => {
    const name = uniqueName("echo");
    await registerUnary(provider, name, StringValueSchema, StringValueSchema, (req, ctx) => ({
      value: `${req.value} from ${ctx.peer.toString()}`,
    }));
    // A node with only this transport, so the call cannot reuse a connection of the other kind.
    const caller = await startPublisher([kind]);
    try {
      const response = await callUnary(
        caller,
        addressOf(provider, kind),
        name,
        StringValueSchema,
        { value: "hello" },
        StringValueSchema,
      );
      expect(response.value).toBe(`hello from ${caller.peerId.toString()}`);
      const connection = caller.getConnections(provider.peerId)[0];
      expect(connection?.remoteAddr.toString().includes("/ws")).toBe(kind === "ws");
    } finally {
      await caller.stop();
    }
  });
});

describe("server streams", () => {
  it.each(["tcp", "ws"] as const)("yields every message then ends over %s", async (kind) => {
    const name = uniqueName("count");
    await registerServerStream(provider, name, StringValueSchema, StringValueSchema, async function* (req) {
      for (let i = 0; i < 5; i++) yield { value: `${req.value}-${i}` };
    });
    const caller = await startPublisher([kind]);
    try {
      const received = await collect(
        callServerStream(
          caller,
          addressOf(provider, kind),
          name,
          StringValueSchema,
          { value: "n" },
          StringValueSchema,
        ),
      );
      expect(received.map((m) => m.value)).toEqual(["n-0", "n-1", "n-2", "n-3", "n-4"]);
    } finally {
      await caller.stop();
    }
  });

  it("carries many large messages under backpressure", async () => {
    const name = uniqueName("bulk");
    const chunk = new Uint8Array(512 * 1024).fill(7);
    await registerServerStream(provider, name, StringValueSchema, BytesValueSchema, async function* () {
      for (let i = 0; i < 40; i++) yield { value: chunk };
    });
    let total = 0;
    for await (const message of callServerStream(
      publisher,
      addressOf(provider, "tcp"),
      name,
      StringValueSchema,
      {},
      BytesValueSchema,
    )) {
      total += message.value.byteLength;
      // A slow consumer: the provider must wait for us rather than fill memory or reset the stream.
      if (total % (4 * chunk.byteLength) === 0) await sleep(5);
    }
    expect(total).toBe(40 * chunk.byteLength);
  });

  it.each(["tcp", "ws"] as const)(
    "holds the producer back while the reader is slow over %s",
    async (kind) => {
      const name = uniqueName("backpressure");
      const chunk = new Uint8Array(64 * 1024);
      const total = 2000; // 125 MiB if nothing held the producer back
      let produced = 0;
      await registerServerStream(provider, name, StringValueSchema, BytesValueSchema, async function* () {
        for (; produced < total; produced++) yield { value: chunk };
      });
      const caller = await startPublisher([kind]);
      try {
        let read = 0;
        for await (const _ of callServerStream(
          caller,
          addressOf(provider, kind),
          name,
          StringValueSchema,
          {},
          BytesValueSchema,
        )) {
          if (++read === 5) {
            // Give an unthrottled producer ample time to run ahead, then see that it did not.
            await sleep(500);
            break;
          }
        }
        // What may be in flight: our write high-water mark (1 MiB), the yamux window (4 MiB), the reader's read
        // buffer (8 MiB) and TCP/WebSocket buffers, all far below the 125 MiB an unbounded producer would queue.
        expect(produced).toBeGreaterThan(5);
        expect(produced).toBeLessThan(400);
      } finally {
        await caller.stop();
      }
    },
  );

  it("sends an error after some messages and the caller sees both", async () => {
    const name = uniqueName("fails-midway");
    await registerServerStream(provider, name, StringValueSchema, StringValueSchema, async function* () {
      yield { value: "first" };
      throw new RpcError(ErrorCode.FAILED_PRECONDITION, "pod stopped", { details: { pod: "p1" } });
    });
    const received: string[] = [];
    const error = await expectRpcError(
      (async () => {
        for await (const m of callServerStream(
          publisher,
          addressOf(provider, "tcp"),
          name,
          StringValueSchema,
          {},
          StringValueSchema,
        )) {
          received.push(m.value);
        }
      })(),
    );
    expect(received).toEqual(["first"]);
    expect(error.code).toBe(ErrorCode.FAILED_PRECONDITION);
    expect(error.details.pod).toBe("p1");
    expect(error.remote).toBe(true);
  });

  it("cancels the handler when the caller goes away mid-stream", async () => {
    const name = uniqueName("follow");
    let yielded = 0;
    let cleanedUp = false;
    let handlerSignal: AbortSignal | undefined;
    await registerServerStream(
      provider,
      name,
      StringValueSchema,
      StringValueSchema,
      async function* (_req, ctx) {
        handlerSignal = ctx.signal;
        try {
          for (;;) {
            yield { value: `line ${yielded++}` };
            await sleep(20);
          }
        } finally {
          cleanedUp = true;
        }
      },
    );
    const seen: string[] = [];
    for await (const message of callServerStream(
      publisher,
      addressOf(provider, "tcp"),
      name,
      StringValueSchema,
      {},
      StringValueSchema,
    )) {
      seen.push(message.value);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(["line 0", "line 1", "line 2"]);
    await eventually(() => cleanedUp);
    expect(handlerSignal?.aborted).toBe(true);
    const countAtCancel = yielded;
    await sleep(100);
    expect(yielded).toBe(countAtCancel);
  });

  it("reports a stream cut off without an End frame as UNAVAILABLE", async () => {
    const name = uniqueName("cut-off");
    // A raw handler that sends one valid message frame and closes without End: a broken peer.
    await provider.handle(protocolId(name), async (stream) => {
      const body = toBinary(
        FrameSchema,
        create(FrameSchema, { kind: { case: "message", value: new Uint8Array() } }),
      );
      stream.send(Uint8Array.from([body.byteLength, ...body]));
      await stream.close();
    });
    const received: unknown[] = [];
    const error = await expectRpcError(
      (async () => {
        for await (const m of callServerStream(
          publisher,
          addressOf(provider, "tcp"),
          name,
          StringValueSchema,
          {},
          StringValueSchema,
        )) {
          received.push(m);
        }
      })(),
    );
    expect(received).toHaveLength(1);
    expect(error.code).toBe(ErrorCode.UNAVAILABLE);
    expect(error.reason).toBe("no-response");
  });
});

describe("typed errors", () => {
  it("propagates an RpcError thrown by the handler with its code, message and details", async () => {
    const name = uniqueName("typed");
    await registerUnary(provider, name, StringValueSchema, StringValueSchema, () => {
      throw new RpcError(ErrorCode.NOT_FOUND, "no such pod", { details: { podId: "0xabc" } });
    });
    const error = await expectRpcError(
      callUnary(publisher, addressOf(provider, "tcp"), name, StringValueSchema, {}, StringValueSchema),
    );
    expect(error.code).toBe(ErrorCode.NOT_FOUND);
    expect(error.message).toBe("no such pod");
    expect(error.details).toEqual({ podId: "0xabc" });
    expect(error.remote).toBe(true);
  });

  it("maps a handler crash to INTERNAL without leaking its message, and reports it locally", async () => {
    const name = uniqueName("crash");
    const reported: unknown[] = [];
    await registerUnary(
      provider,
      name,
      StringValueSchema,
      StringValueSchema,
      async () => {
        throw new Error("cannot open /var/lib/secret-key.pem");
      },
      { onInternalError: (error) => reported.push(error) },
    );
    const error = await expectRpcError(
      callUnary(publisher, addressOf(provider, "tcp"), name, StringValueSchema, {}, StringValueSchema),
    );
    expect(error.code).toBe(ErrorCode.INTERNAL);
    expect(error.message).not.toContain("secret");
    expect(JSON.stringify(error.details)).not.toContain("secret");
    expect((reported[0] as Error).message).toContain("secret-key.pem");
  });

  it("maps a crash inside a stream generator to INTERNAL", async () => {
    const name = uniqueName("stream-crash");
    await registerServerStream(provider, name, StringValueSchema, StringValueSchema, async function* () {
      yield { value: "ok" };
      throw new TypeError("undefined is not a function at /srv/provider/internal.js");
    });
    const error = await expectRpcError(
      collect(
        callServerStream(
          publisher,
          addressOf(provider, "tcp"),
          name,
          StringValueSchema,
          {},
          StringValueSchema,
        ),
      ),
    );
    expect(error.code).toBe(ErrorCode.INTERNAL);
    expect(error.message).not.toContain("/srv");
  });

  it("answers UNIMPLEMENTED for a protocol the peer does not serve", async () => {
    const error = await expectRpcError(
      callUnary(
        publisher,
        addressOf(provider, "tcp"),
        "nobody-serves-this",
        StringValueSchema,
        {},
        StringValueSchema,
      ),
    );
    expect(error.code).toBe(ErrorCode.UNIMPLEMENTED);
  });

  it("answers garbage on the wire with a typed INVALID_ARGUMENT error frame", async () => {
    const name = uniqueName("garbage");
    let called = false;
    await registerUnary(provider, name, StringValueSchema, StringValueSchema, () => {
      called = true;
      return {};
    });
    const stream = await publisher.dialProtocol(addressOf(provider, "tcp"), protocolId(name));
    // A valid length prefix (3) followed by bytes that are not a protobuf Frame (field 15, wire type 7).
    stream.send(Uint8Array.from([3, 0x7f, 0xff, 0xff]));
    await stream.close();
    const decoder = new FrameDecoder();
    const frames = [];
    for await (const chunk of stream) frames.push(...decoder.push(chunk));
    expect(frames).toHaveLength(1);
    expect(frames[0]?.kind.case).toBe("error");
    expect(frames[0]?.kind.case === "error" && frames[0].kind.value.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(called).toBe(false);
  });

  it("rejects a request that does not decode as the protocol's message type", async () => {
    const name = uniqueName("bad-request");
    await registerUnary(provider, name, StringValueSchema, StringValueSchema, () => ({}));
    // Field 1 of StringValue is a string: invalid UTF-8 makes the request undecodable.
    const error = await expectRpcError(
      callUnary(
        publisher,
        addressOf(provider, "tcp"),
        name,
        BytesValueSchema,
        { value: Uint8Array.from([0xff, 0xfe]) },
        StringValueSchema,
      ),
    );
    expect(error.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(error.reason).toBe("malformed-message");
  });
});

describe("size limits", () => {
  it("rejects an oversized request with MESSAGE_TOO_LARGE from the provider", async () => {
    const name = uniqueName("small-requests");
    let called = false;
    await registerUnary(
      provider,
      name,
      BytesValueSchema,
      BytesValueSchema,
      () => {
        called = true;
        return {};
      },
      { maxMessageBytes: 1024 },
    );
    // 1 MiB is far beyond what yamux lets through before the provider reads, so this also shows the caller is
    // not stuck writing while the provider refuses.
    const error = await expectRpcError(
      callUnary(
        publisher,
        addressOf(provider, "tcp"),
        name,
        BytesValueSchema,
        { value: new Uint8Array(1024 * 1024) },
        BytesValueSchema,
      ),
    );
    expect(error.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(error.remote).toBe(true);
    expect(called).toBe(false);
  });

  it("refuses to send a request above the caller's own limit", async () => {
    const name = uniqueName("never-called");
    const error = await expectRpcError(
      callUnary(
        publisher,
        addressOf(provider, "tcp"),
        name,
        BytesValueSchema,
        { value: new Uint8Array(5 * 1024 * 1024) },
        BytesValueSchema,
      ),
    );
    expect(error.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(error.remote).toBe(false);
  });

  it("turns a handler's oversized response into MESSAGE_TOO_LARGE for the caller", async () => {
    const name = uniqueName("big-response");
    await registerUnary(
      provider,
      name,
      BytesValueSchema,
      BytesValueSchema,
      () => ({ value: new Uint8Array(4096) }),
      {
        maxMessageBytes: 1024,
      },
    );
    const error = await expectRpcError(
      callUnary(publisher, addressOf(provider, "tcp"), name, BytesValueSchema, {}, BytesValueSchema),
    );
    expect(error.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(error.remote).toBe(true);
  });

  it("rejects a response above the caller's limit locally", async () => {
    const name = uniqueName("bigger-than-caller");
    await registerUnary(provider, name, BytesValueSchema, BytesValueSchema, () => ({
      value: new Uint8Array(256 * 1024),
    }));
    const error = await expectRpcError(
      callUnary(publisher, addressOf(provider, "tcp"), name, BytesValueSchema, {}, BytesValueSchema, {
        maxMessageBytes: 1024,
      }),
    );
    expect(error.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(error.remote).toBe(false);
  });

  it("ends a stream with MESSAGE_TOO_LARGE when one response is too big", async () => {
    const name = uniqueName("stream-too-big");
    await registerServerStream(
      provider,
      name,
      BytesValueSchema,
      BytesValueSchema,
      async function* () {
        yield { value: new Uint8Array(10) };
        yield { value: new Uint8Array(4096) };
        yield { value: new Uint8Array(10) };
      },
      { maxMessageBytes: 1024 },
    );
    const received: number[] = [];
    const error = await expectRpcError(
      (async () => {
        for await (const m of callServerStream(
          publisher,
          addressOf(provider, "tcp"),
          name,
          BytesValueSchema,
          {},
          BytesValueSchema,
        )) {
          received.push(m.value.byteLength);
        }
      })(),
    );
    expect(received).toEqual([10]);
    expect(error.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
  });
});

describe("timeouts", () => {
  it("answers DEADLINE_EXCEEDED when the handler outlives the provider's deadline, and aborts its signal", async () => {
    const name = uniqueName("slow");
    let handlerSignal: AbortSignal | undefined;
    await registerUnary(
      provider,
      name,
      StringValueSchema,
      StringValueSchema,
      async (_req, ctx) => {
        handlerSignal = ctx.signal;
        await sleep(60_000, ctx.signal);
        return {};
      },
      { timeoutMs: 200 },
    );
    const error = await expectRpcError(
      callUnary(publisher, addressOf(provider, "tcp"), name, StringValueSchema, {}, StringValueSchema),
    );
    expect(error.code).toBe(ErrorCode.DEADLINE_EXCEEDED);
    expect(error.remote).toBe(true);
    expect(handlerSignal?.aborted).toBe(true);
  });

  it("throws a local DEADLINE_EXCEEDED when the caller's own deadline passes first", async () => {
    const name = uniqueName("slower");
    let handlerSignal: AbortSignal | undefined;
    await registerUnary(provider, name, StringValueSchema, StringValueSchema, async (_req, ctx) => {
      handlerSignal = ctx.signal;
      await sleep(60_000, ctx.signal);
      return {};
    });
    const error = await expectRpcError(
      callUnary(publisher, addressOf(provider, "tcp"), name, StringValueSchema, {}, StringValueSchema, {
        timeoutMs: 200,
      }),
    );
    expect(error.code).toBe(ErrorCode.DEADLINE_EXCEEDED);
    expect(error.remote).toBe(false);
    // The caller resets the stream on its deadline, which the provider sees as the caller going away.
    await eventually(() => handlerSignal?.aborted === true);
  });

  it("times out a caller that opens a stream and never sends its request", async () => {
    const name = uniqueName("silent-caller");
    await registerUnary(provider, name, StringValueSchema, StringValueSchema, () => ({}), {
      requestTimeoutMs: 200,
    });
    const stream = await publisher.dialProtocol(addressOf(provider, "tcp"), protocolId(name));
    const decoder = new FrameDecoder();
    const frames = [];
    for await (const chunk of stream) frames.push(...decoder.push(chunk));
    expect(frames[0]?.kind.case === "error" && frames[0].kind.value.code).toBe(ErrorCode.DEADLINE_EXCEEDED);
    stream.abort(new Error("done"));
  });

  it("passes a caller's own cancellation through as its abort reason", async () => {
    const name = uniqueName("cancelled");
    await registerUnary(provider, name, StringValueSchema, StringValueSchema, async (_req, ctx) => {
      await sleep(60_000, ctx.signal);
      return {};
    });
    const controller = new AbortController();
    const reason = new Error("user pressed ctrl-c");
    setTimeout(() => controller.abort(reason), 100);
    const error = await callUnary(
      publisher,
      addressOf(provider, "tcp"),
      name,
      StringValueSchema,
      {},
      StringValueSchema,
      { signal: controller.signal },
    ).catch((e: unknown) => e);
    expect(error).toBe(reason);
  });
});

describe("concurrency limit", () => {
  it("refuses calls beyond the per-peer limit with RESOURCE_EXHAUSTED and serves them again after", async () => {
    const name = uniqueName("limited");
    let inside = 0;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    await registerServerStream(
      provider,
      name,
      StringValueSchema,
      StringValueSchema,
      async function* (req) {
        inside++;
        await gate;
        yield { value: req.value };
      },
      { maxConcurrentPerPeer: 2 },
    );
    const target = addressOf(provider, "tcp");
    const call = (value: string) =>
      collect(callServerStream(publisher, target, name, StringValueSchema, { value }, StringValueSchema));
    const first = call("a");
    const second = call("b");
    await eventually(() => inside === 2);
    const error = await expectRpcError(call("c"));
    expect(error.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    expect(error.reason).toBe("too-many-streams");
    open();
    expect((await first).map((m) => m.value)).toEqual(["a"]);
    expect((await second).map((m) => m.value)).toEqual(["b"]);
    expect((await call("d")).map((m) => m.value)).toEqual(["d"]);
  });

  it("counts each peer separately", async () => {
    const name = uniqueName("per-peer");
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let inside = 0;
    await registerUnary(
      provider,
      name,
      StringValueSchema,
      StringValueSchema,
      async (req) => {
        inside++;
        await gate;
        return { value: req.value };
      },
      { maxConcurrentPerPeer: 1 },
    );
    const other = await startPublisher();
    try {
      const target = addressOf(provider, "tcp");
      const mine = callUnary(
        publisher,
        target,
        name,
        StringValueSchema,
        { value: "mine" },
        StringValueSchema,
      );
      const theirs = callUnary(
        other,
        target,
        name,
        StringValueSchema,
        { value: "theirs" },
        StringValueSchema,
      );
      await eventually(() => inside === 2);
      open();
      expect((await mine).value).toBe("mine");
      expect((await theirs).value).toBe("theirs");
    } finally {
      await other.stop();
    }
  });
});
