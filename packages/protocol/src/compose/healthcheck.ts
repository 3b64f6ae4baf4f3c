/** healthcheck: becomes the container's exec health check (CMD, CMD-SHELL or a shell string). */
import { isSeq, type Node } from "yaml";
import { DurationError, parseDuration } from "../duration.js";
import type { HealthCheck, PathSegment } from "../pod.js";
import type { Entry } from "../yaml-reader.js";
import type { ComposeContext } from "./context.js";

export function readHealthcheck(cx: ComposeContext, e: Entry, path: PathSegment[]): HealthCheck | undefined {
  const r = cx.r;
  const hm = r.map(
    e.value,
    path,
    "healthcheck",
    ["test", "interval", "timeout", "retries", "start_period", "start_interval", "disable", "x-*"],
    e.keyNode,
  );
  if (!hm) return undefined;
  const disable = hm.get("disable");
  if (disable && cx.boolean(disable.value, [], "disable", disable.keyNode)) return undefined;
  const test = hm.get("test");
  if (!test) return undefined;
  const node = r.resolve(test.value);
  let command: string[];
  if (node && isSeq(node)) {
    const items = (node.items as (Node | null)[]).map(
      (n) => cx.text(n, [], "test items", test.keyNode) ?? "",
    );
    const [kind, ...rest] = items;
    if (kind === "NONE") return undefined;
    if (kind === "CMD") command = rest;
    else if (kind === "CMD-SHELL") command = ["/bin/sh", "-c", rest.join(" ")];
    else {
      r.report(
        node,
        "INVALID_VALUE",
        `healthcheck test must start with "CMD", "CMD-SHELL" or "NONE", not "${kind}"`,
      );
      return undefined;
    }
  } else {
    const t = cx.text(test.value, [], "test", test.keyNode);
    if (t === undefined) return undefined;
    command = ["/bin/sh", "-c", t];
  }
  r.record([...path, "exec", "command"], node);
  const startInterval = hm.get("start_interval");
  if (startInterval)
    r.warn(startInterval.keyNode, "UNSUPPORTED", "start_interval: dropped; checks run every interval");
  const retries = hm.get("retries");
  const hc: HealthCheck = {
    probe: { kind: "exec", command },
    intervalMs: duration(cx, hm.get("interval"), 30_000n),
    timeoutMs: duration(cx, hm.get("timeout"), 30_000n),
    retries: (retries && cx.integer(retries.value, [...path, "retries"], "retries", retries.keyNode)) ?? 3,
    startPeriodMs: duration(cx, hm.get("start_period"), 0n),
  };
  for (const [k, p] of [
    ["interval", "interval"],
    ["timeout", "timeout"],
    ["start_period", "startPeriod"],
  ] as const) {
    const x = hm.get(k);
    if (x) r.record([...path, p], x.value);
  }
  return hc;
}

function duration(cx: ComposeContext, e: Entry | undefined, fallback: bigint): bigint {
  if (!e) return fallback;
  const t = cx.text(e.value, [], e.key, e.keyNode);
  if (t === undefined) return fallback;
  try {
    return parseDuration(t);
  } catch (err) {
    if (!(err instanceof DurationError)) throw err;
    cx.r.report(e.value, "INVALID_VALUE", `${e.key}: ${err.message}`);
    return fallback;
  }
}
