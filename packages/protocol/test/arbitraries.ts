/** fast-check generators for valid pods: every generated pod passes validatePod. */
import fc from "fast-check";
import type { Container, EnvVar, HealthCheck, ImageRef, Pod, Port, Volume } from "../src/pod.js";

const label = fc.stringMatching(/^[a-z]([-a-z0-9]{0,10}[a-z0-9])?$/);
const hostname = fc.tuple(label, label).map(([a, b]) => `${a}.${b}.example`);
const text = fc.string({ maxLength: 20, unit: "grapheme" }).filter((s) => !s.includes("\0"));
const absPath = fc.array(label, { minLength: 1, maxLength: 3 }).map((p) => `/${p.join("/")}`);
const cid = fc.stringMatching(/^[a-z2-7]{58}$/).map((s) => `b${s}`);
const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);

const image: fc.Arbitrary<ImageRef> = fc.oneof(
  fc
    .tuple(label, fc.option(label, { nil: undefined }))
    .map(([n, t]): ImageRef => ({ kind: "local", name: t ? `${n}:${t}` : n })),
  fc
    .record({ cid, hex: hex64 })
    .map(({ cid, hex }): ImageRef => ({ kind: "ipfs", cid, digest: `sha256:${hex}` })),
  fc
    .bigInt({ min: 0n, max: (1n << 256n) - 1n })
    .map((listingId): ImageRef => ({ kind: "listing", listingId })),
);

const healthCheck: fc.Arbitrary<HealthCheck> = fc.record({
  probe: fc.oneof(
    fc.record({
      kind: fc.constant("http" as const),
      path: absPath,
      port: fc.integer({ min: 1, max: 65535 }),
    }),
    fc.record({
      kind: fc.constant("exec" as const),
      command: fc.array(text, { minLength: 1, maxLength: 3 }),
    }),
  ),
  intervalMs: fc.bigInt({ min: 1n, max: 86_400_000n }),
  timeoutMs: fc.bigInt({ min: 1n, max: 86_400_000n }),
  retries: fc.integer({ min: 1, max: 100 }),
  startPeriodMs: fc.bigInt({ min: 0n, max: 86_400_000n }),
});

const port = fc.record(
  {
    name: label,
    containerPort: fc.integer({ min: 1, max: 65535 }),
    protocol: fc.constantFrom("http" as const, "tcp" as const),
    hostname,
  },
  { requiredKeys: ["containerPort", "protocol"] },
);

const volume = fc.oneof(
  fc.constant({ kind: "emptyDir" as const }),
  fc.bigInt({ min: 1n, max: 1n << 40n }).map((sizeBytes) => ({ kind: "persistent" as const, sizeBytes })),
  fc
    .oneof(
      fc.stringMatching(/^[a-z0-9./_-]{1,20}$/).map((path) => ({ kind: "file" as const, path })),
      fc.record({
        kind: fc.constant("ipfs" as const),
        cid,
        keyRef: fc.stringMatching(/^[\x21-\x7e]{1,20}$/),
      }),
    )
    .map((source) => ({ kind: "secret" as const, source })),
);

const containerDraft = fc.record(
  {
    image,
    command: fc.array(text, { maxLength: 3 }),
    args: fc.array(text, { maxLength: 3 }),
    workingDir: absPath,
    env: fc.array(
      fc.record({
        name: fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/),
        value: text,
        secretIndex: fc.option(fc.nat(), { nil: undefined }),
      }),
      { maxLength: 4 },
    ),
    ports: fc.array(port, { maxLength: 3 }),
    mounts: fc.array(fc.record({ volumeIndex: fc.nat(), mountPath: absPath, readOnly: fc.boolean() }), {
      maxLength: 3,
    }),
    resources: fc.record({
      cpuMillis: fc.bigInt({ min: 1n, max: 1_024_000n }),
      memoryBytes: fc.bigInt({ min: 1n << 20n, max: 16n << 40n }),
      storageBytes: fc.bigInt({ min: 0n, max: 1n << 50n }),
      gpu: fc.bigInt({ min: 0n, max: 64n }),
    }),
    healthCheck,
  },
  { requiredKeys: ["image", "command", "args", "env", "ports", "mounts", "resources"] },
);

