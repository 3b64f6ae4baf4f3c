// Crash recovery with the real command: `tpod provider serve` runs as a child process (its own podman service,
// Helia node and SQLite), is stopped cleanly once, then killed with SIGKILL in the middle of a provision. The
// next start rolls the half-done provision back, keeps the running pod running, removes an orphan pod that the
// state does not know, and leaves nothing behind. Needs the built CLI (npm run build).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { multiaddr } from "@multiformats/multiaddr";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import type { IpfsNode } from "@trustedpods/ipfs";
import { RpcError } from "@trustedpods/p2p";
import {
  PodPhase,
  ProvisionRequestSchema,
  ProvisionResponseSchema,
  StatusRequestSchema,
  StatusResponseSchema,
} from "@trustedpods/protocol";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PodmanEngine } from "../src/engine/podman.js";
import { enginePodId } from "../src/provision/translate.js";
import { StateDb } from "../src/state/db.js";
import {
  buildBusyboxLayout,
  container,
  haveTools,
  httpGet,
  Publisher,
  type PushedImage,
  pod,
  podToWire,
  providerConfigYaml,
  pushLayout,
  randomPodId,
  startPublisherIpfs,
  waitFor,
} from "./daemon-helpers.js";

const run = promisify(execFile);
const bin = path.resolve(import.meta.dirname, "../../cli/bin/tpod");
const built = existsSync(path.resolve(import.meta.dirname, "../../cli/dist/main.js"));
const enabled = haveTools && built;
if (!enabled)
  console.warn("SKIP daemon-recovery.test.ts: needs podman, buildah, busybox-static and npm run build");

const uid = randomBytes(4).toString("hex");
const owner = `r${uid}`;
let tmp: string;
let cfgFile: string;
let dataDir: string;
let chain: DevChain;
let pubIpfs: IpfsNode;
let image: PushedImage;
let child: ChildProcess | undefined;

interface Ready {
  peerId: string;
  multiaddrs: string[];
  provider: `0x${string}`;
  chainId: number;
  metricsUrl: string;
}

async function serve(env: Record<string, string> = {}): Promise<{ proc: ChildProcess; ready: Ready }> {
  const proc = spawn(
    bin,
    ["provider", "serve", "--config", cfgFile, "--json", "--insecure-allow-all-payments"],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  child = proc;
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const ready = await new Promise<Ready>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve(JSON.parse(line) as Ready);
    });
    proc.once("exit", (code) => reject(new Error(`tpod provider serve exited ${code}: ${err}`)));
  });
  return { proc, ready };
}

function exited(proc: ChildProcess): Promise<number | null> {
  return proc.exitCode !== null || proc.signalCode !== null
    ? Promise.resolve(proc.exitCode)
    : new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
}

async function publisher(ready: Ready): Promise<Publisher> {
  return Publisher.create(
    privateKeyToAccount(chain.accounts[2]!.privateKey),
    ready.multiaddrs.map((a) => multiaddr(a)),
    ready.provider,
    ready.chainId,
  );
}

function provisionCall(pub: Publisher, podId: Hex, name: string) {
  const p = pod(
    name,
    [
      container("web", image, {
        command: ["sh", "-c", "exec httpd -f -p 8080 -h /www"],
        ports: [{ containerPort: 8080, protocol: "tcp" }],
        volumeMounts: [{ name: "data", mountPath: "/www/data", readOnly: false }],
      }),
    ],
    [{ name: "data", kind: "persistent", sizeBytes: 8n << 20n }],
  );
  return pub.call(
    "provision",
    ProvisionRequestSchema,
    { podId: Buffer.from(podId.slice(2), "hex"), pod: podToWire(p) },
    ProvisionResponseSchema,
    podId,
  );
}

async function podmanNames(kind: "ps" | "volume" | "network" | "images"): Promise<string> {
  const args = {
    ps: ["ps", "-a", "--format", "{{.Names}}"],
    volume: ["volume", "ls", "-q"],
    network: ["network", "ls", "--format", "{{.Name}}"],
    images: ["images", "--format", "{{.Repository}}"],
  }[kind];
  return (await run("podman", args)).stdout;
}

