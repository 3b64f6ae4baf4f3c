/**
 * Lossless conversion between the typed Pod and its protobuf wire form. Pods from the wire are validated
 * exactly like manifests (they come from the network); pods going out are validated too, and secrets must
 * already be encrypted and on IPFS (a local file path means nothing to a provider).
 */
import { create } from "@bufbuild/protobuf";
import * as pb from "./gen/trustedpods/v1/pod_pb.js";
import {
  type Container,
  type EnvVar,
  formatPath,
  type HealthCheck,
  type ImageRef,
  type Pod,
  type PodIssue,
  type Port,
  type Volume,
  validatePod,
} from "./pod.js";

export class WireError extends Error {
  override readonly name = "WireError";
  readonly code = "INVALID_POD";
  constructor(readonly issues: PodIssue[]) {
    super(issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join("\n"));
  }
}

function hexToBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
}

function bytesToHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function imageToWire(image: ImageRef): pb.ImageRef {
  switch (image.kind) {
    case "local":
      return create(pb.ImageRefSchema, { source: { case: "local", value: image.name } });
    case "ipfs":
      return create(pb.ImageRefSchema, {
        source: {
          case: "ipfs",
          value: { rootCid: image.cid, manifestDigest: hexToBytes(image.digest.slice("sha256:".length)) },
        },
      });
    case "listing":
      return create(pb.ImageRefSchema, { source: { case: "listingId", value: image.listingId.toString() } });
  }
}

function envToWire(e: EnvVar): pb.EnvVar {
  return create(pb.EnvVarSchema, {
    name: e.name,
    source: e.kind === "value" ? { case: "value", value: e.value } : { case: "secret", value: e.secret },
  });
}

function portToWire(p: Port): pb.Port {
  return create(pb.PortSchema, {
    name: p.name ?? "",
    containerPort: p.containerPort,
    protocol:
      p.protocol === "http"
        ? { case: "http", value: { hostname: p.hostname ?? "" } }
        : p.protocol === "udp"
          ? { case: "udp", value: {} }
          : { case: "tcp", value: {} },
  });
}

function healthToWire(h: HealthCheck): pb.HealthCheck {
  return create(pb.HealthCheckSchema, {
    probe:
      h.probe.kind === "http"
        ? { case: "http", value: { path: h.probe.path, port: h.probe.port } }
        : { case: "exec", value: { command: h.probe.command } },
    intervalMs: h.intervalMs,
    timeoutMs: h.timeoutMs,
    retries: h.retries,
    startPeriodMs: h.startPeriodMs,
  });
}

function containerToWire(c: Container): pb.Container {
  return create(pb.ContainerSchema, {
    name: c.name,
    image: imageToWire(c.image),
    command: c.command,
    args: c.args,
    workingDir: c.workingDir ?? "",
    env: c.env.map(envToWire),
    ports: c.ports.map(portToWire),
    volumeMounts: c.volumeMounts,
    resources: {
      cpuMillis: c.resources.cpuMillis,
      memoryBytes: c.resources.memoryBytes,
      storageBytes: c.resources.storageBytes,
      gpuCount: c.resources.gpu,
    },
    ...(c.healthCheck ? { healthCheck: healthToWire(c.healthCheck) } : {}),
  });
}

function volumeToWire(v: Volume, i: number): pb.Volume {
  switch (v.kind) {
    case "emptyDir":
      return create(pb.VolumeSchema, { name: v.name, kind: { case: "emptyDir", value: {} } });
    case "persistent":
      return create(pb.VolumeSchema, {
        name: v.name,
        kind: { case: "persistent", value: { sizeBytes: v.sizeBytes } },
      });
    case "secret":
      if (v.source.kind === "file") {
        throw new WireError([
          {
            path: ["spec", "volumes", i, "secret", "file"],
            code: "UNSUPPORTED",
            message: `secret "${v.name}" is still a local file: encrypt and upload it before sending the pod`,
          },
        ]);
      }
      return create(pb.VolumeSchema, {
        name: v.name,
        kind: { case: "secret", value: { cid: v.source.cid, keyRef: v.source.keyRef } },
      });
  }
}

/** The wire form of a valid pod whose secrets are uploaded; throws WireError otherwise. */
export function podToWire(pod: Pod): pb.Pod {
  const issues = validatePod(pod);
  if (issues.length) throw new WireError(issues);
  return create(pb.PodSchema, {
    name: pod.name,
    containers: pod.containers.map(containerToWire),
    volumes: pod.volumes.map(volumeToWire),
    replicas: { min: pod.replicas.min, max: pod.replicas.max, idleSeconds: pod.replicas.idleSeconds },
  });
}

type Issues = PodIssue[];

function missing(issues: Issues, path: (string | number)[], what: string): void {
  issues.push({ path, code: "MISSING_KEY", message: `${what} is missing` });
}

