import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { Connection, Libp2p, PeerId, Stream } from "@libp2p/interface";
import type { Multiaddr } from "@multiformats/multiaddr";
import { ErrorCode, type Frame } from "@trustedpods/protocol";
import { fromWireError, RpcError } from "./errors.js";
import { DEFAULT_MAX_MESSAGE_BYTES, endFrame, errorFrame, messageFrame, tooLarge } from "./frame.js";
import { closeWrite, FrameReader, whenClosed, writeFrame } from "./stream-io.js";

/** The libp2p protocol id of a Trusted Pods operation: `/trusted-pods/<name>/1.0.0`. */
export function protocolId(name: string): string {
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) {
    throw new RangeError(
      `protocol name ${JSON.stringify(name)} must be lowercase letters, digits and dashes`,
    );
  }
  return `/trusted-pods/${name}/1.0.0`;
}

export const DEFAULT_UNARY_TIMEOUT_MS = 30_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_CONCURRENT_PER_PEER = 8;
// How long the last frames (at most the write high-water mark plus a yamux window) may take to reach a slow
// reader, and how long we then wait for the peer to close its side, before resetting the stream.
const FLUSH_GRACE_MS = 30_000;
const PEER_CLOSE_GRACE_MS = 5_000;

/** Limits a provider applies to one protocol. */
export interface ServerLimits {
  /** Largest request and response message, in bytes (default 4 MiB). */
  maxMessageBytes?: number;
  /**
   * Deadline for the whole call in ms, after which the caller gets DEADLINE_EXCEEDED and the handler's signal
   * aborts. Default 30 s for unary calls; none for server streams (which may follow logs for hours). 0 = none.
   */
  timeoutMs?: number;
  /** Deadline for receiving the request frame, in ms (default 10 s), so a silent caller cannot hold a slot. */
  requestTimeoutMs?: number;
  /** Calls of this protocol one peer may have open at once (default 8); more get RESOURCE_EXHAUSTED. */
  maxConcurrentPerPeer?: number;
}

export interface ServerOptions extends ServerLimits {
  /**
   * Told about every handler failure that was not a deliberate RpcError (the caller only sees INTERNAL), so
   * the daemon can log it. Never called for errors the handler threw on purpose.
   */
  onInternalError?: (error: unknown, context: { protocol: string; peer: PeerId }) => void;
}

/** What a handler knows about the call it serves. */
export interface CallContext {
  /** The authenticated (Noise) peer id of the caller. */
  peer: PeerId;
  connection: Connection;
  protocol: string;
  /** Aborts when the caller goes away or the deadline passes: long work should watch it. */
  signal: AbortSignal;
}

export type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => Promise<MessageInitShape<O>> | MessageInitShape<O>;

export type ServerStreamHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => AsyncIterable<MessageInitShape<O>>;

/** Client-side options of one call. */
export interface CallOptions {
  /** Local deadline in ms (default 30 s for unary, none for streams); exceeding it throws DEADLINE_EXCEEDED. */
  timeoutMs?: number;
  /** Cancels the call; the signal's reason is thrown as is. */
  signal?: AbortSignal;
  /** Largest request and response message accepted, in bytes (default 4 MiB). */
  maxMessageBytes?: number;
}

export type DialTarget = PeerId | Multiaddr | Multiaddr[];

interface ResolvedLimits {
  maxMessageBytes: number;
  timeoutMs: number;
  requestTimeoutMs: number;
  maxConcurrentPerPeer: number;
}

function resolveLimits(limits: ServerLimits, unary: boolean): ResolvedLimits {
  const resolved = {
    maxMessageBytes: limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    timeoutMs: limits.timeoutMs ?? (unary ? DEFAULT_UNARY_TIMEOUT_MS : 0),
    requestTimeoutMs: limits.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    maxConcurrentPerPeer: limits.maxConcurrentPerPeer ?? DEFAULT_MAX_CONCURRENT_PER_PEER,
  };
  for (const [key, value] of Object.entries(resolved)) {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new RangeError(`${key} must be a non-negative integer`);
  }
  if (resolved.maxMessageBytes < 1) throw new RangeError("maxMessageBytes must be at least 1");
  return resolved;
}

/** An abort signal that fires with a typed DEADLINE_EXCEEDED after `ms` (never when ms is 0). */
function deadline(ms: number, what: string): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  if (ms <= 0) return { signal: controller.signal, clear: () => {} };
  const timer = setTimeout(() => {
    controller.abort(
      new RpcError(ErrorCode.DEADLINE_EXCEEDED, `${what} did not complete within ${ms} ms`, {
        details: { reason: "deadline-exceeded", timeoutMs: String(ms) },
      }),
    );
  }, ms);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

