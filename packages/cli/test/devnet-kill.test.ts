// A devnet killed with SIGKILL (no chance to clean up) must leave nothing that blocks the next one: its anvil and
// its `podman system service` die with it, and the next `tpod devnet up` in the same TPOD_HOME, on the same chain
// port, starts and removes the pod the killed devnet left running.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { findNginx } from "@trustedpods/provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const execFileP = promisify(execFile);
const bin = path.resolve(import.meta.dirname, "../bin/tpod");
const repo = path.resolve(import.meta.dirname, "../../..");
const built = existsSync(path.resolve(import.meta.dirname, "../dist/main.js"));
const HAVE_TOOLS = ["/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox", "/usr/bin/setpriv"].every((p) =>
  existsSync(p),
);
if (!built) console.warn("SKIP: devnet SIGKILL tests need the built CLI (npm run build)");
if (!HAVE_TOOLS) console.warn("SKIP: devnet SIGKILL tests need podman, buildah, busybox-static and setpriv");

const uid = randomBytes(4).toString("hex");
const owner = `devnet-k${uid}`;
const image = `localhost/tpod-devnet-kill-${uid}:latest`;
const ownerFilter = `label=io.trustedpods.owner=${owner}`;
let home: string;
let chainPort: number;
const running: ChildProcess[] = [];

interface Started {
  child: ChildProcess;
  exited: Promise<void>;
  // biome-ignore lint/suspicious/noExplicitAny: the ready line is parsed JSON; the fields used are checked below
  info: any;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function devnetUp(): Promise<Started> {
  const args = ["devnet", "up", "--json", "--gateway-port", "0", "--chain-port", String(chainPort)];
  const child = spawn(bin, [...args, "--web-port", "0", "--engine-owner", owner], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TPOD_HOME: home },
  });
  running.push(child);
  let stderr = "";
  child.stderr?.on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    if (!child.stdout) throw new Error("no stdout");
    createInterface({ input: child.stdout }).once("line", resolve);
    child.once("exit", (code) =>
      reject(new Error(`tpod devnet up exited with ${code} before ready:\n${stderr}`)),
    );
  });
  return { child, exited, info: JSON.parse(line) };
}

async function tpod(args: string[]): Promise<string> {
  const { stdout } = await execFileP(bin, args, { env: { ...process.env, TPOD_HOME: home } });
  return stdout;
}

/** The pids of every descendant of `pid` (children first found through /proc's children lists, via ps). */
async function descendants(pid: number): Promise<{ pid: number; command: string }[]> {
  const { stdout } = await execFileP("ps", ["-e", "-o", "pid=,ppid=,args="]);
  const rows = stdout
    .split("\n")
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), command: m[3] ?? "" }));
  const found: { pid: number; command: string }[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift();
    for (const r of rows.filter((row) => row.ppid === parent)) {
      found.push({ pid: r.pid, command: r.command });
      queue.push(r.pid);
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function podContainers(): Promise<string[]> {
  const { stdout } = await execFileP("podman", ["ps", "-a", "-q", "--filter", ownerFilter]);
  return stdout.split("\n").filter(Boolean);
}

describe.skipIf(!built || !HAVE_TOOLS)("tpod devnet up after a SIGKILL", () => {
  let first: Started;
  let helpers: { pid: number; command: string }[] = [];

  beforeAll(async () => {
    home = await mkdtemp(path.join(tmpdir(), "tpod-devnet-kill-"));
    chainPort = await freePort();
    first = await devnetUp();
    const manifest = path.join(home, "hello.yaml");
    const text = await readFile(path.join(repo, "examples/hello/pod.yaml"), "utf8");
    await writeFile(manifest, text.replace(/image: .*/, `image: ${image}`));
    await execFileP(path.join(repo, "examples/hello/build.sh"), [image]);
    await tpod(["deploy", manifest, "--json"]);
  }, 180_000);

  afterAll(async () => {
    const live = running.filter((c) => c.exitCode === null && c.signalCode === null);
    for (const c of live) c.kill("SIGTERM");
    await Promise.all(live.map((c) => new Promise((r) => c.once("exit", r))));
    for (const h of helpers) if (alive(h.pid)) process.kill(h.pid, "SIGKILL");
    for (const id of await podContainers().catch(() => []))
      await execFileP("podman", ["rm", "-f", "-t", "0", id]).catch(() => {});
    await execFileP("podman", ["rmi", "-f", image]).catch(() => {});
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("takes its anvil, Podman service and nginx down with it", async () => {
    expect(await podContainers()).not.toHaveLength(0);
    helpers = (await descendants(first.child.pid as number)).filter((p) =>
      /\banvil\b|podman system service|^nginx: /.test(p.command),
    );
    const kinds = new Set(helpers.map((h) => /anvil|podman|nginx/.exec(h.command)![0]));
    // nginx is the gateway's data plane when installed: its master and workers must go too.
    expect([...kinds].sort()).toEqual(findNginx() ? ["anvil", "nginx", "podman"] : ["anvil", "podman"]);

    first.child.kill("SIGKILL");
    await first.exited;
    await waitUntil("the devnet's anvil, podman service and nginx exit", () =>
      helpers.every((h) => !alive(h.pid)),
    );
    expect(helpers.filter((h) => alive(h.pid))).toEqual([]);
  }, 60_000);

  it("lets the next devnet start on the same chain port and removes the pod the killed one left", async () => {
    expect(await podContainers()).not.toHaveLength(0);
    const second = await devnetUp();
    expect(new URL(second.info.rpcUrl).port).toBe(String(chainPort));
    await waitUntil(
      "the killed devnet's pod is removed",
      async () => (await podContainers()).length === 0,
      60_000,
    );
    expect(await podContainers()).toEqual([]);
    second.child.kill("SIGTERM");
    await second.exited;
    expect(second.child.exitCode).toBe(0);
    // Nothing of the devnet's engine stays on tmpfs: its (empty) secrets root goes with it.
    expect(existsSync(`/dev/shm/tpod-secrets-${owner}`)).toBe(false);
  }, 120_000);
});
