import { create } from "@bufbuild/protobuf";
import { ErrorCode, ErrorSchema, type Frame, FrameSchema } from "@trustedpods/protocol";
import fc from "fast-check";
import { Uint8ArrayList } from "uint8arraylist";
import { describe, expect, it } from "vitest";
import {
  ERROR_FRAME_ALLOWANCE,
  encodeFrame,
  endFrame,
  errorFrame,
  FrameDecoder,
  messageFrame,
  RpcError,
} from "../src/index.js";

const arbitraryFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }).map((bytes) => messageFrame(bytes)),
  fc
    .record({
      code: fc.integer({ min: 0, max: 14 }),
      message: fc.string({ maxLength: 200 }),
      details: fc.dictionary(fc.string({ maxLength: 20 }), fc.string({ maxLength: 50 }), { maxKeys: 4 }),
    })
    .map((e) => create(FrameSchema, { kind: { case: "error", value: create(ErrorSchema, e) } })),
  fc.constant(endFrame()),
);

/** Cuts `bytes` at the given points into consecutive chunks. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

function expectFramingError(error: unknown): void {
  expect(error).toBeInstanceOf(RpcError);
  expect([ErrorCode.INVALID_ARGUMENT, ErrorCode.MESSAGE_TOO_LARGE]).toContain((error as RpcError).code);
}

describe("FrameDecoder", () => {
  it("decodes any sequence of frames however the bytes are chunked", () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryFrame, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (frames, cuts) => {
          const wire = new Uint8ArrayList(...frames.map((f) => encodeFrame(f))).subarray();
          const decoder = new FrameDecoder(4096);
          const decoded = split(wire, cuts).flatMap((chunk) => decoder.push(chunk));
          expect(decoded).toEqual(frames);
          expect(decoder.bufferedBytes).toBe(0);
        },
      ),
    );
  });

  it("never crashes on arbitrary bytes: it returns frames or throws a typed framing error, then stays failed", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
        fc.integer({ min: 1, max: 256 }),
        (chunks, limit) => {
          const decoder = new FrameDecoder(limit);
          for (const chunk of chunks) {
            let frames: Frame[];
            try {
              frames = decoder.push(chunk);
            } catch (error) {
              expectFramingError(error);
              // A byte stream cannot be resynchronised: every later push reports the same failure.
              expect(() => decoder.push(Uint8Array.of(0))).toThrow(error as RpcError);
              return;
            }
            for (const frame of frames) expect(["message", "error", "end"]).toContain(frame.kind.case);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("never crashes on arbitrary bytes behind a valid length prefix", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (body) => {
        const decoder = new FrameDecoder(1024);
        const prefixed = new Uint8ArrayList(Uint8Array.of(...varint(body.byteLength)), body).subarray();
        try {
          const frames = decoder.push(prefixed);
          expect(frames).toHaveLength(1);
        } catch (error) {
          expectFramingError(error);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("rejects an oversized frame from its length prefix alone, before the body arrives", () => {
    const decoder = new FrameDecoder(1000);
    const error = captureError(() =>
      decoder.push(Uint8Array.of(...varint(1000 + ERROR_FRAME_ALLOWANCE + 1))),
    );
    expect(error.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
  });

  it("rejects a message above the limit even when the frame fits the error allowance", () => {
    const decoder = new FrameDecoder(100);
    const error = captureError(() => decoder.push(encodeFrame(messageFrame(new Uint8Array(101)))));
    expect(error.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(new FrameDecoder(100).push(encodeFrame(messageFrame(new Uint8Array(100))))).toHaveLength(1);
  });

  it("lets an error frame through even where messages are tiny", () => {
    const decoder = new FrameDecoder(1);
    const long = new RpcError(ErrorCode.INTERNAL, "x".repeat(5000), { details: { a: "y".repeat(5000) } });
    const frames = decoder.push(encodeFrame(errorFrame(long)));
    expect(frames[0]?.kind.case).toBe("error");
  });

  it("rejects an empty frame and a non-minimal or overlong length prefix", () => {
    expect(captureError(() => new FrameDecoder().push(Uint8Array.of(0))).code).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(captureError(() => new FrameDecoder().push(Uint8Array.of(0x81, 0x00))).code).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(
      captureError(() => new FrameDecoder(2 ** 31).push(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 1))).code,
    ).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});

function varint(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function captureError(fn: () => unknown): RpcError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RpcError);
    return error as RpcError;
  }
  throw new Error("expected a framing error");
}