/** Settles like `promise`, or rejects with the signal's reason as soon as it aborts. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------------------
// Server side

type Serve<I extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
  send: (frame: Frame) => Promise<void>,
) => Promise<void>;

async function registerProtocol<I extends DescMessage>(
  node: Libp2p,
  name: string,
  requestSchema: I,
  options: ServerOptions,
  unary: boolean,
  serve: (limits: ResolvedLimits) => Serve<I>,
): Promise<() => Promise<void>> {
  const protocol = protocolId(name);
  const limits = resolveLimits(options, unary);
  const active = new Map<string, number>();
  const body = serve(limits);
  await node.handle(
    protocol,
    (stream, connection) => {
      void handleInbound(stream, connection, { protocol, requestSchema, limits, options, active, body });
    },
    {
      // Let a few more streams through than our own per-peer limit so the extra ones are refused with a typed
      // RESOURCE_EXHAUSTED instead of libp2p resetting them silently.
      maxInboundStreams: limits.maxConcurrentPerPeer * 2 + 4,
    },
  );
  return () => node.unhandle(protocol);
}

interface Inbound<I extends DescMessage> {
  protocol: string;
  requestSchema: I;
  limits: ResolvedLimits;
  options: ServerOptions;
  active: Map<string, number>;
  body: Serve<I>;
}

async function handleInbound<I extends DescMessage>(
  stream: Stream,
  connection: Connection,
  inbound: Inbound<I>,
): Promise<void> {
  const { protocol, limits } = inbound;
  const peer = connection.remotePeer;
  const peerKey = peer.toString();
  const callerGone = new AbortController();
  const onClose = () => callerGone.abort(new RpcError(ErrorCode.UNAVAILABLE, "the caller went away"));
  stream.addEventListener("close", onClose, { once: true });
  const callDeadline = deadline(limits.timeoutMs, `${protocol} call`);
  const signal = AbortSignal.any([callerGone.signal, callDeadline.signal]);
  const reader = new FrameReader(stream, limits.maxMessageBytes, "request");
  let counted = false;
  try {
    const running = inbound.active.get(peerKey) ?? 0;
    if (running >= limits.maxConcurrentPerPeer) {
      throw new RpcError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `too many concurrent ${protocol} calls from this peer (limit ${limits.maxConcurrentPerPeer})`,
        { details: { reason: "too-many-streams", limit: String(limits.maxConcurrentPerPeer) } },
      );
    }
    inbound.active.set(peerKey, running + 1);
    counted = true;
    const request = await readRequest(reader, inbound.requestSchema, limits.requestTimeoutMs, signal);
    const context: CallContext = { peer, connection, protocol, signal };
    await inbound.body(request, context, (frame) => writeFrame(stream, frame, signal));
  } catch (error) {
    if (!callerGone.signal.aborted) {
      const failure = serverFailure(error, signal, inbound, peer);
      const sendTimeout = AbortSignal.timeout(FLUSH_GRACE_MS);
      await writeFrame(stream, errorFrame(failure), sendTimeout).catch(() => {});
    }
  } finally {
    if (counted) release(inbound.active, peerKey);
    callDeadline.clear();
    reader.detach();
    stream.removeEventListener("close", onClose);
    await finishStream(stream);
  }
}

function release(active: Map<string, number>, peerKey: string): void {
  const left = (active.get(peerKey) ?? 1) - 1;
  if (left <= 0) active.delete(peerKey);
  else active.set(peerKey, left);
}

/** Closes our side, waits briefly for the caller to close theirs, then resets so nothing lingers. */
async function finishStream(stream: Stream): Promise<void> {
  await closeWrite(stream, AbortSignal.timeout(FLUSH_GRACE_MS));
  if (!(await whenClosed(stream, PEER_CLOSE_GRACE_MS)))
    stream.abort(new Error("peer did not close the stream"));
}

async function readRequest<I extends DescMessage>(
  reader: FrameReader,
  schema: I,
  requestTimeoutMs: number,
  callSignal: AbortSignal,
): Promise<MessageShape<I>> {
  const requestDeadline = deadline(requestTimeoutMs, "receiving the request");
  try {
    const frame = await reader.next(AbortSignal.any([callSignal, requestDeadline.signal]));
    if (frame === undefined) {
      throw new RpcError(ErrorCode.INVALID_ARGUMENT, "the stream ended before a request arrived", {
        details: { reason: "no-request" },
      });
    }
    if (frame.kind.case !== "message") {
      throw new RpcError(ErrorCode.INVALID_ARGUMENT, `expected a request message, got ${frame.kind.case}`, {
        details: { reason: "unexpected-frame" },
      });
    }
    return decodeMessage(schema, frame.kind.value, "request", ErrorCode.INVALID_ARGUMENT);
  } finally {
    requestDeadline.clear();
  }
}

