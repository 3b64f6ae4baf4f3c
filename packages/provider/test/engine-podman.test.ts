// Real Podman: every test here runs containers. Images are built locally with buildah from scratch plus the
// static busybox binary, loaded through the engine (which names them per pod), and shared across tests.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EngineError,
  isTmpfs,
  type LoadedImage,
  type LogLine,
  PodmanEngine,
  type PodSpec,
} from "../src/index.js";

const run = promisify(execFile);
const haveTools = ["/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox"].every((p) => existsSync(p));
const uid = randomBytes(4).toString("hex");
const owner = `t${uid}`;
const baseImage = `localhost/tpod-enginetest-${uid}:base`;
const otherImage = `localhost/tpod-enginetest-${uid}:other`;
const pid = (name: string) => `${name}-${uid}`;
const res = { cpuMillis: 500, memoryBytes: 64 * 1024 * 1024, pids: 64 };

let engine: PodmanEngine;
let tmp: string;
let busybox: LoadedImage;
const podsCreated = new Set<string>();

async function buildImage(tag: string, extraFile?: string): Promise<void> {
  const { stdout } = await run("buildah", ["from", "scratch"]);
  const ctr = stdout.trim();
  try {
    await run("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await run("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    if (extraFile) {
      const f = path.join(tmp, "extra");
      await writeFile(f, extraFile);
      await run("buildah", ["copy", ctr, f, "/extra"]);
    }
    await run("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await run("buildah", ["commit", "-q", ctr, tag]);
  } finally {
    await run("buildah", ["rm", ctr]).catch(() => {});
  }
}

async function exec(podId: string, container: string, cmd: string[]): Promise<{ code: number; out: string }> {
  const c = engine.docker.getContainer(engine.containerName(podId, container));
  const e = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  let raw = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    stream.on("data", (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
    });
    stream.on("end", resolve);
    stream.on("close", resolve);
  });
  // Demultiplex: 8-byte header frames.
  let out = "";
  let off = 0;
  while (off + 8 <= raw.length) {
    const size = raw.readUInt32BE(off + 4);
    out += raw.subarray(off + 8, off + 8 + size).toString();
    off += 8 + size;
  }
  const info = await e.inspect();
  return { code: info.ExitCode ?? -1, out };
}

/** HTTP GET from inside a container with busybox nc (busybox wget crashes in these static images). */
function httpFrom(podId: string, container: string, host: string, port: number) {
  return exec(podId, container, [
    "sh",
    "-c",
    `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${port}`,
  ]);
}

async function apply(spec: PodSpec) {
  podsCreated.add(spec.podId);
  return engine.apply(spec);
}

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

function httpdPod(podId: string, extra: Partial<PodSpec> = {}): PodSpec {
  return {
    podId,
    containers: [
      {
        name: "web",
        image: busybox.ref,
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"],
        ports: [{ containerPort: 8080, protocol: "http", hostPort: 0, hostIp: "127.0.0.1" }],
        mounts: [{ volume: "www", path: "/www" }],
        resources: res,
      },
    ],
    volumes: [{ name: "www", kind: "persistent", sizeBytes: 10 * 1024 * 1024 }],
    ...extra,
  };
}

const sleeper = (name: string) => ({
  name,
  image: busybox.ref,
  command: ["sleep", "3600"],
  resources: res,
});

