import type { LogLine } from "./types.js";

const MAX_LINE = 64 * 1024;

/**
 * Parses the Docker API's multiplexed log stream (8-byte frame headers: stream type, 3 zero bytes, big-endian
 * length) into lines. Frames may split anywhere, lines may span frames: both are buffered per stream.
 * Lines start with an RFC 3339 timestamp because we ask for timestamps.
 */
export class LogDemuxer {
  private pending: Buffer = Buffer.alloc(0);
  private partial: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" };

  constructor(private readonly container: string) {}

  push(chunk: Buffer): LogLine[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: LogLine[] = [];
    while (this.pending.length >= 8) {
      const type = this.pending[0];
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const payload = this.pending.subarray(8, 8 + size).toString("utf8");
      this.pending = this.pending.subarray(8 + size);
      const stream = type === 2 ? "stderr" : "stdout";
      this.takeLines(stream, payload, out);
    }
    return out;
  }

  flush(): LogLine[] {
    const out: LogLine[] = [];
    for (const stream of ["stdout", "stderr"] as const) {
      if (this.partial[stream]) out.push(this.parse(stream, this.partial[stream]));
      this.partial[stream] = "";
    }
    return out;
  }

  private takeLines(stream: "stdout" | "stderr", text: string, out: LogLine[]): void {
    let buf = this.partial[stream] + text;
    let nl = buf.indexOf("\n");
    while (nl >= 0) {
      out.push(this.parse(stream, buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
      nl = buf.indexOf("\n");
    }
    // A line without an end is kept, but bounded: an endless line must not grow memory without limit.
    if (buf.length > MAX_LINE) {
      out.push(this.parse(stream, buf.slice(0, MAX_LINE)));
      buf = "";
    }
    this.partial[stream] = buf;
  }

  private parse(stream: "stdout" | "stderr", raw: string): LogLine {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const sp = line.indexOf(" ");
    const ts = sp > 0 ? new Date(line.slice(0, sp)) : new Date(Number.NaN);
    if (Number.isNaN(ts.getTime())) return { container: this.container, stream, time: new Date(), line };
    return { container: this.container, stream, time: ts, line: line.slice(sp + 1) };
  }
}

/** Interleaves several async iterables in arrival order; ends when all end or the signal aborts. */
export async function* mergeAsync<T>(sources: AsyncIterable<T>[], signal?: AbortSignal): AsyncGenerator<T> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ i: number; r: IteratorResult<T> }>>();
  const next = (i: number) => {
    const it = iterators[i]!;
    pending.set(
      i,
      it.next().then((r) => ({ i, r })),
    );
  };
  iterators.forEach((_, i) => {
    next(i);
  });
  const aborted = new Promise<null>((resolve) => {
    if (signal?.aborted) resolve(null);
    signal?.addEventListener("abort", () => resolve(null), { once: true });
  });
  try {
    while (pending.size > 0) {
      const winner = await Promise.race([...pending.values(), aborted]);
      if (winner === null) return;
      if (winner.r.done) {
        pending.delete(winner.i);
        continue;
      }
      next(winner.i);
      yield winner.r.value;
    }
  } finally {
    // Not awaited: a source blocked on a followed stream finishes only when its own signal destroys the stream.
    for (const it of iterators) void it.return?.(undefined)?.catch(() => {});
  }
}