function decodeMessage<T extends DescMessage>(
  schema: T,
  bytes: Uint8Array,
  what: string,
  code: ErrorCode,
): MessageShape<T> {
  try {
    return fromBinary(schema, bytes);
  } catch (error) {
    throw new RpcError(code, `${what} is not a valid ${schema.typeName}`, {
      details: { reason: "malformed-message" },
      cause: error,
    });
  }
}

function encodeMessage<T extends DescMessage>(
  schema: T,
  value: MessageInitShape<T>,
  what: string,
  maxMessageBytes: number,
): Uint8Array {
  const bytes = toBinary(schema, create(schema, value));
  if (bytes.byteLength > maxMessageBytes) throw tooLarge(what, bytes.byteLength, maxMessageBytes);
  return bytes;
}

/**
 * What the caller is told: a deliberate RpcError as is, the deadline as DEADLINE_EXCEEDED, anything else as a
 * bare INTERNAL (its text may hold paths, addresses or secrets) reported to onInternalError instead.
 */
function serverFailure(
  error: unknown,
  signal: AbortSignal,
  inbound: Inbound<DescMessage>,
  peer: PeerId,
): RpcError {
  if (error instanceof RpcError) return error;
  if (signal.aborted && signal.reason instanceof RpcError) return signal.reason;
  inbound.options.onInternalError?.(error, { protocol: inbound.protocol, peer });
  return new RpcError(ErrorCode.INTERNAL, `internal error while handling ${inbound.protocol}`, {
    details: { reason: "internal" },
  });
}

/**
 * Serves `/trusted-pods/<name>/1.0.0` as a unary call: one request message in, one response message or a typed
 * error out. Returns a function that unregisters the protocol.
 */
export function registerUnary<I extends DescMessage, O extends DescMessage>(
  node: Libp2p,
  name: string,
  requestSchema: I,
  responseSchema: O,
  handler: UnaryHandler<I, O>,
  options: ServerOptions = {},
): Promise<() => Promise<void>> {
  return registerProtocol(node, name, requestSchema, options, true, (limits) => {
    return async (request, context, send) => {
      const response = await raceAbort(
        Promise.resolve().then(() => handler(request, context)),
        context.signal,
      );
      await send(messageFrame(encodeMessage(responseSchema, response, "response", limits.maxMessageBytes)));
    };
  });
}

/**
 * Serves `/trusted-pods/<name>/1.0.0` as a server stream: one request in, every message the handler yields out,
 * then an End frame (or a typed error). When the caller goes away or the deadline passes, the handler's signal
 * aborts and its generator is closed (`return()`), so its `finally` blocks run.
 */
export function registerServerStream<I extends DescMessage, O extends DescMessage>(
  node: Libp2p,
  name: string,
  requestSchema: I,
  responseSchema: O,
  handler: ServerStreamHandler<I, O>,
  options: ServerOptions = {},
): Promise<() => Promise<void>> {
  return registerProtocol(node, name, requestSchema, options, false, (limits) => {
    return async (request, context, send) => {
      const iterator = handler(request, context)[Symbol.asyncIterator]();
      let finished = false;
      try {
        for (;;) {
          const step = await raceAbort(iterator.next(), context.signal);
          if (step.done) break;
          await send(
            messageFrame(encodeMessage(responseSchema, step.value, "response", limits.maxMessageBytes)),
          );
        }
        finished = true;
        await send(endFrame());
      } finally {
        // A generator busy in an await completes return() only after that await; its finally blocks run then.
        if (!finished) void iterator.return?.(undefined)?.catch(() => {});
      }
    };
  });
}

// ---------------------------------------------------------------------------------------------------------
// Client side

interface OpenCall {
  stream: Stream;
  reader: FrameReader;
  signal: AbortSignal;
  finish: () => void;
}

