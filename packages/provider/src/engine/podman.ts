import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import Docker from "dockerode";
import { EngineError, engineReason } from "./errors.js";
import { HostFirewall } from "./firewall.js";
import { prepareImageArchive } from "./image-archive.js";
import { LogDemuxer, mergeAsync } from "./logstream.js";
import { ensurePauseImage, PAUSE_ENTRYPOINT } from "./pause-image.js";
import { type PodmanService, pingSocket, startPodmanService } from "./podman-service.js";
import { SecretStore } from "./secrets.js";
import type {
  ContainerSpec,
  ContainerState,
  ContainerStats,
  ContainerStatus,
  Engine,
  HealthCheckSpec,
  HealthState,
  ImageSource,
  LoadedImage,
  LogLine,
  LogOptions,
  ManagedPod,
  PodSpec,
  PodStats,
  PodStatus,
  PortProtocol,
  PublishedPort,
  RemoveOptions,
} from "./types.js";
import { assertPodId, validatePodSpec } from "./validate.js";

export const LABEL = {
  managed: "io.trustedpods.managed",
  owner: "io.trustedpods.owner",
  pod: "io.trustedpods.pod",
  container: "io.trustedpods.container",
  /** The pod's infra container: holds the network namespace its containers share. */
  infra: "io.trustedpods.infra",
  volume: "io.trustedpods.volume",
  volumeKind: "io.trustedpods.volume-kind",
  volumeSize: "io.trustedpods.volume-size",
  specHash: "io.trustedpods.spec-hash",
  protocols: "io.trustedpods.port-protocols",
  user: "io.trustedpods.user.",
} as const;

export interface PodmanEngineOptions {
  /** Docker-compatible API socket. When absent or unreachable, the engine starts `podman system service`. */
  socketPath?: string;
  /** Private directory for the service socket and image staging (disk). */
  runDir: string;
  /** tmpfs directory for secret volumes (default /dev/shm/tpod-secrets-<owner>). */
  secretsDir?: string;
  /** Separates engines sharing one Podman (tests, several daemons): only pods with this owner are ours. */
  owner?: string;
  /** Drop traffic from pod networks to the host's own addresses (iptables; needs root). Default: true as root. */
  hostFirewall?: boolean;
  /** Default host address for published ports. */
  publishHostIp?: string;
  /** Seconds a container gets between SIGTERM and SIGKILL on stop. */
  stopTimeoutSeconds?: number;
  /** catatonit binary for the infra (pause) image; default: where Debian's catatonit package puts it. */
  pauseBinary?: string;
}

interface HealthTracker {
  state: HealthState;
  failures: number;
  startedAt: number;
  timer: NodeJS.Timeout | null;
  running: boolean;
}

const NANO_PER_MILLICORE = 1_000_000;
/**
 * The smallest CPU limit a container gets: the kernel refuses a CFS quota under 1 ms, and NanoCpus uses a 100 ms
 * period, so less than 10m would fail the create. Smaller requests are raised to it, as Kubernetes does (its
 * kubelet's minimum quota); a longer period would keep 1m exact but leaves runc's own start-up and every request
 * 1 ms of CPU per second (a 1m busybox pod took ~45 s to start that way). Pricing still charges what was asked.
 */
export const MIN_CPU_MILLIS = 10;

function cpuLimit(cpuMillis: number): { NanoCpus: number } {
  return { NanoCpus: Math.max(MIN_CPU_MILLIS, cpuMillis) * NANO_PER_MILLICORE };
}
/** The PATH a container gets when neither its image nor its spec sets one (Podman's default). */
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** catatonit in pause mode needs well under a MiB; Podman refuses limits under 6 MiB. */
const INFRA_MEMORY_BYTES = 16 * 1024 * 1024;

function hashOf(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 32);
}

/** A network in libpod's own API (lower-case fields). */
interface LibpodNetwork {
  name: string;
  network_interface?: string;
  labels?: Record<string, string>;
}

function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

async function ignore404<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (statusCode(err) === 404) return undefined;
    // Podman 4.3 answers 500 "image not known" instead of 404 when an image vanished under a concurrent removal.
    if (statusCode(err) === 500 && /image not known/.test(String(err))) return undefined;
    throw err;
  }
}

/** A Docker-API failure as an EngineError that names what failed (a container, the pod's network). */
function failed(what: string, err: unknown): EngineError {
  if (err instanceof EngineError) return err;
  return new EngineError("ENGINE_FAILURE", `${what}: ${engineReason(err)}`, { cause: err });
}

function toState(s: string | undefined): ContainerState {
  switch (s) {
    case "created":
    case "running":
    case "paused":
    case "restarting":
    case "exited":
    case "dead":
      return s;
    case "configured":
    case "initialized":
      return "created";
    case "stopped":
    case "stopping":
      return "exited";
    default:
      return "exited";
  }
}

function parseDate(s: string | undefined): Date | null {
  if (!s || s.startsWith("0001-")) return null;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

async function drain(stream: Readable): Promise<string> {
  let out = "";
  for await (const c of stream) out += c.toString();
  return out;
}

/** What Podman's Docker-compatible stats endpoint returns, as far as we read it. */
interface RawStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }>;
}

/** Podman through its Docker-compatible API (works with Docker too, minus `isolate`). */
export class PodmanEngine implements Engine {
  readonly kind = "podman";
  readonly docker: Docker;
  readonly owner: string;
  readonly secrets: SecretStore;
  readonly firewall: HostFirewall | null;
  private readonly health = new Map<string, Map<string, HealthTracker>>();
  private readonly healthSpecs = new Map<string, Map<string, HealthCheckSpec>>();
  private closed = false;
  private pauseRef: Promise<string> | null = null;
  private readonly locks = new Map<string, Promise<void>>();