function imageFromWire(msg: pb.ImageRef | undefined, path: (string | number)[], issues: Issues): ImageRef {
  const s = msg?.source;
  switch (s?.case) {
    case "local":
      return { kind: "local", name: s.value };
    case "ipfs": {
      const d = s.value.manifestDigest;
      if (d.length !== 32)
        issues.push({ path: [...path, "digest"], code: "INVALID_VALUE", message: "digest must be 32 bytes" });
      return { kind: "ipfs", cid: s.value.rootCid, digest: `sha256:${bytesToHex(d)}` };
    }
    case "listingId":
      if (!/^(0|[1-9]\d{0,77})$/.test(s.value)) {
        issues.push({
          path: [...path, "listing"],
          code: "INVALID_VALUE",
          message: "listing id must be a decimal integer",
        });
        return { kind: "listing", listingId: 0n };
      }
      return { kind: "listing", listingId: BigInt(s.value) };
    default:
      missing(issues, path, "image");
      return { kind: "local", name: "" };
  }
}

function containerFromWire(c: pb.Container, path: (string | number)[], issues: Issues): Container {
  const out: Container = {
    name: c.name,
    image: imageFromWire(c.image, [...path, "image"], issues),
    command: [...c.command],
    args: [...c.args],
    env: c.env.map((e, j): EnvVar => {
      if (e.source.case === "secret") return { name: e.name, kind: "secret", secret: e.source.value };
      if (e.source.case !== "value") missing(issues, [...path, "env", j], "value");
      return { name: e.name, kind: "value", value: e.source.value ?? "" };
    }),
    ports: c.ports.map((p, j): Port => {
      if (p.protocol.case === "http") {
        const h = p.protocol.value.hostname;
        return {
          ...(p.name ? { name: p.name } : {}),
          containerPort: p.containerPort,
          protocol: "http",
          ...(h ? { hostname: h } : {}),
        };
      }
      if (p.protocol.case === "udp")
        return { ...(p.name ? { name: p.name } : {}), containerPort: p.containerPort, protocol: "udp" };
      if (p.protocol.case !== "tcp") missing(issues, [...path, "ports", j], "protocol (http, tcp or udp)");
      return { ...(p.name ? { name: p.name } : {}), containerPort: p.containerPort, protocol: "tcp" };
    }),
    volumeMounts: c.volumeMounts.map((m) => ({ name: m.name, mountPath: m.mountPath, readOnly: m.readOnly })),
    resources: {
      cpuMillis: c.resources?.cpuMillis ?? 0n,
      memoryBytes: c.resources?.memoryBytes ?? 0n,
      storageBytes: c.resources?.storageBytes ?? 0n,
      gpu: c.resources?.gpuCount ?? 0n,
    },
  };
  if (!c.resources) missing(issues, [...path, "resources"], "resources");
  if (c.workingDir !== "") out.workingDir = c.workingDir;
  const h = c.healthCheck;
  if (h) {
    const p = h.probe;
    if (p.case === undefined) missing(issues, [...path, "healthCheck"], "probe (http or exec)");
    out.healthCheck = {
      probe:
        p.case === "http"
          ? { kind: "http", path: p.value.path, port: p.value.port }
          : { kind: "exec", command: p.case === "exec" ? [...p.value.command] : [] },
      intervalMs: h.intervalMs,
      timeoutMs: h.timeoutMs,
      retries: h.retries,
      startPeriodMs: h.startPeriodMs,
    };
  }
  return out;
}

function volumeFromWire(v: pb.Volume, path: (string | number)[], issues: Issues): Volume {
  switch (v.kind.case) {
    case "persistent":
      return { name: v.name, kind: "persistent", sizeBytes: v.kind.value.sizeBytes };
    case "secret":
      return {
        name: v.name,
        kind: "secret",
        source: { kind: "ipfs", cid: v.kind.value.cid, keyRef: v.kind.value.keyRef },
      };
    case "emptyDir":
      return { name: v.name, kind: "emptyDir" };
    default:
      missing(issues, path, "volume kind (emptyDir, persistent or secret)");
      return { name: v.name, kind: "emptyDir" };
  }
}

/** The typed pod of a wire message, validated like a manifest; throws WireError listing every problem. */
export function podFromWire(msg: pb.Pod): Pod {
  const issues: Issues = [];
  if (!msg.replicas) missing(issues, ["spec", "replicas"], "replicas");
  const pod: Pod = {
    name: msg.name,
    containers: msg.containers.map((c, i) => containerFromWire(c, ["spec", "containers", i], issues)),
    volumes: msg.volumes.map((v, i) => volumeFromWire(v, ["spec", "volumes", i], issues)),
    // A missing replicas message is reported once; the placeholder keeps the replica checks quiet.
    replicas: msg.replicas
      ? { min: msg.replicas.min, max: msg.replicas.max, idleSeconds: msg.replicas.idleSeconds }
      : { min: 1, max: 1, idleSeconds: 0n },
  };
  issues.push(...validatePod(pod));
  if (issues.length) throw new WireError(issues);
  return pod;
}