async function openCall<I extends DescMessage>(
  node: Libp2p,
  peer: DialTarget,
  name: string,
  requestSchema: I,
  request: MessageInitShape<I>,
  options: CallOptions,
  defaultTimeoutMs: number,
): Promise<OpenCall> {
  const protocol = protocolId(name);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const bytes = encodeMessage(requestSchema, request, "request", maxMessageBytes);
  const callDeadline = deadline(options.timeoutMs ?? defaultTimeoutMs, `${protocol} call`);
  const signals = [callDeadline.signal, ...(options.signal === undefined ? [] : [options.signal])];
  const signal = AbortSignal.any(signals);
  let stream: Stream;
  try {
    stream = await node.dialProtocol(peer, protocol, { signal });
  } catch (error) {
    callDeadline.clear();
    throw clientFailure(error, signal, protocol);
  }
  // Read while we write: a peer that refuses the request (too large, too many calls) answers before reading
  // all of it, and we must see that answer rather than block on a full window.
  const reader = new FrameReader(stream, maxMessageBytes, "response");
  const sending = (async () => {
    await writeFrame(stream, messageFrame(bytes), signal);
    await stream.close({ signal });
  })();
  // A failed send surfaces through the reader (the peer's error frame, a reset or the deadline).
  sending.catch(() => {});
  return { stream, reader, signal, finish: callDeadline.clear };
}

/** Maps whatever a call failed with onto an RpcError; a caller's own cancellation is rethrown as is. */
function clientFailure(error: unknown, signal: AbortSignal, protocol: string): unknown {
  if (error instanceof RpcError) return error;
  if (signal.aborted) return signal.reason;
  const name = error instanceof Error ? error.name : "";
  const text = error instanceof Error ? error.message : String(error);
  if (name === "UnsupportedProtocolError") {
    return new RpcError(ErrorCode.UNIMPLEMENTED, `the peer does not serve ${protocol}`, {
      details: { reason: "protocol-not-supported" },
      cause: error,
    });
  }
  return new RpcError(ErrorCode.UNAVAILABLE, `${protocol}: ${text}`, {
    details: { reason: "transport" },
    cause: error,
  });
}

async function nextFrame(call: OpenCall, protocol: string): Promise<Frame> {
  const frame = await call.reader.next(call.signal);
  if (frame === undefined) {
    throw new RpcError(ErrorCode.UNAVAILABLE, `${protocol}: the peer closed the stream without an answer`, {
      details: { reason: "no-response" },
    });
  }
  if (frame.kind.case === "error") throw fromWireError(frame.kind.value);
  return frame;
}

function protocolViolation(protocol: string, message: string): RpcError {
  return new RpcError(ErrorCode.INTERNAL, `${protocol}: ${message}`, {
    details: { reason: "protocol-violation" },
  });
}

/** Calls a unary protocol: returns the peer's response or throws an RpcError (remote or local). */
export async function callUnary<I extends DescMessage, O extends DescMessage>(
  node: Libp2p,
  peer: DialTarget,
  name: string,
  requestSchema: I,
  request: MessageInitShape<I>,
  responseSchema: O,
  options: CallOptions = {},
): Promise<MessageShape<O>> {
  const protocol = protocolId(name);
  const call = await openCall(node, peer, name, requestSchema, request, options, DEFAULT_UNARY_TIMEOUT_MS);
  let ok = false;
  try {
    const frame = await nextFrame(call, protocol);
    if (frame.kind.case !== "message")
      throw protocolViolation(protocol, `expected a response, got ${frame.kind.case}`);
    const response = decodeMessage(responseSchema, frame.kind.value, "response", ErrorCode.INTERNAL);
    ok = true;
    return response;
  } catch (error) {
    throw clientFailure(error, call.signal, protocol);
  } finally {
    call.finish();
    call.reader.detach();
    if (!ok) call.stream.abort(new Error("call failed"));
  }
}

/**
 * Calls a server-stream protocol: yields each response until the peer's End frame, throws an RpcError on a
 * typed error or a stream cut off without End. Breaking out of the loop resets the stream, which cancels the
 * peer's handler.
 */
export async function* callServerStream<I extends DescMessage, O extends DescMessage>(
  node: Libp2p,
  peer: DialTarget,
  name: string,
  requestSchema: I,
  request: MessageInitShape<I>,
  responseSchema: O,
  options: CallOptions = {},
): AsyncGenerator<MessageShape<O>, void, undefined> {
  const protocol = protocolId(name);
  const call = await openCall(node, peer, name, requestSchema, request, options, 0);
  let ended = false;
  try {
    for (;;) {
      let frame: Frame;
      try {
        frame = await nextFrame(call, protocol);
      } catch (error) {
        throw clientFailure(error, call.signal, protocol);
      }
      if (frame.kind.case === "end") {
        ended = true;
        return;
      }
      if (frame.kind.case !== "message")
        throw protocolViolation(protocol, `unexpected ${frame.kind.case} frame`);
      yield decodeMessage(responseSchema, frame.kind.value, "response", ErrorCode.INTERNAL);
    }
  } finally {
    call.finish();
    call.reader.detach();
    if (!ended) call.stream.abort(new Error("call ended by the caller"));
  }
}
