import type { Stream, StreamCloseEvent, StreamMessageEvent } from "@libp2p/interface";
import { ErrorCode, type Frame } from "@trustedpods/protocol";
import type { Uint8ArrayList } from "uint8arraylist";
import { RpcError } from "./errors.js";
import { encodeFrame, FrameDecoder } from "./frame.js";

/**
 * Reads Frames from a libp2p 3 message stream. Pauses the stream (which stops yamux window updates, so the
 * sender blocks) while decoded frames wait unread, so a fast peer cannot make us buffer without bound.
 */
export class FrameReader {
  private readonly decoder: FrameDecoder;
  private readonly queue: Frame[] = [];
  private ended = false;
  private failure: RpcError | undefined;
  private wake: (() => void) | undefined;
  private readonly onMessage = (event: StreamMessageEvent) => this.receive(event.data);
  // 'end' fires once the peer closed its side and everything it sent was delivered to us.
  private readonly onEnd = () => this.finish(undefined);
  // A clean 'close' can precede delivery of data buffered while paused, so only a reset or abort ends reading.
  private readonly onClose = (event: StreamCloseEvent) => {
    if (event.error !== undefined) this.finish(event.error);
    else if (this.stream.readableEnded) this.finish(undefined);
  };

  constructor(
    private readonly stream: Stream,
    maxMessageBytes: number,
    what: string,
  ) {
    this.decoder = new FrameDecoder(maxMessageBytes, what);
    stream.addEventListener("message", this.onMessage);
    stream.addEventListener("end", this.onEnd);
    stream.addEventListener("close", this.onClose);
    if (stream.status === "aborted" || stream.status === "reset")
      this.finish(new Error(`stream ${stream.status}`));
    else if (stream.readableEnded) this.finish(undefined);
  }

  /** The next frame, or undefined once the peer closed its side; throws a framing RpcError or on abort. */
  async next(signal: AbortSignal): Promise<Frame | undefined> {
    for (;;) {
      const frame = this.queue.shift();
      if (frame !== undefined) return frame;
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return undefined;
      signal.throwIfAborted();
      // Resuming may deliver buffered data synchronously, so look at the queue again before waiting.
      if (this.stream.readStatus === "paused") {
        this.stream.resume();
        continue;
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        this.wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  }

  /** Stops listening: later data is left to the stream (which is about to be closed or aborted). */
  detach(): void {
    this.stream.removeEventListener("message", this.onMessage);
    this.stream.removeEventListener("end", this.onEnd);
    this.stream.removeEventListener("close", this.onClose);
    this.ended = true;
    this.signal();
  }

  private receive(data: Uint8Array | Uint8ArrayList): void {
    if (this.failure !== undefined) return;
    try {
      this.queue.push(...this.decoder.push(data));
    } catch (error) {
      this.failure = error as RpcError;
    }
    if (this.queue.length > 0 && this.stream.readStatus === "readable") this.stream.pause();
    this.signal();
  }

  private finish(error: Error | undefined): void {
    if (error !== undefined && this.failure === undefined && !this.ended) {
      this.failure = new RpcError(ErrorCode.UNAVAILABLE, `stream closed by peer: ${error.message}`, {
        details: { reason: "stream-reset" },
        cause: error,
      });
    }
    this.ended = true;
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

// How much we let queue in a stream's write buffer (beyond what yamux's window lets out) before a writer waits.
const WRITE_HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Sends one frame, then waits while the stream's write buffer holds more than WRITE_HIGH_WATER_BYTES, so a
 * producer runs only as fast as the peer reads (the peer's yamux window releases our buffer).
 *
 * Stream.onDrain() cannot be used for this: in @libp2p/utils 7.4 its promise is created once and never reset,
 * so after the first drain it resolves at once forever and a fast producer queues without bound.
 */
export async function writeFrame(stream: Stream, frame: Frame, signal: AbortSignal): Promise<void> {
  stream.send(encodeFrame(frame));
  while (stream.writeBufferLength > WRITE_HIGH_WATER_BYTES) await nextWriteEvent(stream, signal);
}

/** Resolves on the stream's next drain or idle event, rejects on close or abort. */
function nextWriteEvent(stream: Stream, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      stream.removeEventListener("drain", onProgress);
      stream.removeEventListener("idle", onProgress);
      stream.removeEventListener("close", onClose);
      signal.removeEventListener("abort", onAbort);
    };
    const onProgress = () => {
      cleanup();
      resolve();
    };
    const onClose = (event: StreamCloseEvent) => {
      cleanup();
      reject(event.error ?? new Error("stream closed while writing"));
    };
    const onAbort = () => {
      cleanup();
      reject(signal.reason);
    };
    if (signal.aborted) return reject(signal.reason);
    if (stream.status !== "open" && stream.status !== "closing")
      return reject(new Error(`stream ${stream.status}`));
    stream.addEventListener("drain", onProgress);
    stream.addEventListener("idle", onProgress);
    stream.addEventListener("close", onClose);
    signal.addEventListener("abort", onAbort);
  });
}

/** Closes our writable end; aborts the stream if that cannot complete in time. */
export async function closeWrite(stream: Stream, signal: AbortSignal): Promise<void> {
  try {
    await stream.close({ signal });
  } catch (error) {
    stream.abort(error instanceof Error ? error : new Error(String(error)));
  }
}

/** Resolves once both ends of the stream are closed (or it was reset), or after `ms`. */
export function whenClosed(stream: Stream, ms: number): Promise<boolean> {
  if (stream.status !== "open" && stream.status !== "closing") return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      stream.removeEventListener("close", onClose);
      resolve(false);
    }, ms);
    const onClose = () => {
      clearTimeout(timer);
      resolve(true);
    };
    stream.addEventListener("close", onClose, { once: true });
  });
}