async function servicesOnOurSocket(): Promise<number[]> {
  const sock = `unix://${path.join(dataDir, "engine", "podman.sock")}`;
  const pids: number[] = [];
  for (const e of await readdir("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const argv = await readFile(`/proc/${e}/cmdline`, "utf8").then(
      (t) => t.split("\0"),
      (): string[] => [],
    );
    if (argv.includes(sock)) pids.push(Number(e));
  }
  return pids;
}

beforeAll(async () => {
  if (!enabled) return;
  tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-recovery-"));
  dataDir = path.join(tmp, "data");
  [chain, pubIpfs] = await Promise.all([startDevChain(), startPublisherIpfs(path.join(tmp, "pub-ipfs"))]);
  image = await pushLayout(
    pubIpfs,
    await buildBusyboxLayout(tmp, `localhost/tpod-recoverytest-${uid}:latest`, "recovered\n"),
  );
  const keyFile = path.join(tmp, "account.key");
  await writeFile(keyFile, `${chain.accounts[1]!.privateKey}\n`, { mode: 0o600 });
  cfgFile = path.join(tmp, "provider.yaml");
  await writeFile(
    cfgFile,
    providerConfigYaml({ dataDir, chain, accountKeyFile: keyFile, owner, ipfsPeers: pubIpfs.multiaddrs() }),
  );
}, 180_000);

afterAll(async () => {
  if (!enabled) return;
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill("SIGTERM");
    await exited(child);
  }
  for (const pid of await servicesOnOurSocket()) process.kill(pid, "SIGTERM");
  // Everything of this owner (the pod kept running on purpose): containers, networks, volumes and images.
  const engine = await PodmanEngine.open({ runDir: path.join(tmp, "cleanup"), owner, hostFirewall: false });
  for (const p of await engine.listPods()) await engine.remove(p.podId).catch(() => {});
  await engine.close();
  await pubIpfs?.stop();
  await chain?.stop();
  await rm(tmp, { recursive: true, force: true });
  // The engine's tmpfs secrets root for this owner (empty by now).
  await rm(`/dev/shm/tpod-secrets-${owner}`, { recursive: true, force: true });
}, 120_000);