/** Builds a pod from drafts, dropping what would break pod-wide rules (duplicates, dangling references). */
function assemble(
  name: string,
  names: string[],
  drafts: Draft[],
  volumeDrafts: DistributiveOmit<Volume, "name">[],
  replicas: { min: number; max: number; idleSeconds: bigint },
): Pod {
  const volumes = volumeDrafts.map((v, i) => ({ ...v, name: `vol-${i}` }) as Volume);
  const secrets = volumes.filter((v) => v.kind === "secret").map((v) => v.name);
  const usedPorts = new Set<number>();
  const usedPortNames = new Set<string>();
  const usedHosts = new Set<string>();
  const containers = drafts.map((d, i) =>
    buildContainer(names[i]!, d, volumes, secrets, { usedPorts, usedPortNames, usedHosts }),
  );
  const hasHttp = containers.some((c) => c.ports.some((p) => p.protocol === "http"));
  const r = hasHttp
    ? replicas
    : { min: Math.max(1, replicas.min), max: Math.max(1, replicas.min, replicas.max), idleSeconds: 0n };
  const fixed = r.min === 0 ? r : { ...r, idleSeconds: 0n };
  return { name, containers, volumes, replicas: fixed };
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

type Draft = {
  image: ImageRef;
  command: string[];
  args: string[];
  workingDir?: string;
  env: { name: string; value: string; secretIndex?: number }[];
  ports: Port[];
  mounts: { volumeIndex: number; mountPath: string; readOnly: boolean }[];
  resources: Container["resources"];
  healthCheck?: HealthCheck;
};

function buildContainer(
  name: string,
  d: Draft,
  volumes: Volume[],
  secrets: string[],
  used: { usedPorts: Set<number>; usedPortNames: Set<string>; usedHosts: Set<string> },
): Container {
  const envNames = new Set<string>();
  const env: EnvVar[] = [];
  for (const e of d.env) {
    if (envNames.has(e.name)) continue;
    envNames.add(e.name);
    if (e.secretIndex !== undefined && secrets.length) {
      env.push({ name: e.name, kind: "secret", secret: secrets[e.secretIndex % secrets.length]! });
    } else env.push({ name: e.name, kind: "value", value: e.value });
  }
  const ports: Port[] = [];
  for (const p of d.ports) {
    if (used.usedPorts.has(p.containerPort)) continue;
    used.usedPorts.add(p.containerPort);
    const port: Port = { containerPort: p.containerPort, protocol: p.protocol };
    if (p.name !== undefined && !used.usedPortNames.has(p.name)) {
      used.usedPortNames.add(p.name);
      port.name = p.name;
    }
    if (p.protocol === "http" && p.hostname !== undefined && !used.usedHosts.has(p.hostname)) {
      used.usedHosts.add(p.hostname);
      port.hostname = p.hostname;
    }
    ports.push(port);
  }
  const mountPaths = new Set<string>();
  const volumeMounts = volumes.length
    ? d.mounts
        .filter((m) => !mountPaths.has(m.mountPath) && mountPaths.add(m.mountPath))
        .map((m) => ({
          name: volumes[m.volumeIndex % volumes.length]!.name,
          mountPath: m.mountPath,
          readOnly: m.readOnly,
        }))
    : [];
  const c: Container = {
    name,
    image: d.image,
    command: d.command,
    args: d.args,
    env,
    ports,
    volumeMounts,
    resources: d.resources,
  };
  if (d.workingDir !== undefined) c.workingDir = d.workingDir;
  if (d.healthCheck) c.healthCheck = d.healthCheck;
  return c;
}

/** Arbitrary valid pods; `uploaded` restricts secrets to IPFS ones (what the wire carries). */
export function validPod(options: { uploaded?: boolean } = {}): fc.Arbitrary<Pod> {
  const vol = options.uploaded
    ? volume.filter((v) => v.kind !== "secret" || v.source.kind === "ipfs")
    : volume;
  return fc
    .record({
      name: label,
      names: fc.uniqueArray(label, { minLength: 1, maxLength: 3 }),
      drafts: fc.array(containerDraft, { minLength: 3, maxLength: 3 }),
      volumes: fc.array(vol, { maxLength: 4 }),
      replicas: fc.record({
        min: fc.integer({ min: 0, max: 5 }),
        max: fc.integer({ min: 5, max: 100 }),
        idleSeconds: fc.bigInt({ min: 1n, max: 30n * 86_400n }),
      }),
    })
    .map(({ name, names, drafts, volumes, replicas }) =>
      assemble(name, names, drafts.slice(0, names.length), volumes, replicas),
    );
}
