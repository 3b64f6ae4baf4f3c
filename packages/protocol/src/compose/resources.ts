/** Resources: cpus, mem_limit, gpus and deploy.resources become the container's reservation. */
import { isScalar } from "yaml";
import type { Container } from "../pod.js";
import type { Entry, MapView } from "../yaml-reader.js";
import type { ComposeContext } from "./context.js";
import { parseComposeBytes, parseComposeCpus } from "./quantities.js";

/** Resources a container gets when Compose sets no limits (Compose has no default; most apps need this much). */
export const COMPOSE_DEFAULT_RESOURCES = { cpuMillis: 500n, memoryBytes: 512n << 20n } as const;

export function readResources(cx: ComposeContext, m: MapView, c: Container): void {
  const r = cx.r;
  const setCpu = (e: Entry | undefined) => {
    const t = cx.entryText(e);
    if (t === undefined) return;
    const v = parseComposeCpus(t);
    if (v === 0n)
      r.warn(
        e!.value,
        "UNSUPPORTED",
        `${e!.key}: 0 sets no limit in Compose; the pod reserves ${c.resources.cpuMillis}m (change resources.cpu in the manifest)`,
      );
    else if (v === undefined) r.report(e!.value, "INVALID_QUANTITY", `${e!.key}: "${t}" is not a CPU count`);
    else c.resources.cpuMillis = v;
  };
  const setMemory = (e: Entry | undefined) => {
    const t = cx.entryText(e);
    if (t === undefined) return;
    const v = parseComposeBytes(t);
    if (v === undefined) r.report(e!.value, "INVALID_QUANTITY", `${e!.key}: "${t}" is not a size`);
    else c.resources.memoryBytes = v;
  };
  setCpu(m.get("cpus"));
  setMemory(m.get("mem_limit"));
  const gpus = m.get("gpus");
  if (gpus) {
    r.warn(
      gpus.keyNode,
      "UNSUPPORTED",
      "gpus: the pod reserves 1 GPU; change resources.gpu in the manifest if it needs more",
    );
    c.resources.gpu = 1n;
  }
  const deploy = m.get("deploy");
  if (!deploy) return;
  const dm = r.map(deploy.value, [], "deploy", undefined, deploy.keyNode);
  if (!dm) return;
  for (const [key, e] of dm.entries) {
    if (key === "resources" || key.startsWith("x-")) continue;
    if (key === "replicas") {
      const n = r.resolve(e.value);
      if (n && isScalar(n) && typeof n.value === "number" && n.value > 1)
        r.warn(
          e.keyNode,
          "UNSUPPORTED",
          "deploy.replicas: dropped; replicas apply to the whole pod (spec.replicas)",
        );
      continue;
    }
    r.warn(e.keyNode, "UNSUPPORTED", `deploy.${key}: dropped`);
  }
  const res = dm.get("resources");
  const rm = res && r.map(res.value, [], "deploy.resources", ["limits", "reservations", "x-*"], res.keyNode);
  if (!rm) return;
  for (const which of ["reservations", "limits"] as const) {
    // Limits win over reservations: they are what the container may use, so what must be reserved.
    const e = rm.get(which);
    const lm =
      e &&
      r.map(
        e.value,
        [],
        `deploy.resources.${which}`,
        ["cpus", "memory", "pids", "devices", "generic_resources", "x-*"],
        e.keyNode,
      );
    if (!lm) continue;
    setCpu(lm.get("cpus"));
    setMemory(lm.get("memory"));
    const devices = lm.get("devices");
    if (devices) readDevices(cx, devices, c);
    for (const k of ["pids", "generic_resources"]) {
      const x = lm.get(k);
      if (x) r.warn(x.keyNode, "UNSUPPORTED", `deploy.resources.${which}.${k}: dropped`);
    }
  }
}

/** deploy.resources.*.devices: GPUs are reserved; other devices are not available to pods. */
function readDevices(cx: ComposeContext, devices: Entry, c: Container): void {
  const r = cx.r;
  const isGpuCapability = (n: Parameters<typeof r.resolve>[0]) => {
    const v = r.resolve(n);
    return v !== null && isScalar(v) && v.value === "gpu";
  };
  for (const d of r.seq(devices.value, [], "devices", devices.keyNode)) {
    const dv = r.map(d, [], "device", undefined);
    const caps = dv?.get("capabilities");
    const isGpu = caps && r.seq(caps.value, [], "capabilities").some(isGpuCapability);
    if (!isGpu) {
      r.report(r.resolve(d), "UNSUPPORTED", "devices other than GPUs are not available to pods");
      continue;
    }
    const ids = dv?.get("device_ids");
    c.resources.gpu = ids
      ? BigInt(r.seq(ids.value, [], "device_ids", ids.keyNode).length)
      : gpuCount(cx, dv?.get("count"));
  }
}

/** A GPU device reservation's count: a number (possibly from a variable), or `all`, which a pod cannot ask for. */
function gpuCount(cx: ComposeContext, count: Entry | undefined): bigint {
  if (!count) return 1n;
  const t = cx.text(count.value, [], "count", count.keyNode);
  if (t?.trim().toLowerCase() === "all") {
    cx.r.warn(
      cx.r.resolve(count.value),
      "UNSUPPORTED",
      "count: all reserves 1 GPU; set resources.gpu in the manifest if it needs more",
    );
    return 1n;
  }
  const n = cx.integer(count.value, [], "count", count.keyNode);
  return n === undefined ? 1n : BigInt(n);
}