  private constructor(
    docker: Docker,
    private readonly options: PodmanEngineOptions,
    private readonly service: PodmanService | null,
    secrets: SecretStore,
  ) {
    this.docker = docker;
    this.owner = options.owner ?? "default";
    this.secrets = secrets;
    const wantFirewall = options.hostFirewall ?? process.getuid?.() === 0;
    this.firewall = wantFirewall ? new HostFirewall() : null;
  }

  static async open(options: PodmanEngineOptions): Promise<PodmanEngine> {
    if (options.owner !== undefined && !/^[a-z0-9][a-z0-9-]{0,30}$/.test(options.owner)) {
      throw new EngineError("INVALID_SPEC", `invalid owner ${options.owner}`);
    }
    await mkdir(options.runDir, { recursive: true, mode: 0o700 });
    const secrets = new SecretStore(
      options.secretsDir ?? path.join("/dev/shm", `tpod-secrets-${options.owner ?? "default"}`),
    );
    await secrets.init();
    let service: PodmanService | null = null;
    let socketPath = options.socketPath;
    if (!socketPath || !(await pingSocket(socketPath))) {
      service = await startPodmanService(options.runDir);
      socketPath = service.socketPath;
    }
    const docker = new Docker({ socketPath });
    return new PodmanEngine(docker, options, service, secrets);
  }

  /** Socket actually in use (ours when we started the service). */
  get socketPath(): string {
    return (this.docker.modem as unknown as { socketPath: string }).socketPath;
  }

  networkName(podId: string): string {
    return `tpod-${podId}`;
  }

  containerName(podId: string, container: string): string {
    return `tpod-${podId}-${container}`;
  }

  /** `_` appears in no pod id or container name: no container of any pod can take this name. */
  infraName(podId: string): string {
    return `tpod-${podId}_infra`;
  }

  volumeName(podId: string, volume: string): string {
    return `tpod-${podId}-${volume}`;
  }

  imageRepo(podId: string, container: string): string {
    return `localhost/tpod-${podId}/${container}`;
  }

  private baseLabels(podId: string): Record<string, string> {
    return { [LABEL.managed]: "true", [LABEL.owner]: this.owner, [LABEL.pod]: podId };
  }

  /**
   * Podman 4.3's compat API ORs several label filters (seen here with volumes): the server-side filter only
   * narrows the listing, this decides what is ours.
   */
  private isOurs(labels: Record<string, string> | undefined | null, podId?: string): boolean {
    if (!labels || labels[LABEL.owner] !== this.owner || labels[LABEL.managed] !== "true") return false;
    return podId === undefined || labels[LABEL.pod] === podId;
  }

  private podFilter(podId?: string): string {
    return JSON.stringify({
      label: [
        `${LABEL.owner}=${this.owner}`,
        ...(podId ? [`${LABEL.pod}=${podId}`] : [`${LABEL.managed}=true`]),
      ],
    });
  }

  // ---------------------------------------------------------------- network

  private async ensureNetwork(podId: string): Promise<void> {
    const name = this.networkName(podId);
    let existing = await this.libpodNetwork(name);
    if (!existing) {
      try {
        // libpod's create, not Docker's: the compat API turns DNS on for every network it creates.
        await this.libpodPost("/v4.0.0/libpod/networks/create", {
          name,
          driver: "bridge",
          // netavark: no forwarding between this bridge and other isolated bridges.
          options: { isolate: "true" },
          labels: this.baseLabels(podId),
          // The pod's containers share the infra's namespace and find each other through its /etc/hosts. A DNS
          // server per network (dnsname's dnsmasq, aardvark) would cost a process and one of the host's inotify
          // instances (128 by default) per pod: pods past about 120 could not start (bench/scale).
          dns_enabled: false,
        });
      } catch (err) {
        if (statusCode(err) !== 409) throw err;
      }
      if (this.firewall) existing = await this.libpodNetwork(name);
    }
    if (this.firewall) {
      const bridge = existing?.network_interface;
      if (!bridge) throw new EngineError("ENGINE_FAILURE", `no bridge for network ${name}`);
      await this.firewall.allowPod(podId, bridge);
    }
  }

  /**
   * A network as libpod reports it (with its bridge, `network_interface`), undefined when there is none. Not the
   * Docker-compatible inspect or list: those walk every container for each network, and took 9.6 s (inspect) and
   * 82-102 s (list) with 55 pods in bench/scale, where libpod answers in 0.3-0.7 s.
   */
  private libpodNetwork(name: string): Promise<LibpodNetwork | undefined> {
    return ignore404(this.libpod<LibpodNetwork>(`/v4.0.0/libpod/networks/${encodeURIComponent(name)}/json`));
  }

  /** Networks with all of the labels of `filters` (a Docker filter JSON), through libpod (see libpodNetwork). */
  private libpodNetworks(filters: string): Promise<LibpodNetwork[]> {
    return this.libpod<LibpodNetwork[]>(
      `/v4.0.0/libpod/networks/json?filters=${encodeURIComponent(filters)}`,
    );
  }

