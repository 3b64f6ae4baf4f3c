import { callSignedServerStream } from "@trustedpods/p2p/browser";
import { type LogEntry, LogEntrySchema, LogStream, LogsRequestSchema } from "@trustedpods/protocol";
import { type Hex, hexToBytes } from "viem";
import { type PodConnection, providerError } from "../connection.js";

export interface LogLine {
  container: string;
  replica: number;
  time: string;
  stream: "stdout" | "stderr";
  line: string;
}

function logLine(e: LogEntry): LogLine {
  return {
    container: e.container,
    replica: e.replica,
    time: new Date(Number(e.timestampMs)).toISOString(),
    stream: e.stream === LogStream.STDERR ? "stderr" : "stdout",
    line: e.line,
  };
}

/** The pod's logs (a signed server stream); with `follow` it runs until `signal` aborts. */
export async function* podLogs(
  conn: PodConnection,
  podId: Hex,
  o: { follow?: boolean; container?: string; tail?: number; sinceMs?: number; signal?: AbortSignal } = {},
): AsyncGenerator<LogLine> {
  try {
    for await (const e of callSignedServerStream(
      conn.node,
      conn.target,
      "logs",
      LogsRequestSchema,
      {
        podId: hexToBytes(podId),
        container: o.container ?? "",
        follow: o.follow ?? false,
        tail: o.tail ?? 0,
        sinceMs: BigInt(o.sinceMs ?? 0),
      },
      LogEntrySchema,
      { signer: conn.signer, chainId: conn.chainId, provider: conn.provider, podId },
      o.signal ? { signal: o.signal } : {},
    ))
      yield logLine(e);
  } catch (err) {
    if (o.signal?.aborted) return;
    throw providerError("logs", err);
  }
}