describe.skipIf(!haveTools)("PodmanEngine with real Podman", () => {
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-engine-test-"));
    await buildImage(baseImage);
    const archive = path.join(tmp, "busybox.tar");
    await run("podman", ["save", "-q", "-o", archive, baseImage]);
    engine = await PodmanEngine.open({
      runDir: path.join(tmp, "run"),
      secretsDir: `/dev/shm/tpod-test-${uid}`,
      owner,
      hostFirewall: true,
    });
    // One image for all pods in this file: loaded once under a pod-unique name of a shared pseudo-pod.
    busybox = await engine.loadImage(pid("shared"), "busybox", { kind: "archive", path: archive });
  }, 120_000);

  afterAll(async () => {
    if (engine) {
      for (const p of await engine.listPods()) await engine.remove(p.podId, { images: true }).catch(() => {});
      for (const p of podsCreated) await engine.remove(p, { images: true }).catch(() => {});
      await engine.removeImage(busybox?.ref ?? "none").catch(() => {});
      await engine.close();
    }
    await run("podman", ["rmi", "-f", baseImage, otherImage]).catch(() => {});
    await rm(tmp, { recursive: true, force: true });
    await rm(`/dev/shm/tpod-test-${uid}`, { recursive: true, force: true });
  }, 120_000);

  it("loads images under names unique to the pod, whatever name the archive carries", async () => {
    expect(busybox.ref).toMatch(new RegExp(`^localhost/tpod-shared-${uid}/busybox:[0-9a-f]{12}$`));
    // An OCI layout loads the same way.
    const layout = path.join(tmp, "oci");
    await run("buildah", ["push", "-q", baseImage, `oci:${layout}:whatever`]);
    const fromLayout = await engine.loadImage(pid("imgs"), "web", { kind: "oci-layout", dir: layout });
    expect(fromLayout.ref.startsWith(`localhost/tpod-imgs-${uid}/web:`)).toBe(true);
    expect(fromLayout.id).toBe(busybox.id);

    // A hostile archive named after another pod's image must not take that name over.
    await buildImage(otherImage, "evil");
    const evil = path.join(tmp, "evil.tar");
    await run("podman", ["tag", otherImage, fromLayout.ref]);
    await run("podman", ["save", "-q", "-o", evil, fromLayout.ref]);
    await run("podman", ["tag", busybox.id.replace(/^sha256:/, ""), fromLayout.ref]); // give the victim its name back
    const attacker = await engine.loadImage(pid("attacker"), "web", { kind: "archive", path: evil });
    expect(attacker.ref.startsWith(`localhost/tpod-attacker-${uid}/web:`)).toBe(true);
    expect(attacker.id).not.toBe(busybox.id);
    const victim = await engine.docker.getImage(fromLayout.ref).inspect();
    expect(`sha256:${victim.Id.replace(/^sha256:/, "")}`).toBe(busybox.id);

    await engine.removeImage(fromLayout.ref);
    await engine.removeImage(attacker.ref);
    await expect(engine.docker.getImage(fromLayout.ref).inspect()).rejects.toThrow();
    // The shared image is still there: removing one pod's name does not remove another's.
    await engine.docker.getImage(busybox.ref).inspect();
    await expect(
      engine.loadImage(pid("x"), "web", { kind: "archive", path: path.join(tmp, "nope.tar") }),
    ).rejects.toBeInstanceOf(EngineError);
  }, 60_000);

  it("serves a busybox httpd on its published host port, reports health and limits", async () => {
    const podId = pid("web");
    const spec = httpdPod(podId);
    spec.containers[0]!.healthCheck = {
      probe: { kind: "http", path: "/", port: 8080 },
      intervalMs: 300,
      timeoutMs: 1000,
      retries: 2,
      startPeriodMs: 0,
    };
    const st = await apply(spec);
    expect(st.running).toBe(true);
    const web = st.containers[0]!;
    expect(web.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const port = web.ports.find((p) => p.containerPort === 8080)!;
    expect(port.protocol).toBe("http");
    expect(port.hostPort).toBeGreaterThan(0);
    await exec(podId, "web", ["sh", "-c", "echo hello-tpod > /www/index.html"]);
    const body = await waitFor("httpd", async () => {
      const r = await fetch(`http://127.0.0.1:${port.hostPort}/`).catch(() => undefined);
      return r?.ok ? r.text() : undefined;
    });
    expect(body).toBe("hello-tpod\n");
    const healthy = await waitFor("healthy", async () => {
      const s = await engine.status(podId);
      return s.containers[0]!.health === "healthy" ? s : undefined;
    });
    expect(healthy.containers[0]!.health).toBe("healthy");

    // Limits: as the engine reports them and as the kernel enforces them.
    const ins = await engine.docker.getContainer(web.id).inspect();
    expect(ins.HostConfig.NanoCpus).toBe(500_000_000);
    expect(ins.HostConfig.Memory).toBe(64 * 1024 * 1024);
    expect(ins.HostConfig.PidsLimit).toBe(64);
    expect(ins.HostConfig.Init).toBe(true);
    const cg = "/sys/fs/cgroup";
    const memFile = `${cg}/memory/libpod_parent/libpod-${web.id}/memory.limit_in_bytes`;
    if (existsSync(memFile)) {
      expect(Number((await readFile(memFile, "utf8")).trim())).toBe(64 * 1024 * 1024);
      const pidsMax = await readFile(`${cg}/pids/libpod_parent/libpod-${web.id}/pids.max`, "utf8");
      expect(pidsMax.trim()).toBe("64");
      const quota = await readFile(`${cg}/cpu/libpod_parent/libpod-${web.id}/cpu.cfs_quota_us`, "utf8");
      const period = await readFile(`${cg}/cpu/libpod_parent/libpod-${web.id}/cpu.cfs_period_us`, "utf8");
      expect(Number(quota) / Number(period)).toBeCloseTo(0.5, 2);
    } else {
      console.warn(`cgroup v1 files not found at ${memFile}: checked inspect only`);
    }
  }, 60_000);

  it("lets containers of a pod reach each other on localhost and by name; pods and the host stay out of reach", async () => {
    const a = pid("neta");
    const b = pid("netb");
    const two = (podId: string): PodSpec => ({
      podId,
      containers: [
        {
          name: "web",
          image: busybox.ref,
          command: ["httpd", "-f", "-p", "8080", "-h", "/"],
          ports: [{ containerPort: 8080, protocol: "tcp", hostPort: 0, hostIp: "0.0.0.0" }],
          resources: res,
        },
        sleeper("client"),
      ],
    });
    const [sa, sb] = await Promise.all([apply(two(a)), apply(two(b))]);
    const ok = await waitFor("by-name", async () => {
      const r = await httpFrom(a, "client", "web", 8080);
      return r.out.startsWith("HTTP/1.") ? r : undefined;
    });
    expect(ok.out).toMatch(/^HTTP\/1\.[01] /);
    // One network namespace: localhost works too, and both containers have the pod's one address.
    expect((await httpFrom(a, "client", "127.0.0.1", 8080)).out).toMatch(/^HTTP\/1\.[01] /);
    expect((await exec(a, "client", ["cat", "/etc/hosts"])).out).toMatch(/^127\.0\.0\.1\s+web$/m);
    // Names come from the infra's /etc/hosts, so the pod's network runs no DNS server: with one (a dnsmasq per
    // network, each holding one of the host's 128 inotify instances) pods past about 120 could not start.
    const netName = engine.networkName(a);
    expect(
      (await run("podman", ["network", "inspect", netName, "--format", "{{.DNSEnabled}}"])).stdout.trim(),
    ).toBe("false");
    const dnsmasq = await run("pgrep", ["-f", `dnsname/${netName}/`]).catch(() => ({ stdout: "" }));
    expect(dnsmasq.stdout.trim()).toBe("");
    expect(sa.containers.find((c) => c.name === "client")!.ip).toBe(
      sa.containers.find((c) => c.name === "web")!.ip,
    );
    // Only web's port is web's: the client publishes nothing.
    expect(sa.containers.find((c) => c.name === "client")!.ports).toEqual([]);

    const aWebIp = sa.containers.find((c) => c.name === "web")!.ip!;
    expect((await httpFrom(a, "client", aWebIp, 8080)).out).toMatch(/^HTTP\//);
    const cross = await httpFrom(b, "client", aWebIp, 8080);
    expect(cross.out).not.toMatch(/HTTP/); // nc times out: dropped between the pod bridges

    // A server on the host, on all addresses: the pod must not reach it through its gateway address.
    const server = net.createServer((s) => s.end("host-secret\n"));
    await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
    const hostPort = (server.address() as net.AddressInfo).port;
    try {
      const gw = aWebIp.replace(/\.\d+$/, ".1");
      const fromHost = await new Promise<string>((resolve) => {
        const s = net.connect(hostPort, gw, () => undefined);
        let d = "";
        s.on("data", (x) => {
          d += x;
        });
        s.on("close", () => resolve(d));
        s.on("error", () => resolve(""));
      });
      expect(fromHost).toBe("host-secret\n"); // the host itself reaches it: the server works
      const fromPod = await exec(a, "client", ["sh", "-c", `nc -w 2 ${gw} ${hostPort} </dev/null`]);
      expect(fromPod.out).not.toContain("host-secret");
      const rules = await engine.firewall!.rulesFor(a);
      expect(rules).toHaveLength(7);
      // A stop and start (a scale-to-zero wake) keeps exactly the same rules, and pod a stays cut off.
      await engine.stop(a);
      await engine.start(a);
      expect(await engine.firewall!.rulesFor(a)).toEqual(rules);
      const afterWake = await exec(a, "client", ["sh", "-c", `nc -w 2 ${gw} ${hostPort} </dev/null`]);
      expect(afterWake.out).not.toContain("host-secret");

      // Pod b's port published on every host address: the host reaches it, pod a does not (DNAT, then dropped).
      const bPort = sb.containers.find((c) => c.name === "web")!.ports[0]!.hostPort;
      const viaHost = await waitFor("published", async () => {
        const r = await fetch(`http://127.0.0.1:${bPort}/`, { signal: AbortSignal.timeout(2000) }).catch(
          () => undefined,
        );
        return r ? r.status : undefined;
      });
      expect(viaHost).toBe(404); // busybox httpd answers (no index.html): the port works
      // Both containers report the counters of the one namespace: the pod's traffic is counted once.
      const bStats = await engine.stats(b);
      expect(bStats.containers.map((c) => c.rxBytes > 0)).toEqual([true, true]);
      expect(bStats.rxBytes).toBeLessThan(bStats.containers[0]!.rxBytes + bStats.containers[1]!.rxBytes);
      const hostAddr = Object.values(os.networkInterfaces())
        .flat()
        .find((i) => i && i.family === "IPv4" && !i.internal && !i.address.startsWith("10.89."))?.address;
      for (const addr of [gw, ...(hostAddr ? [hostAddr] : [])]) {
        const r = await httpFrom(a, "client", addr, bPort);
        expect(r.out, `pod a -> ${addr}:${bPort}`).not.toMatch(/HTTP/);
      }
    } finally {
      server.close();
    }
  }, 60_000);

  it("keeps persistent volumes and secrets across apply(), stop and start; remove deletes everything", async () => {
    const podId = pid("vol");
    const secret = `s3cr3t-${uid}-${randomBytes(8).toString("hex")}`;
    const spec = (version: string): PodSpec => ({
      podId,
      containers: [
        {
          ...sleeper("app"),
          env: { VERSION: version },
          mounts: [
            { volume: "data", path: "/data" },
            { volume: "creds", path: "/run/creds" },
          ],
        },
      ],
      volumes: [
        { name: "data", kind: "persistent", sizeBytes: 1 << 20 },
        { name: "creds", kind: "secret", files: { token: new TextEncoder().encode(secret) } },
      ],
    });
    const first = await apply(spec("1"));
    await exec(podId, "app", ["sh", "-c", "echo keep-me > /data/file"]);
    expect((await exec(podId, "app", ["cat", "/run/creds/token"])).out).toBe(secret);
    const mounts = (await exec(podId, "app", ["cat", "/proc/mounts"])).out;
    const credsMount = mounts.split("\n").find((l) => l.split(" ")[1] === "/run/creds");
    expect(credsMount?.split(" ")[2]).toBe("tmpfs");
    expect(credsMount?.split(" ")[3]).toMatch(/^ro[,$]/);
    expect(await isTmpfs(engine.secrets.volumeDir(podId, "creds"))).toBe(true);
    // Nothing of the secret in the container's writable layer on disk.
    const ins = await engine.docker.getContainer(first.containers[0]!.id).inspect();
    const upper = (ins.GraphDriver?.Data as Record<string, string> | undefined)?.UpperDir;
    if (upper) {
      const grep = await run("grep", ["-rl", secret, upper]).catch((e: { code?: number }) => ({
        code: e.code,
      }));
      expect((grep as { code?: number }).code).toBe(1); // 1 = no match
    }
    // Writing into the read-only secret mount fails.
    expect((await exec(podId, "app", ["sh", "-c", "echo x > /run/creds/token"])).code).not.toBe(0);

    const second = await apply(spec("2"));
    expect(second.containers[0]!.id).not.toBe(first.containers[0]!.id);
    expect((await exec(podId, "app", ["cat", "/data/file"])).out).toBe("keep-me\n");
    // Same spec again: nothing is replaced.
    const third = await apply(spec("2"));
    expect(third.containers[0]!.id).toBe(second.containers[0]!.id);

    await engine.stop(podId);
    const stopped = await engine.status(podId);
    expect(stopped.running).toBe(false);
    expect(stopped.containers[0]!.state).toBe("exited");
    await engine.start(podId);
    expect((await exec(podId, "app", ["cat", "/data/file", "/run/creds/token"])).out).toBe(
      `keep-me\n${secret}`,
    );

    // After a reboot the tmpfs is empty: start refuses instead of running without secrets; apply restores.
    await engine.stop(podId);
    await rm(engine.secrets.volumeDir(podId, "creds"), { recursive: true });
    await expect(engine.start(podId)).rejects.toMatchObject({ code: "SECRETS_MISSING" });
    await apply(spec("2"));
    expect((await exec(podId, "app", ["cat", "/data/file", "/run/creds/token"])).out).toBe(
      `keep-me\n${secret}`,
    );

    const listed = (await engine.listPods()).find((p) => p.podId === podId);
    expect(listed?.containers).toEqual(["app"]);
    expect(listed?.networks).toEqual([engine.networkName(podId)]);
    expect(listed?.volumes).toEqual([engine.volumeName(podId, "data")]);

    await engine.remove(podId);
    expect((await engine.listPods()).find((p) => p.podId === podId)).toBeUndefined();
    await expect(engine.docker.getVolume(engine.volumeName(podId, "data")).inspect()).rejects.toThrow();
    await expect(engine.docker.getNetwork(engine.networkName(podId)).inspect()).rejects.toThrow();
    expect(existsSync(engine.secrets.podDir(podId))).toBe(false);
    expect(await engine.firewall!.rulesFor(podId)).toEqual([]);
    await engine.remove(podId); // idempotent
  }, 90_000);

  it("streams logs per container with timestamps, split into stdout and stderr, and follows them", async () => {
    const podId = pid("logs");
    await apply({
      podId,
      containers: [
        {
          ...sleeper("a"),
          command: [
            "sh",
            "-c",
            "echo out-a; echo err-a >&2; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done",
          ],
        },
        { ...sleeper("b"), command: ["sh", "-c", "echo out-b; sleep 3600"] },
      ],
      restart: { mode: "never" },
    });
    const before = Date.now() - 60_000;
    const lines = await waitFor("logs", async () => {
      const all: LogLine[] = [];
      for await (const l of engine.logs(podId)) all.push(l);
      return all.some((l) => l.line === "out-b") && all.some((l) => l.line === "err-a") ? all : undefined;
    });
    expect(lines.find((l) => l.line === "out-a")).toMatchObject({ container: "a", stream: "stdout" });
    expect(lines.find((l) => l.line === "err-a")).toMatchObject({ container: "a", stream: "stderr" });
    expect(lines.find((l) => l.line === "out-b")).toMatchObject({ container: "b", stream: "stdout" });
    for (const l of lines) expect(l.time.getTime()).toBeGreaterThan(before);

    const onlyB: LogLine[] = [];
    for await (const l of engine.logs(podId, { containers: ["b"] })) onlyB.push(l);
    expect(onlyB.every((l) => l.container === "b")).toBe(true);

    const followed: LogLine[] = [];
    const ac = new AbortController();
    const seenTicks = new Set<string>();
    for await (const l of engine.logs(podId, { follow: true, tail: 1, signal: ac.signal })) {
      followed.push(l);
      if (l.line.startsWith("tick-")) seenTicks.add(l.line);
      if (seenTicks.size >= 3) break;
    }
    expect(seenTicks.size).toBe(3);
    const ticks = [...seenTicks].map((t) => Number(t.slice(5)));
    expect(ticks[2]!).toBeGreaterThan(ticks[0]!);
  }, 60_000);

  it("meters CPU, memory and network; restarts on failure; reports exit codes and unhealthy checks", async () => {
    const podId = pid("meter");
    await apply({
      podId,
      containers: [
        {
          ...sleeper("burn"),
          command: ["sh", "-c", "i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); done; echo done; sleep 3600"],
        },
        {
          ...sleeper("sick"),
          healthCheck: {
            probe: { kind: "exec", argv: ["false"] },
            intervalMs: 200,
            timeoutMs: 2000,
            retries: 2,
            startPeriodMs: 0,
          },
        },
        {
          ...sleeper("fine"),
          healthCheck: {
            probe: { kind: "exec", argv: ["true"] },
            intervalMs: 200,
            timeoutMs: 2000,
            retries: 2,
            startPeriodMs: 0,
          },
        },
      ],
    });
    const stats = await waitFor("cpu", async () => {
      const s = await engine.stats(podId);
      return s.containers.find((c) => c.name === "burn")!.cpuSeconds > 0.02 ? s : undefined;
    });
    expect(stats.containers.find((c) => c.name === "burn")!.cpuSeconds).toBeGreaterThan(0.02);
    expect(stats.memoryBytes).toBeGreaterThan(0);
    const st = await waitFor("health", async () => {
      const s = await engine.status(podId);
      const h = Object.fromEntries(s.containers.map((c) => [c.name, c.health]));
      return h.sick === "unhealthy" && h.fine === "healthy" ? s : undefined;
    });
    expect(st.containers.find((c) => c.name === "burn")!.health).toBe("none");

    const crash = pid("crash");
    await apply({
      podId: crash,
      containers: [{ ...sleeper("boom"), command: ["sh", "-c", "echo boom; exit 3"] }],
      restart: { mode: "on-failure", maxRetries: 2 },
    });
    const done = await waitFor(
      "restarts",
      async () => {
        const s = await engine.status(crash);
        const c = s.containers[0]!;
        return c.state === "exited" && c.restarts >= 2 ? c : undefined;
      },
      30_000,
    );
    expect(done.exitCode).toBe(3);
    expect(done.restarts).toBe(2);
    const boomLines: string[] = [];
    for await (const l of engine.logs(crash)) boomLines.push(l.line);
    expect(boomLines.filter((l) => l === "boom").length).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it("keeps the pod's address and ports across an update and a stop; start repairs a killed infra", async () => {
    const podId = pid("infra");
    const spec = (version: string, extra: string[] = []): PodSpec => ({
      podId,
      containers: [
        {
          name: "web",
          image: busybox.ref,
          command: ["httpd", "-f", "-p", "8080", "-h", "/"],
          env: { VERSION: version },
          ports: [{ containerPort: 8080, protocol: "tcp", hostPort: 0, hostIp: "127.0.0.1" }],
          resources: res,
        },
        sleeper("client"),
        ...extra.map((n) => sleeper(n)),
      ],
    });
    const byName = (s: Awaited<ReturnType<typeof engine.status>>, n: string) =>
      s.containers.find((c) => c.name === n)!;
    const first = await apply(spec("1"));
    const port = byName(first, "web").ports[0]!.hostPort;
    const infra = () => engine.docker.getContainer(engine.infraName(podId)).inspect();
    const infraId = (await infra()).Id;
    expect(first.containers.map((c) => c.name)).toEqual(["client", "web"]); // the infra is not a container

    // A changed container is replaced; the namespace, its address and its host port stay.
    const second = await apply(spec("2"));
    expect(byName(second, "web").id).not.toBe(byName(first, "web").id);
    expect(byName(second, "client").id).toBe(byName(first, "client").id);
    expect(byName(second, "web").ports[0]!.hostPort).toBe(port);
    expect(byName(second, "web").ip).toBe(byName(first, "web").ip);
    expect((await infra()).Id).toBe(infraId);
    await waitFor("web by name after update", async () => {
      const r = await httpFrom(podId, "client", "web", 8080);
      return r.out.startsWith("HTTP/1.") ? r : undefined;
    });

    // A stop keeps the infra (address and port held); the start needs no new namespace.
    await engine.stop(podId);
    expect((await engine.status(podId)).running).toBe(false);
    expect((await infra()).State.Running).toBe(true);
    await engine.start(podId);
    const woke = await engine.status(podId);
    expect(byName(woke, "web").ports[0]!.hostPort).toBe(port);
    const viaHost = await waitFor("host port after wake", async () => {
      const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) }).catch(
        () => undefined,
      );
      return r ? r.status : undefined;
    });
    expect(viaHost).toBe(404); // busybox httpd answers (no index.html)

    // A killed infra takes the namespace with it: the pod is not running, and start rebuilds it.
    await engine.docker.getContainer(infraId).kill();
    const broken = await engine.status(podId);
    expect(broken.running).toBe(false);
    expect(byName(broken, "web").ip).toBeNull();
    await engine.start(podId);
    expect((await engine.status(podId)).running).toBe(true);
    await waitFor("web by name after repair", async () => {
      const r = await httpFrom(podId, "client", "web", 8080);
      return r.out.startsWith("HTTP/1.") ? r : undefined;
    });

    // A new container changes the names in /etc/hosts: a new infra, every container joins it.
    const third = await apply(spec("2", ["extra"]));
    expect((await infra()).Id).not.toBe(infraId);
    expect(byName(third, "client").id).not.toBe(byName(second, "client").id);
    await waitFor("web from the new container", async () => {
      const r = await httpFrom(podId, "extra", "web", 8080);
      return r.out.startsWith("HTTP/1.") ? r : undefined;
    });

    await engine.remove(podId);
    await expect(infra()).rejects.toThrow();
    expect((await engine.listPods()).find((p) => p.podId === podId)).toBeUndefined();
  }, 90_000);

  it("refuses a command that is not in the image, naming it, before starting anything", async () => {
    const podId = pid("nocmd");
    await expect(
      apply({ podId, containers: [{ ...sleeper("app"), command: ["/no/such/entrypoint"] }] }),
    ).rejects.toMatchObject({
      code: "ENGINE_FAILURE",
      message: "container app: its command /no/such/entrypoint does not exist in the image",
    });
    await expect(
      apply({ podId, containers: [{ ...sleeper("app"), command: ["no-such-tool", "x"] }] }),
    ).rejects.toMatchObject({
      code: "ENGINE_FAILURE",
      message: expect.stringContaining("container app: its command no-such-tool is not in the image's PATH"),
    });
    // A directory is not a command; a bare name found on PATH is.
    await expect(
      apply({ podId, containers: [{ ...sleeper("app"), command: ["/bin"] }] }),
    ).rejects.toMatchObject({
      message: "container app: its command /bin is not an executable file",
    });
    expect((await apply({ podId, containers: [sleeper("app")] })).running).toBe(true);
    await engine.remove(podId);
  }, 60_000);

  it("rejects invalid specs before touching the engine", async () => {
    // One network namespace: two containers cannot listen on one port.
    await expect(
      engine.apply({
        podId: pid("clash"),
        containers: [
          { ...sleeper("a"), ports: [{ containerPort: 80, protocol: "http" }] },
          { ...sleeper("b"), ports: [{ containerPort: 80, protocol: "tcp", hostPort: 0 }] },
        ],
      }),
    ).rejects.toMatchObject({ code: "INVALID_SPEC", message: expect.stringContaining("already used") });
    await expect(engine.apply({ podId: "Bad_Id", containers: [sleeper("x")] })).rejects.toMatchObject({
      code: "INVALID_SPEC",
    });
    await expect(
      engine.apply({
        podId: pid("bad"),
        containers: [{ ...sleeper("x"), mounts: [{ volume: "nope", path: "/x" }] }],
      }),
    ).rejects.toMatchObject({ code: "INVALID_SPEC" });
    await expect(engine.start(pid("missing"))).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("shares a running service through its socket; another owner sees none of our pods", async () => {
    const podId = pid("own");
    await apply({ podId, containers: [sleeper("app")] });
    const other = await PodmanEngine.open({
      runDir: path.join(tmp, "run2"),
      socketPath: engine.socketPath,
      secretsDir: `/dev/shm/tpod-test-${uid}-2`,
      owner: `o${uid}`,
      hostFirewall: false,
    });
    try {
      expect(other.socketPath).toBe(engine.socketPath); // no second service started
      expect(existsSync(path.join(tmp, "run2", "podman.sock"))).toBe(false);
      expect((await other.listPods()).map((p) => p.podId)).toEqual([]);
      expect((await engine.listPods()).map((p) => p.podId)).toContain(podId);
    } finally {
      await other.close();
      await rm(`/dev/shm/tpod-test-${uid}-2`, { recursive: true, force: true });
    }
    // Concurrent operations on one pod are serialized: the removal sees the finished apply.
    const applying = engine.apply({ podId, containers: [{ ...sleeper("app"), env: { V: "2" } }] });
    const removing = engine.remove(podId);
    await Promise.all([applying, removing]);
    expect((await engine.listPods()).find((p) => p.podId === podId)).toBeUndefined();
  });
});