  private libpod<T>(pathname: string): Promise<T> {
    return new Promise((resolve, reject) => {
      this.docker.modem.dial(
        { path: pathname, method: "GET", statusCodes: { 200: true, 404: "not found", 500: "server error" } },
        (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as T)),
      );
    });
  }

  private libpodPost(pathname: string, body: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.docker.modem.dial(
        {
          path: pathname,
          method: "POST",
          options: { _body: body },
          statusCodes: { 200: true, 201: true, 400: "bad parameter", 409: "conflict", 500: "server error" },
        },
        (err: unknown, data: unknown) => (err ? reject(err) : resolve(data)),
      );
    });
  }

  // ---------------------------------------------------------------- apply

  /**
   * Operations on one pod run one after another: an apply racing a remove would otherwise leave half a pod
   * (the daemon may get a delete while a provision is still loading). Different pods run in parallel.
   */
  private locked<T>(podId: string, op: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(podId) ?? Promise.resolve();
    const run = prev.then(op, op);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(podId, tail);
    void tail.then(() => {
      if (this.locks.get(podId) === tail) this.locks.delete(podId);
    });
    return run;
  }

  async apply(spec: PodSpec): Promise<PodStatus> {
    validatePodSpec(spec);
    return this.locked(spec.podId, () => this.applyLocked(spec));
  }

  async start(podId: string): Promise<void> {
    assertPodId(podId);
    return this.locked(podId, () => this.startLocked(podId));
  }

  async stop(podId: string): Promise<void> {
    assertPodId(podId);
    return this.locked(podId, () => this.stopLocked(podId));
  }

  async remove(podId: string, options: RemoveOptions = {}): Promise<void> {
    assertPodId(podId);
    return this.locked(podId, () => this.removeLocked(podId, options));
  }

  private pauseImage(): Promise<string> {
    if (!this.pauseRef) {
      this.pauseRef = ensurePauseImage(this.docker, this.options.pauseBinary);
      this.pauseRef.catch(() => {
        this.pauseRef = null;
      });
    }
    return this.pauseRef;
  }

  private async applyLocked(spec: PodSpec): Promise<PodStatus> {
    const podId = spec.podId;
    this.stopHealth(podId);
    await this.ensureNetwork(podId);
    const pauseImage = await this.pauseImage();

    // Secret volumes first: containers bind-mount their directories.
    const secretHashes = new Map<string, string>();
    for (const v of spec.volumes ?? []) {
      if (v.kind !== "secret") continue;
      await this.secrets.write(podId, v.name, v.files);
      const h = createHash("sha256");
      for (const [n, b] of Object.entries(v.files).sort(([a], [b]) => a.localeCompare(b)))
        h.update(n).update(b);
      secretHashes.set(v.name, h.digest("hex"));
    }

    const desired = new Map(spec.containers.map((c) => [c.name, c]));
    const hashes = new Map(
      spec.containers.map((c) => [
        c.name,
        hashOf({
          // The host port asked for is left out: the daemon asks again for the one a container already has, and
          // hasHostPorts() below replaces a container whose ports differ from those asked for.
          c: {
            ...c,
            ports: c.ports?.map(({ hostPort, ...p }) => ({ ...p, published: hostPort !== undefined })),
          },
          restart: spec.restart ?? null,
          labels: spec.labels ?? null,
          // A changed secret or a changed volume kind means a new container (bind mounts pin directories).
          vols: (c.mounts ?? []).map((m) => {
            const v = spec.volumes?.find((x) => x.name === m.volume);
            return [m.volume, v?.kind, secretHashes.get(m.volume) ?? null];
          }),
        }),
      ]),
    );

    // The infra holds the namespace, the published ports and the /etc/hosts names: a change to any of them
    // means a new infra, and every container joined to the old one goes with it. Otherwise it stays, and so do
    // the pod's address and its published host ports.
    // The host port asked for is left out of the hash: the daemon asks again for the one the pod already has
    // (tcp endpoints keep their ports across updates), and hasHostPorts() replaces an infra whose ports differ.
    const infraHash = hashOf({
      pauseImage,
      ports: spec.containers.flatMap((c) =>
        (c.ports ?? []).map(({ hostPort, ...p }) => ({ ...p, published: hostPort !== undefined })),
      ),
      names: spec.containers.map((c) => c.name).sort(),
    });
    let infra = await this.infraContainer(podId);
    const infraChanged =
      infra?.Labels[LABEL.specHash] !== infraHash || !(await this.hasHostPorts(infra.Id, spec));

    // Replace containers whose spec changed, remove those no longer wanted.
    const existing = await this.podContainers(podId);
    const keep = new Set<string>();
    for (const info of existing) {
      const name = info.Labels[LABEL.container] ?? "";
      if (!infraChanged && desired.has(name) && info.Labels[LABEL.specHash] === hashes.get(name)) {
        keep.add(name);
        continue;
      }
      await this.docker.getContainer(info.Id).remove({ force: true });
    }
    if (infra && infraChanged) {
      await ignore404(this.docker.getContainer(infra.Id).remove({ force: true }));
      infra = undefined;
    }
    const infraId = infra?.Id ?? (await this.createInfra(spec, pauseImage, infraHash));

    // emptyDir volumes live as long as the containers using them: recreate them when anything is recreated.
    const recreating = spec.containers.some((c) => !keep.has(c.name));
    for (const v of spec.volumes ?? []) {
      if (v.kind === "secret") continue;
      const name = this.volumeName(podId, v.name);
      const usedByKept = spec.containers.some(
        (c) => keep.has(c.name) && c.mounts?.some((m) => m.volume === v.name),
      );
      if (v.kind === "emptyDir" && recreating && !usedByKept) {
        await ignore404(this.docker.getVolume(name).remove());
      }
      const have = await ignore404(this.docker.getVolume(name).inspect());
      if (!have) {
        await this.docker.createVolume({
          Name: name,
          Labels: {
            ...this.baseLabels(podId),
            [LABEL.volume]: v.name,
            [LABEL.volumeKind]: v.kind,
            ...(v.kind === "persistent" ? { [LABEL.volumeSize]: String(v.sizeBytes) } : {}),
          },
        });
      }
    }

    for (const c of spec.containers) {
      if (keep.has(c.name)) continue;
      const id = await this.createContainer(spec, c, hashes.get(c.name)!, infraId);
      await this.checkCommand(c, id);
    }
    this.healthSpecs.set(
      podId,
      new Map(spec.containers.filter((c) => c.healthCheck).map((c) => [c.name, c.healthCheck!])),
    );
    // The network and its firewall rules were ensured at the top of this apply: not again (the rules check
    // lists the host's whole chains, which grow with every pod).
    await this.startLocked(podId, { networkReady: true });
    return this.status(podId);
  }

  /** Whether the infra publishes every port on the host port the spec asks for (0 asks for none in particular). */
  private async hasHostPorts(id: string, spec: PodSpec): Promise<boolean> {
    const asked = spec.containers.flatMap((c) => c.ports ?? []).filter((p) => p.hostPort);
    if (asked.length === 0) return true;
    const bindings =
      (await ignore404(this.docker.getContainer(id).inspect()))?.HostConfig?.PortBindings ?? {};
    return asked.every((p) =>
      (bindings[dockerPortKey(p)] as { HostPort?: string }[] | undefined)?.some(
        (b) => Number(b.HostPort) === p.hostPort,
      ),
    );
  }

  /** Every container's ports, published on the infra (the namespace's owner), in Docker's two shapes. */
  private portBindings(spec: PodSpec): {
    exposed: Record<string, object>;
    bindings: Record<string, { HostIp: string; HostPort: string }[]>;
  } {
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const c of spec.containers) {
      for (const p of c.ports ?? []) {
        const key = dockerPortKey(p);
        exposed[key] = {};
        if (p.hostPort !== undefined) {
          const ip = p.hostIp ?? this.options.publishHostIp ?? "";
          // Through the compat API netavark 1.4 takes "0.0.0.0" literally (a DNAT rule for destination
          // 0.0.0.0/32 that never matches); the empty address means all addresses.
          bindings[key] = [{ HostIp: ip === "0.0.0.0" ? "" : ip, HostPort: String(p.hostPort) }];
        }
      }
    }
    return { exposed, bindings };
  }

  /**
   * The pod's infra container: catatonit in pause mode on the pod's network. Its namespace is the pod's (one
   * address, every container on localhost), it publishes the pod's ports, and its /etc/hosts, which the
   * joined containers share, maps every container name to 127.0.0.1: names work without any DNS plugin.
   */
  private async createInfra(spec: PodSpec, image: string, specHash: string): Promise<string> {
    const podId = spec.podId;
    const net = this.networkName(podId);
    const { exposed, bindings } = this.portBindings(spec);
    const created = await this.docker
      .createContainer({
        name: this.infraName(podId),
        Image: image,
        Entrypoint: PAUSE_ENTRYPOINT,
        Cmd: [],
        ExposedPorts: exposed,
        Labels: { ...this.baseLabels(podId), [LABEL.infra]: "true", [LABEL.specHash]: specHash },
        StopTimeout: 1,
        HostConfig: {
          NanoCpus: 100 * NANO_PER_MILLICORE,
          Memory: INFRA_MEMORY_BYTES,
          MemorySwap: INFRA_MEMORY_BYTES,
          PidsLimit: 8,
          PortBindings: bindings,
          NetworkMode: net,
          ExtraHosts: spec.containers.map((c) => `${c.name}:127.0.0.1`),
          ReadonlyRootfs: true,
          CapDrop: ["ALL"],
          SecurityOpt: ["no-new-privileges"],
          RestartPolicy: { Name: "no" },
        },
      })
      .catch((err: unknown) => {
        throw failed("the pod's network namespace", err);
      });
    return created.id;
  }

  private async createContainer(
    spec: PodSpec,
    c: ContainerSpec,
    specHash: string,
    infraId: string,
  ): Promise<string> {
    const podId = spec.podId;
    const binds: string[] = [];
    for (const m of c.mounts ?? []) {
      const v = spec.volumes!.find((x) => x.name === m.volume)!;
      const source =
        v.kind === "secret" ? this.secrets.volumeDir(podId, v.name) : this.volumeName(podId, v.name);
      // Secrets are always read-only in the container.
      const ro = m.readOnly || v.kind === "secret";
      binds.push(`${source}:${m.path}:${ro ? "ro" : "rw"}`);
    }
    const protocols: Record<string, PortProtocol> = {};
    for (const p of c.ports ?? []) protocols[protocolLabelKey(p.containerPort, p.protocol)] = p.protocol;
    const restart = spec.restart ?? { mode: "on-failure", maxRetries: 5 };
    const userLabels = Object.fromEntries(
      Object.entries(spec.labels ?? {}).map(([k, v]) => [`${LABEL.user}${k}`, v]),
    );
    const r = c.resources;
    const container = await this.docker
      .createContainer({
        name: this.containerName(podId, c.name),
        Hostname: c.name,
        Image: c.image,
        ...(c.command ? { Entrypoint: c.command } : {}),
        ...(c.args ? { Cmd: c.args } : {}),
        Env: Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${v}`),
        ...(c.workingDir ? { WorkingDir: c.workingDir } : {}),
        Labels: {
          ...userLabels,
          ...this.baseLabels(podId),
          [LABEL.container]: c.name,
          [LABEL.specHash]: specHash,
          [LABEL.protocols]: JSON.stringify(protocols),
        },
        StopTimeout: this.options.stopTimeoutSeconds ?? 10,
        HostConfig: {
          // An init as PID 1 forwards SIGTERM: a shell or busybox httpd as PID 1 ignores it and stop waits 10 s.
          Init: true,
          ...cpuLimit(r.cpuMillis),
          Memory: r.memoryBytes,
          MemorySwap: r.memoryBytes,
          PidsLimit: r.pids,
          Binds: binds,
          // The infra's namespace: its address, its published ports, its /etc/hosts.
          NetworkMode: `container:${infraId}`,
          RestartPolicy:
            restart.mode === "never"
              ? { Name: "no" }
              : restart.mode === "always"
                ? { Name: "always" }
                : { Name: "on-failure", MaximumRetryCount: restart.maxRetries ?? 5 },
          SecurityOpt: ["no-new-privileges"],
        },
      })
      .catch((err: unknown) => {
        throw failed(`container ${c.name} could not be created`, err);
      });
    return container.id;
  }

  /**
   * A command that is not in the image fails only after the start, inside the container (the init runs, then
   * cannot exec it) and says just "No such file or directory": look for it first, as the runtime would (PATH
   * for a bare name), so the publisher learns which command is missing.
   */
  private async checkCommand(c: ContainerSpec, id: string): Promise<void> {
    const image = (await this.docker.getImage(c.image).inspect()).Config ?? {};
    const entrypoint = c.command ?? image.Entrypoint ?? [];
    const cmd = c.args ?? (c.command ? [] : (image.Cmd ?? []));
    const argv0 = entrypoint[0] ?? cmd[0];
    if (!argv0)
      throw new EngineError("INVALID_SPEC", `container ${c.name}: no command, and its image has none`);
    const envPath = (env: string[] | undefined) => env?.find((e) => e.startsWith("PATH="))?.slice(5);
    const searchPath = c.env?.PATH ?? envPath(image.Env) ?? DEFAULT_PATH;
    const workDir = c.workingDir ?? (image.WorkingDir || "/");
    const candidates = argv0.includes("/")
      ? [path.posix.resolve(workDir, argv0)]
      : searchPath
          .split(":")
          .filter((d) => d.startsWith("/"))
          .map((d) => path.posix.join(d, argv0));
    for (const file of candidates) {
      const st = await this.pathStat(id, file);
      if (!st) continue;
      if (st.isDir || (st.mode & 0o111) === 0)
        throw new EngineError(
          "ENGINE_FAILURE",
          `container ${c.name}: its command ${file} is not an executable file`,
        );
      return;
    }
    throw new EngineError(
      "ENGINE_FAILURE",
      argv0.includes("/")
        ? `container ${c.name}: its command ${argv0} does not exist in the image`
        : `container ${c.name}: its command ${argv0} is not in the image's PATH (${searchPath})`,
    );
  }

  /** What the container's filesystem has at `file` (a created container is enough), or null. */
  private async pathStat(id: string, file: string): Promise<{ mode: number; isDir: boolean } | null> {
    let res: Readable | undefined;
    try {
      res = (await this.docker.getContainer(id).infoArchive({ path: file })) as unknown as Readable;
      const header = (res as unknown as { headers: Record<string, string | undefined> }).headers[
        "x-docker-container-path-stat"
      ];
      if (!header) return { mode: 0o755, isDir: false };
      const st = JSON.parse(Buffer.from(header, "base64").toString("utf8")) as {
        mode?: number;
        isDir?: boolean;
      };
      return { mode: st.mode ?? 0, isDir: st.isDir === true };
    } catch (err) {
      if (statusCode(err) === 404) return null;
      throw failed(`cannot look into container ${id.slice(0, 12)}`, err);
    } finally {
      res?.destroy();
    }
  }

  // ---------------------------------------------------------------- lifecycle

  /** The pod's own containers, without its infra. */
  private async podContainers(podId: string): Promise<Docker.ContainerInfo[]> {
    const list = await this.docker.listContainers({ all: true, filters: this.podFilter(podId) });
    return list.filter((c) => this.isOurs(c.Labels, podId) && c.Labels[LABEL.infra] !== "true");
  }

  private async infraContainer(podId: string): Promise<Docker.ContainerInfo | undefined> {
    const list = await this.docker.listContainers({
      all: true,
      filters: JSON.stringify({ name: [this.infraName(podId)] }),
    });
    // The name filter matches substrings: only the exact name, with our labels, is the infra.
    return list.find(
      (c) =>
        this.isOurs(c.Labels, podId) &&
        c.Labels[LABEL.infra] === "true" &&
        c.Names.some((n) => n.replace(/^\//, "") === this.infraName(podId)),
    );
  }

  /**
   * Starts the infra when it is not running. A new namespace comes with it: containers still running in the
   * old one (the infra was killed) are stopped so that starting them joins the new one. Says whether it did.
   */
  private async ensureInfraRunning(podId: string, list: Docker.ContainerInfo[]): Promise<boolean> {
    const infra = await this.infraContainer(podId);
    if (!infra || infra.State === "running") return false;
    await Promise.all(
      list
        .filter((i) => i.State === "running")
        .map((i) =>
          this.docker
            .getContainer(i.Id)
            .stop({ t: this.options.stopTimeoutSeconds ?? 10 })
            .catch((err: unknown) => {
              if (statusCode(err) !== 304 && statusCode(err) !== 404) throw err;
            }),
        ),
    );
    try {
      await this.docker.getContainer(infra.Id).start();
    } catch (err) {
      if (statusCode(err) !== 304) throw failed("the pod's network namespace could not start", err);
    }
    return true;
  }

  private async startLocked(podId: string, opts: { networkReady?: boolean } = {}): Promise<void> {
    let list = await this.podContainers(podId);
    if (list.length === 0) throw new EngineError("NOT_FOUND", `pod ${podId} has no containers`);
    // After a host reboot the tmpfs is empty: the daemon must apply() again with the decrypted secrets.
    for (const info of list) {
      for (const m of info.Mounts ?? []) {
        if (
          m.Source?.startsWith(this.secrets.root + path.sep) &&
          !(await this.secrets.has(podId, path.basename(m.Source)))
        ) {
          throw new EngineError(
            "SECRETS_MISSING",
            `pod ${podId}: secret volume missing, apply the pod again`,
          );
        }
      }
    }
    if (!opts.networkReady) await this.ensureNetwork(podId);
    if (await this.ensureInfraRunning(podId, list)) list = await this.podContainers(podId);
    for (const info of list) {
      if (info.State === "running") continue;
      try {
        await this.docker.getContainer(info.Id).start();
      } catch (err) {
        if (statusCode(err) !== 304)
          throw failed(`container ${info.Labels[LABEL.container] ?? info.Id} could not start`, err);
      }
    }
    this.startHealth(podId, list);
  }

  // The infra keeps running: a stopped pod keeps its address and published ports, and a wake (scale to zero)
  // does not pay for a new namespace. It runs nothing of the tenant's (catatonit only).
  private async stopLocked(podId: string): Promise<void> {
    this.stopHealth(podId);
    const list = await this.podContainers(podId);
    await Promise.all(
      list.map(async (info) => {
        try {
          await this.docker.getContainer(info.Id).stop({ t: this.options.stopTimeoutSeconds ?? 10 });
        } catch (err) {
          if (statusCode(err) !== 304 && statusCode(err) !== 404) throw err;
        }
      }),
    );
  }

  private async removeLocked(podId: string, options: RemoveOptions): Promise<void> {
    this.stopHealth(podId);
    this.healthSpecs.delete(podId);
    for (const info of await this.podContainers(podId)) {
      await ignore404(this.docker.getContainer(info.Id).remove({ force: true, v: true }));
    }
    // Last: Podman refuses to remove a container that others still join.
    const infra = await this.infraContainer(podId);
    if (infra) await ignore404(this.docker.getContainer(infra.Id).remove({ force: true }));
    const vols = await this.docker.listVolumes({ filters: this.podFilter(podId) });
    for (const v of vols.Volumes ?? []) {
      if (this.isOurs(v.Labels, podId)) await ignore404(this.docker.getVolume(v.Name).remove());
    }
    const nets = (await this.libpodNetworks(this.podFilter(podId))).map((n) => ({
      Name: n.name,
      Labels: n.labels,
    }));
    for (const n of nets) {
      if (this.isOurs(n.Labels, podId)) await ignore404(this.docker.getNetwork(n.Name).remove());
    }
    await this.secrets.removePod(podId);
    await this.firewall?.removePod(podId);
    if (options.images) {
      for (const ref of await this.podImages(podId)) await this.removeImage(ref);
    }
  }

  // ---------------------------------------------------------------- status

  async status(podId: string): Promise<PodStatus> {
    assertPodId(podId);
    const net = this.networkName(podId);
    const list = await this.podContainers(podId);
    const infra = await this.infraContainer(podId);
    // Without its infra's namespace a container has no address anyone can reach (an infra that was killed).
    const netUp = !infra || infra.State === "running";
    const trackers = this.health.get(podId);
    const containers: ContainerStatus[] = [];
    for (const info of list) {
      const name = info.Labels[LABEL.container] ?? info.Names[0] ?? info.Id;
      const ins = await ignore404(this.docker.getContainer(info.Id).inspect());
      if (!ins) continue;
      const protocols = JSON.parse(info.Labels[LABEL.protocols] ?? "{}") as Record<string, PortProtocol>;
      const ports: PublishedPort[] = [];
      // A joined container reports every port of the namespace: only its own are its.
      for (const [key, binds] of Object.entries(ins.NetworkSettings.Ports ?? {})) {
        const [port = "", transport] = key.split("/");
        const containerPort = Number(port);
        const labelKey = protocolLabelKey(containerPort, transport === "udp" ? "udp" : "tcp");
        if (!(labelKey in protocols)) continue;
        for (const b of binds ?? []) {
          ports.push({
            containerPort,
            protocol: protocols[labelKey] ?? "tcp",
            hostIp: b.HostIp,
            hostPort: Number(b.HostPort),
          });
        }
      }
      const state = toState(ins.State.Status);
      const tracker = trackers?.get(name);
      const hasCheck = this.healthSpecs.get(podId)?.has(name) ?? false;
      const ip = ins.NetworkSettings.Networks?.[net]?.IPAddress || null;
      containers.push({
        name,
        id: ins.Id,
        image: ins.Config.Image,
        state,
        health: !hasCheck ? "none" : state !== "running" ? "unhealthy" : (tracker?.state ?? "starting"),
        exitCode: state === "running" || state === "created" ? null : ins.State.ExitCode,
        restarts: ins.RestartCount ?? 0,
        startedAt: parseDate(ins.State.StartedAt),
        finishedAt: parseDate(ins.State.FinishedAt),
        ip: state === "running" && netUp ? ip : null,
        ports,
      });
    }
    containers.sort((a, b) => a.name.localeCompare(b.name));
    return {
      podId,
      running: netUp && containers.length > 0 && containers.every((c) => c.state === "running"),
      containers,
    };
  }

  // ---------------------------------------------------------------- health

  private startHealth(podId: string, list: Docker.ContainerInfo[]): void {
    const specs = this.healthSpecs.get(podId);
    if (!specs || specs.size === 0 || this.closed) return;
    this.stopHealth(podId);
    const trackers = new Map<string, HealthTracker>();
    this.health.set(podId, trackers);
    for (const info of list) {
      const name = info.Labels[LABEL.container] ?? "";
      const spec = specs.get(name);
      if (!spec) continue;
      const t: HealthTracker = {
        state: "starting",
        failures: 0,
        startedAt: Date.now(),
        timer: null,
        running: true,
      };
      trackers.set(name, t);
      const tick = async () => {
        if (!t.running) return;
        const ok = await this.probe(podId, name, spec);
        if (!t.running) return;
        if (ok) {
          t.failures = 0;
          t.state = "healthy";
        } else if (Date.now() - t.startedAt >= spec.startPeriodMs || t.state === "healthy") {
          t.failures++;
          if (t.failures >= spec.retries) t.state = "unhealthy";
        }
        t.timer = setTimeout(tick, spec.intervalMs);
        t.timer.unref();
      };
      t.timer = setTimeout(tick, Math.min(spec.intervalMs, 200));
      t.timer.unref();
    }
  }

  private stopHealth(podId: string): void {
    const trackers = this.health.get(podId);
    if (!trackers) return;
    for (const t of trackers.values()) {
      t.running = false;
      if (t.timer) clearTimeout(t.timer);
    }
    this.health.delete(podId);
  }

  // Podman runs HEALTHCHECKs from systemd timers, and there is no systemd here (nor in many TEE guests):
  // the engine probes itself. HTTP probes go from the host to the container's address on the pod network.
  private async probe(podId: string, container: string, spec: HealthCheckSpec): Promise<boolean> {
    try {
      const c = this.docker.getContainer(this.containerName(podId, container));
      if (spec.probe.kind === "http") {
        const ins = await c.inspect();
        const ip = ins.NetworkSettings.Networks?.[this.networkName(podId)]?.IPAddress;
        if (!ip || !ins.State.Running) return false;
        const res = await fetch(`http://${ip}:${spec.probe.port}${spec.probe.path}`, {
          signal: AbortSignal.timeout(spec.timeoutMs),
          redirect: "manual",
        });
        await res.body?.cancel();
        return res.status >= 200 && res.status < 400;
      }
      const exec = await c.exec({ Cmd: spec.probe.argv, AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack: true, stdin: false });
      const done = new Promise<void>((resolve) => {
        stream.on("end", resolve);
        stream.on("close", resolve);
        stream.on("error", resolve);
        stream.resume();
      });
      const timedOut = await Promise.race([
        done.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), spec.timeoutMs).unref()),
      ]);
      stream.destroy();
      if (timedOut) return false;
      const info = await exec.inspect();
      return info.ExitCode === 0;
    } catch {
      return false;
    }
  }

  // ---------------------------------------------------------------- logs

  async *logs(podId: string, options: LogOptions = {}): AsyncGenerator<LogLine> {
    assertPodId(podId);
    const list = await this.podContainers(podId);
    const wanted = list.filter((i) => {
      const n = i.Labels[LABEL.container] ?? "";
      return !options.containers || options.containers.includes(n);
    });
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const sources = wanted.map((i) =>
        this.containerLogs(i.Id, i.Labels[LABEL.container] ?? i.Id, options, ac.signal),
      );
      if (options.follow) {
        yield* mergeAsync(sources, ac.signal);
      } else {
        const all: LogLine[] = [];
        for (const s of sources) for await (const l of s) all.push(l);
        all.sort((a, b) => a.time.getTime() - b.time.getTime());
        yield* all;
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      ac.abort();
    }
  }

  private async *containerLogs(
    id: string,
    name: string,
    options: LogOptions,
    signal: AbortSignal,
  ): AsyncGenerator<LogLine> {
    const c = this.docker.getContainer(id);
    const base = {
      stdout: true,
      stderr: true,
      timestamps: true,
      ...(options.since ? { since: Math.floor(options.since.getTime() / 1000) } : {}),
      ...(options.tail !== undefined ? { tail: options.tail } : {}),
    };
    const demux = new LogDemuxer(name);
    if (!options.follow) {
      const buf = (await c.logs({ ...base, follow: false })) as unknown as Buffer;
      yield* demux.push(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)));
      yield* demux.flush();
      return;
    }
    const stream = (await c.logs({ ...base, follow: true })) as unknown as Readable;
    const destroy = () => stream.destroy();
    signal.addEventListener("abort", destroy, { once: true });
    try {
      for await (const chunk of stream) yield* demux.push(chunk as Buffer);
      yield* demux.flush();
    } catch (err) {
      if (!signal.aborted) throw err;
    } finally {
      signal.removeEventListener("abort", destroy);
      stream.destroy();
    }
  }

  // ---------------------------------------------------------------- stats

  async stats(podId: string): Promise<PodStats> {
    assertPodId(podId);
    const list = await this.podContainers(podId);
    const containers: ContainerStats[] = await Promise.all(
      list.map(async (info) => {
        const name = info.Labels[LABEL.container] ?? info.Id;
        const idle = { name, cpuSeconds: 0, memoryBytes: 0, rxBytes: 0, txBytes: 0 };
        if (info.State !== "running") return idle;
        const s = await this.containerStats(info.Id);
        if (!s) return idle;
        let rx = 0;
        let tx = 0;
        for (const n of Object.values(s.networks ?? {})) {
          rx += n.rx_bytes ?? 0;
          tx += n.tx_bytes ?? 0;
        }
        return {
          name,
          // Podman reports cumulative CPU time in nanoseconds, like Docker.
          cpuSeconds: (s.cpu_stats?.cpu_usage?.total_usage ?? 0) / 1e9,
          memoryBytes: s.memory_stats?.usage ?? 0,
          rxBytes: rx,
          txBytes: tx,
        };
      }),
    );
    const sum = (f: (c: ContainerStats) => number) => containers.reduce((a, c) => a + f(c), 0);
    return {
      podId,
      time: new Date(),
      containers,
      cpuSeconds: sum((c) => c.cpuSeconds),
      memoryBytes: sum((c) => c.memoryBytes),
      // Every container of the pod reports the counters of the one namespace they share: counted once.
      rxBytes: Math.max(0, ...containers.map((c) => c.rxBytes)),
      txBytes: Math.max(0, ...containers.map((c) => c.txBytes)),
    };
  }

  /**
   * One container's stats, or null when it stopped meanwhile. Podman answers 500 ("read /proc/N/cgroup: no such
   * process") when a process it is reading exits under it (a restart, a finished health check exec): asked
   * again, it either reads the new state or says the container is not running.
   */
  private async containerStats(id: string): Promise<RawStats | null> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.docker.getContainer(id).stats({ stream: false })) as unknown as RawStats;
      } catch (err) {
        const msg = String((err as Error)?.message ?? err);
        if (!/no such process|no such container|not running|is stopped/i.test(msg) || attempt >= 2) throw err;
        const st = await this.docker
          .getContainer(id)
          .inspect()
          .catch(() => null);
        if (!st?.State?.Running) return null;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  // ---------------------------------------------------------------- images

  async loadImage(podId: string, container: string, source: ImageSource): Promise<LoadedImage> {
    assertPodId(podId);
    if (!/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(container)) {
      throw new EngineError("INVALID_SPEC", `invalid container name ${container}`);
    }
    const refFor = (digest: string) => `${this.imageRepo(podId, container)}:${digest.slice(7, 19)}`;
    const prepared = await prepareImageArchive(source, path.join(this.options.runDir, "images"), refFor);
    try {
      const ref = refFor(prepared.configDigest);
      const res = (await this.docker.loadImage(createReadStream(prepared.tarPath))) as unknown as Readable;
      const body = await drain(res);
      const loaded = [...body.matchAll(/Loaded image(?:\(s\))?: ([^\s"\\]+)/g)].map((m) => m[1]);
      if (!loaded.includes(ref)) {
        throw new EngineError("IMAGE_LOAD_FAILED", `engine did not load ${ref}: ${body.slice(0, 500)}`);
      }
      const ins = await this.docker.getImage(ref).inspect();
      return { ref, id: ins.Id.startsWith("sha256:") ? ins.Id : `sha256:${ins.Id}` };
    } catch (err) {
      if (err instanceof EngineError) throw err;
      throw new EngineError("IMAGE_LOAD_FAILED", `image load failed: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      await prepared.cleanup();
    }
  }

  async removeImage(ref: string): Promise<void> {
    // Removing by name only drops that name while another name (another pod) still uses the image.
    await ignore404(this.docker.getImage(ref).remove({ noprune: false }));
  }

  private async podImages(podId: string, tags?: string[]): Promise<string[]> {
    const prefix = `localhost/tpod-${podId}/`;
    return (tags ?? (await this.imageTags())).filter((t) => t.startsWith(prefix));
  }

  /**
   * Every image tag in the store. Podman 4.3 answers a listing with a 500 "image not known" when another client
   * removes an image while it lists (seen here when pods are deleted concurrently): list again, a few times.
   */
  private async imageTags(): Promise<string[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        const images = await this.docker.listImages({ all: false });
        return images.flatMap((i) => i.RepoTags ?? []);
      } catch (err) {
        const vanished = statusCode(err) === 500 && /image not known/.test(String(err));
        if (!vanished || attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  }

  // ---------------------------------------------------------------- reconciliation

  async listPods(): Promise<ManagedPod[]> {
    const pods = new Map<string, ManagedPod>();
    const get = (id: string) => {
      let p = pods.get(id);
      if (!p) {
        p = { podId: id, containers: [], networks: [], volumes: [], images: [] };
        pods.set(id, p);
      }
      return p;
    };
    const filters = this.podFilter();
    // One listing answers for every pod what status() asks Podman per pod: its infra runs (or it has none) and
    // every container of it runs.
    const up = new Map<string, { infra: boolean | undefined; all: boolean }>();
    for (const c of await this.docker.listContainers({ all: true, filters })) {
      const id = c.Labels[LABEL.pod];
      if (!id || !this.isOurs(c.Labels)) continue;
      const pod = get(id);
      const u = up.get(id) ?? { infra: undefined, all: true };
      up.set(id, u);
      const running = c.State === "running";
      if (c.Labels[LABEL.infra] !== "true") {
        pod.containers.push(c.Labels[LABEL.container] ?? c.Id);
        u.all &&= running;
      } else if (c.Names.some((n) => n.replace(/^\//, "") === this.infraName(id))) u.infra = running;
    }
    for (const p of pods.values()) {
      const u = up.get(p.podId);
      p.running = !!u && p.containers.length > 0 && u.all && u.infra !== false;
    }
    for (const n of await this.libpodNetworks(filters)) {
      const id = n.labels?.[LABEL.pod];
      if (id && this.isOurs(n.labels)) get(id).networks.push(n.name);
    }
    for (const v of (await this.docker.listVolumes({ filters })).Volumes ?? []) {
      const id = v.Labels?.[LABEL.pod];
      if (id && this.isOurs(v.Labels)) get(id).volumes.push(v.Name);
    }
    // Images carry no labels of ours (they come from the tenant): only pods known by other objects are listed.
    const tags = pods.size > 0 ? await this.imageTags() : [];
    for (const p of pods.values()) p.images = await this.podImages(p.podId, tags);
    return [...pods.values()].sort((a, b) => a.podId.localeCompare(b.podId));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const podId of [...this.health.keys()]) this.stopHealth(podId);
    await this.service?.stop();
    await this.secrets.close();
  }
}

export function defaultRunDir(): string {
  return path.join(os.tmpdir(), `tpod-engine-${process.pid}`);
}

/** Docker's key of a published port: "PORT/tcp" or "PORT/udp" (http ports are tcp). */
function dockerPortKey(p: { containerPort: number; protocol: PortProtocol }): string {
  return `${p.containerPort}/${p.protocol === "udp" ? "udp" : "tcp"}`;
}

/**
 * The key of a port in a container's protocols label: the bare number for tcp and http (as labels written before
 * udp existed have it), "PORT/udp" for udp, so one number can be published on both transports.
 */
function protocolLabelKey(containerPort: number, protocol: PortProtocol): string {
  return protocol === "udp" ? `${containerPort}/udp` : String(containerPort);
}
