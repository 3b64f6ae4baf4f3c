/** `logs`: the signer's pod's container output, optionally followed. Signed; a server stream. */
import { RpcError, type SignedCallContext } from "@trustedpods/p2p";
import { ErrorCode, LogEntrySchema, LogStream, LogsRequestSchema } from "@trustedpods/protocol";
import type { Engine } from "../engine/types.js";
import type { StateDb } from "../state/db.js";
import { decodePod, ownedPod, podKey } from "./admission.js";
import { shortCall } from "./limits.js";
import { signedStream } from "./serve.js";
import { storedManifest } from "./to-wire.js";

export interface LogsDeps {
  state: Pick<StateDb, "getPod">;
  engine: Pick<Engine, "logs">;
}

type LogsRequest = { podId: Uint8Array; container: string; follow: boolean; sinceMs: bigint; tail: number };

export async function* logs(d: LogsDeps, r: LogsRequest, c: SignedCallContext) {
  const { id } = podKey(r.podId, c);
  const rec = ownedPod(d.state, id);
  if (rec.phase !== "running" && rec.phase !== "stopped")
    throw new RpcError(ErrorCode.FAILED_PRECONDITION, `the pod is ${rec.phase}: no logs`, {
      details: { field: "pod_id" },
    });
  const pod = decodePod(storedManifest(rec.manifest));
  if (r.container && !pod.containers.some((x) => x.name === r.container))
    throw new RpcError(ErrorCode.NOT_FOUND, `no container ${r.container} in this pod`, {
      details: { field: "container" },
    });
  const lines = d.engine.logs(id, {
    follow: r.follow,
    signal: c.signal,
    ...(r.container ? { containers: [r.container] } : {}),
    ...(r.sinceMs > 0n ? { since: new Date(Number(r.sinceMs)) } : {}),
    ...(r.tail > 0 ? { tail: r.tail } : {}),
  });
  for await (const l of lines) {
    yield {
      container: l.container,
      replica: 0,
      timestampMs: BigInt(l.time.getTime()),
      stream: l.stream === "stderr" ? LogStream.STDERR : LogStream.STDOUT,
      line: l.line,
    };
  }
}

export const logsProtocol = signedStream("logs", LogsRequestSchema, LogEntrySchema, logs, shortCall);
