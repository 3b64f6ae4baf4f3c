import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ErrorCode, type Frame, FrameSchema } from "@trustedpods/protocol";
import { Uint8ArrayList } from "uint8arraylist";
import { RpcError, toWireError } from "./errors.js";

/** Default limit on one protocol message (request or response), before framing. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Frames may exceed the message limit by this much: the envelope's own tag and length, and an Error frame
 * (bounded in errors.ts to well under this) must get through even where a protocol allows tiny messages.
 */
export const ERROR_FRAME_ALLOWANCE = 8 * 1024;

// A uint32 needs at most 5 varint bytes; no frame limit we accept is larger.
const MAX_VARINT_BYTES = 5;
const MAX_FRAME_LIMIT = 0xffff_ffff;

/** The largest frame a decoder accepts for a protocol whose messages may be `maxMessageBytes` long. */
export function frameLimit(maxMessageBytes: number): number {
  return Math.min(maxMessageBytes + ERROR_FRAME_ALLOWANCE, MAX_FRAME_LIMIT);
}

function encodeVarint(value: number): Uint8Array {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Uint8Array.from(out);
}

/** The varint length prefix followed by the encoded Frame. */
export function encodeFrame(frame: Frame): Uint8ArrayList {
  const body = toBinary(FrameSchema, frame);
  return new Uint8ArrayList(encodeVarint(body.byteLength), body);
}

export function messageFrame(message: Uint8Array): Frame {
  return create(FrameSchema, { kind: { case: "message", value: message } });
}

export function errorFrame(error: RpcError): Frame {
  return create(FrameSchema, { kind: { case: "error", value: toWireError(error) } });
}

export function endFrame(): Frame {
  return create(FrameSchema, { kind: { case: "end", value: {} } });
}

export function tooLarge(what: string, size: number | undefined, limit: number): RpcError {
  const shown = size === undefined ? "more than" : `${size} bytes, more than`;
  return new RpcError(ErrorCode.MESSAGE_TOO_LARGE, `${what} is ${shown} the limit of ${limit} bytes`, {
    details: { reason: "message-too-large", limit: String(limit) },
  });
}

/**
 * Incremental decoder of length-prefixed Frames from arbitrary byte chunks. Anything wrong with the input
 * (oversized length, malformed varint or protobuf, a frame with no kind, an oversized message) is thrown as an
 * RpcError with MESSAGE_TOO_LARGE or INVALID_ARGUMENT, and the decoder then refuses further input: a byte stream
 * cannot be resynchronised after a framing error.
 */
export class FrameDecoder {
  private readonly buffer = new Uint8ArrayList();
  private failure: RpcError | undefined;

  constructor(
    private readonly maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
    private readonly what = "frame",
  ) {}

  /** Bytes received but not yet decoded into a frame. */
  get bufferedBytes(): number {
    return this.buffer.byteLength;
  }

  /** Feeds bytes and returns every frame they complete. */
  push(chunk: Uint8Array | Uint8ArrayList): Frame[] {
    if (this.failure !== undefined) throw this.failure;
    try {
      this.buffer.append(chunk);
      const frames: Frame[] = [];
      for (;;) {
        const frame = this.next();
        if (frame === undefined) return frames;
        frames.push(frame);
      }
    } catch (error) {
      this.failure =
        error instanceof RpcError ? error : malformed(`${this.what} could not be decoded`, error);
      this.buffer.consume(this.buffer.byteLength);
      throw this.failure;
    }
  }

  private next(): Frame | undefined {
    const prefix = this.readLength();
    if (prefix === undefined) return undefined;
    const { length, prefixBytes } = prefix;
    if (this.buffer.byteLength < prefixBytes + length) return undefined;
    const body = this.buffer.subarray(prefixBytes, prefixBytes + length);
    this.buffer.consume(prefixBytes + length);
    return this.decodeBody(body);
  }

  // Rejects an oversized frame as soon as its length prefix is known, before any of its body arrives.
  private readLength(): { length: number; prefixBytes: number } | undefined {
    const limit = frameLimit(this.maxMessageBytes);
    let value = 0;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (i >= this.buffer.byteLength) return undefined;
      const byte = this.buffer.get(i);
      value += (byte & 0x7f) * 2 ** (7 * i);
      if (value > limit) throw tooLarge(this.what, undefined, this.maxMessageBytes);
      if ((byte & 0x80) === 0) {
        if (i > 0 && byte === 0) throw malformed(`${this.what} length prefix is not minimally encoded`);
        return { length: value, prefixBytes: i + 1 };
      }
    }
    throw malformed(`${this.what} length prefix is too long`);
  }

  private decodeBody(body: Uint8Array): Frame {
    let frame: Frame;
    try {
      frame = fromBinary(FrameSchema, body, { readUnknownFields: false });
    } catch (error) {
      throw malformed(`${this.what} is not a valid protobuf Frame`, error);
    }
    switch (frame.kind.case) {
      case "message":
        if (frame.kind.value.byteLength > this.maxMessageBytes) {
          throw tooLarge(this.what, frame.kind.value.byteLength, this.maxMessageBytes);
        }
        return frame;
      case "error":
      case "end":
        return frame;
      default:
        throw malformed(`${this.what} has no message, error or end`);
    }
  }
}

function malformed(message: string, cause?: unknown): RpcError {
  return new RpcError(ErrorCode.INVALID_ARGUMENT, message, {
    details: { reason: "malformed-frame" },
    cause,
  });
}