describe.skipIf(!enabled)("daemon crash recovery", () => {
  it("survives kill -9 mid-provision: rolls back, keeps running pods, removes orphans, leaks nothing", async () => {
    // 1. A pod that must survive everything.
    let { proc, ready } = await serve();
    let pub = await publisher(ready);
    const keepId = randomPodId();
    const kept = await provisionCall(pub, keepId, "keep");
    const keepAddr = kept.endpoints[0]!.target.value as string;
    expect(await waitFor("keep", async () => (await httpGet(`http://${keepAddr}/`)).body)).toBe(
      "recovered\n",
    );
    const keepEngineId = enginePodId(pub.account.address, keepId);
    const keepContainer = (
      await run("podman", ["inspect", "--format", "{{.Id}}", `tpod-${keepEngineId}-web`])
    ).stdout.trim();
    await pub.stop();

    // 2. SIGTERM stops cleanly (exit 0) and the pod keeps running without the daemon.
    proc.kill("SIGTERM");
    expect(await exited(proc)).toBe(0);
    expect((await httpGet(`http://${keepAddr}/`)).body).toBe("recovered\n");

    // 3. An orphan: a pod of this daemon's owner that its state never heard of.
    const stray = await PodmanEngine.open({ runDir: path.join(tmp, "stray"), owner, hostFirewall: false });
    const orphanId = `orphan${uid}`;
    const layoutImg = await stray.loadImage(orphanId, "web", {
      kind: "oci-layout",
      dir: await firstLayout(),
    });
    await stray.apply({
      podId: orphanId,
      containers: [
        {
          name: "web",
          image: layoutImg.ref,
          command: ["sleep", "600"],
          resources: { cpuMillis: 100, memoryBytes: 16 << 20, pids: 32 },
        },
      ],
    });
    await stray.close();

    // 4. Kill -9 while a provision holds after starting its containers (test hook), before it is recorded done.
    ({ proc, ready } = await serve({ TPOD_PROVIDER_TEST_HOLD_PROVISION_MS: "120000" }));
    pub = await publisher(ready);
    const halfId = randomPodId();
    const halfEngineId = enginePodId(pub.account.address, halfId);
    const pending = provisionCall(pub, halfId, "half").catch((e: unknown) => e);
    await waitFor(
      "half-provisioned containers",
      async () => (await podmanNames("ps")).includes(`tpod-${halfEngineId}-web`),
      60_000,
    );
    proc.kill("SIGKILL");
    await exited(proc);
    expect(await pending).toBeInstanceOf(RpcError);
    await pub.stop();
    // The killed daemon's podman service dies with it (setpriv --pdeathsig)...
    await waitFor(
      "the killed daemon's podman service to exit",
      async () => (await servicesOnOurSocket()).length === 0,
      15_000,
    );
    // ...but where setpriv is missing one is left behind on the socket: leave one, as such a crash would.
    const leftover = spawn(
      "podman",
      ["system", "service", "--time=0", `unix://${path.join(dataDir, "engine", "podman.sock")}`],
      { stdio: "ignore", detached: true },
    );
    leftover.unref();
    await waitFor(
      "the leftover podman service",
      async () => (await servicesOnOurSocket()).length === 1,
      15_000,
    );

    // 5. Restart: recovery runs before the node listens.
    ({ proc, ready } = await serve());
    pub = await publisher(ready);
    // The half-done provision is rolled back: no container, network, volume or image of it remains.
    for (const kind of ["ps", "volume", "network", "images"] as const)
      expect(await podmanNames(kind)).not.toContain(halfEngineId);
    const half = await pub.call(
      "status",
      StatusRequestSchema,
      { podId: Buffer.from(halfId.slice(2), "hex") },
      StatusResponseSchema,
      halfId,
    );
    expect(half.phase).toBe(PodPhase.FAILED);
    expect(half.message).toContain("interrupted");
    // The orphan is gone.
    expect(await podmanNames("ps")).not.toContain(orphanId);
    expect(await podmanNames("network")).not.toContain(orphanId);
    // The running pod kept running: same container, still serving.
    const keep = await pub.call(
      "status",
      StatusRequestSchema,
      { podId: Buffer.from(keepId.slice(2), "hex") },
      StatusResponseSchema,
      keepId,
    );
    expect(keep.phase).toBe(PodPhase.RUNNING);
    expect(
      (await run("podman", ["inspect", "--format", "{{.Id}}", `tpod-${keepEngineId}-web`])).stdout.trim(),
    ).toBe(keepContainer);
    expect((await httpGet(`http://${keepAddr}/`)).body).toBe("recovered\n");
    // Exactly one podman service on our socket: the leftover one was stopped.
    expect(await servicesOnOurSocket()).toHaveLength(1);
    expect(await servicesOnOurSocket()).not.toContain(leftover.pid);
    await pub.stop();
    proc.kill("SIGTERM");
    expect(await exited(proc)).toBe(0);

    // The journal says what happened.
    const state = StateDb.open(dataDir);
    try {
      expect(state.operations(halfEngineId).map((o) => `${o.kind}:${o.status}`)).toEqual([
        "provision:failed",
      ]);
      expect(state.operations(keepEngineId).map((o) => `${o.kind}:${o.status}`)).toEqual(["provision:done"]);
      expect(state.pendingOperations()).toEqual([]);
    } finally {
      state.close();
    }
  }, 300_000);
});

async function firstLayout(): Promise<string> {
  const entries = await readdir(tmp);
  const dir = entries.find((e) => e.startsWith("layout-"));
  if (!dir) throw new Error("no layout");
  return path.join(tmp, dir);
}
