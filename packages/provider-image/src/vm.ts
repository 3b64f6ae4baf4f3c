/**
 * Runs a built provider image in QEMU as a second host on this machine: the image's kernel, initrd and
 * verified root, a state disk holding the daemon's config and keys, and user-mode networking whose only
 * doors are host-loopback port forwards to the daemon's ports (and to a small range of pod ports). The guest reaches the host's loopback services
 * (a devnet chain, an IPFS node) at 10.0.2.2, QEMU's address for the host.
 *
 * Under TCG (no nested KVM here) the guest boots in seconds and the daemon is up in one to a few minutes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import dgram from "node:dgram";
import { createWriteStream } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { ensureHostPackages, run } from "./build.js";
import { ImageError } from "./errors.js";
import { readManifest } from "./manifest.js";

/** The daemon's ports inside the guest (the provider.yaml a host writes for it listens on these). */
export const GUEST_PORTS = { p2p: 4001, p2pWs: 4002, ipfs: 4003, gateway: 8080 } as const;
/** QEMU user networking: the host as the guest sees it (its loopback services answer there). */
export const GUEST_HOST_ADDRESS = "10.0.2.2";

export type GuestPort = keyof typeof GUEST_PORTS;

/**
 * How many host ports a VM forwards for its pods' tcp and udp endpoints (each port number for both transports).
 * Every forward is a listening socket QEMU holds on the host, so the range stays small: eight pods with one
 * tcp port each, e.g. examples/kv.
 */
export const POD_PORT_COUNT = 8;

/** Host ports forwarded to the same port numbers in the guest, whose daemon gives them to pods' endpoints. */
export interface PodPortRange {
  from: number;
  to: number;
}

/** The daemon's ready line (`tpod provider serve --json`), as printed on the guest's console. */
export interface GuestReady {
  ready: true;
  peerId: string;
  multiaddrs: string[];
  provider: string;
  chainId: number;
  ipfs: string[];
  encryptionKeyId?: string;
}

export interface VmOptions {
  imageDir: string;
  /** ext4 image labelled tpod-state (makeStateDisk) holding provider.yaml and the account key. */
  stateDisk: string;
  /** Host loopback ports forwarded to the guest's; 0 or absent: a free port is picked. */
  hostPorts?: Partial<Record<GuestPort, number>>;
  /**
   * Forwarded tcp and udp from the host's 127.0.0.1 to the same numbers in the guest (the guest daemon's
   * engine.hostPortRange), so a pod endpoint the daemon reports as 127.0.0.1:PORT is reachable from the host.
   */
  podPorts?: PodPortRange;
  memoryMiB?: number;
  cpus?: number;
  /** The guest's serial console is appended here. */
  consoleLog?: string;
  /** Lines of the guest's console as they arrive. */
  onConsole?: (line: string) => void;
}

export interface ProviderVm {
  process: ChildProcess;
  hostPorts: Record<GuestPort, number>;
  podPorts?: PodPortRange;
  /** Resolves with the daemon's ready line; rejects when the guest stops or the daemon exits first. */
  ready: Promise<GuestReady>;
  /** Resolves when QEMU exits. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** QEMU's package, installed when missing. */
export const ensureQemu = (progress?: (m: string) => void) =>
  ensureHostPackages({ "qemu-system-x86_64": "qemu-system-x86" }, progress);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Whether nothing holds `port` on 127.0.0.1 for tcp, nor for udp: binds both briefly to find out. */
async function loopbackPortFree(port: number): Promise<boolean> {
  const tcp = await new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ host: "127.0.0.1", port, exclusive: true }, () => s.close(() => resolve(true)));
  });
  if (!tcp) return false;
  return new Promise<boolean>((resolve) => {
    const s = dgram.createSocket("udp4");
    s.once("error", () => {
      s.close();
      resolve(false);
    });
    s.bind({ address: "127.0.0.1", port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * `count` consecutive host ports free on 127.0.0.1 for tcp and udp, below Linux's ephemeral range (32768 on)
 * so an outgoing connection is unlikely to take one before QEMU binds it. Random starts, so two devnets on one
 * machine do not race for the same range.
 */
export async function freePortRange(count: number, attempts = 64): Promise<PodPortRange> {
  const low = 20000;
  const high = 32767 - count;
  for (let a = 0; a < attempts; a++) {
    const from = low + Math.floor(Math.random() * (high - low));
    let ok = true;
    for (let p = from; p < from + count && ok; p++) ok = await loopbackPortFree(p);
    if (ok) return { from, to: from + count - 1 };
  }
  throw new ImageError("VM_FAILED", `no ${count} consecutive free loopback ports between ${low} and ${high}`);
}

/** The QEMU forwards of the pod port range: each port, tcp and udp, host 127.0.0.1 to the same guest port. */
export function podPortForwards(range: PodPortRange): string[] {
  const out: string[] = [];
  for (let p = range.from; p <= range.to; p++)
    for (const t of ["tcp", "udp"]) out.push(`hostfwd=${t}:127.0.0.1:${p}-:${p}`);
  return out;
}

/**
 * Makes the state disk: a sparse ext4 image labelled tpod-state with the given files (the guest mounts it on
 * /var/lib/tpod; provider.yaml at its top). Built with mke2fs -d, so no mount is needed.
 */
export async function makeStateDisk(
  file: string,
  files: Record<string, { content: string; mode?: number }>,
  sizeMiB = 4096,
): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), "tpod-state-"));
  try {
    for (const [name, f] of Object.entries(files)) {
      const target = path.join(dir, name);
      await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
      await writeFile(target, f.content, { mode: f.mode ?? 0o600 });
      await chmod(target, f.mode ?? 0o600);
    }
    await rm(file, { force: true });
    await run("mke2fs", ["-q", "-t", "ext4", "-L", "tpod-state", "-d", dir, file, `${sizeMiB}M`], {
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The QEMU command line for the image: direct boot, the verified root read-only, the state disk, user net. */
export function qemuArgs(
  imageDir: string,
  cmdline: string,
  o: {
    stateDisk: string;
    hostPorts: Record<GuestPort, number>;
    podPorts?: PodPortRange;
    memoryMiB: number;
    cpus: number;
  },
): string[] {
  const fwd = [
    ...(Object.keys(GUEST_PORTS) as GuestPort[]).map(
      (k) => `hostfwd=tcp:127.0.0.1:${o.hostPorts[k]}-:${GUEST_PORTS[k]}`,
    ),
    ...(o.podPorts ? podPortForwards(o.podPorts) : []),
  ].join(",");
  return [
    "-accel",
    "tcg",
    // QEMU 7.2's TCG corrupts EFLAGS after `cmpxchg16b %gs:(…)`, which the 6.12 kernel's SLUB allocator uses
    // on CPUs with CX16: the guest panics within seconds of boot (6.1 did not hit it). Without CX16 the kernel
    // takes its lock-based path. Emulation only: an SNP or TDX launch names its own CPU model.
    "-cpu",
    "qemu64,-cx16",
    "-m",
    String(o.memoryMiB),
    "-smp",
    String(o.cpus),
    "-nographic",
    "-nodefaults",
    "-serial",
    "stdio",
    "-no-reboot",
    "-kernel",
    path.join(imageDir, "vmlinuz"),
    "-initrd",
    path.join(imageDir, "initrd.img"),
    "-append",
    cmdline,
    "-drive",
    `file=${path.join(imageDir, "root.img")},if=virtio,format=raw,readonly=on`,
    "-drive",
    `file=${o.stateDisk},if=virtio,format=raw`,
    // The guest reaches the host's loopback services at 10.0.2.2 through QEMU's NAT; the forwards into the
    // guest listen on the host's 127.0.0.1 only.
    "-netdev",
    `user,id=n0,${fwd}`,
    "-device",
    "virtio-net-pci,netdev=n0",
  ];
}

/** Boots the image. The returned ready promise settles on the daemon's ready line (or the guest's end). */
export async function startProviderVm(o: VmOptions): Promise<ProviderVm> {
  const manifest = await readManifest(o.imageDir);
  await ensureQemu();
  const hostPorts = {} as Record<GuestPort, number>;
  for (const k of Object.keys(GUEST_PORTS) as GuestPort[])
    hostPorts[k] = o.hostPorts?.[k] || (await freePort());
  const args = qemuArgs(o.imageDir, manifest.cmdline, {
    stateDisk: o.stateDisk,
    hostPorts,
    ...(o.podPorts ? { podPorts: o.podPorts } : {}),
    memoryMiB: o.memoryMiB ?? 2048,
    cpus: o.cpus ?? 2,
  });
  const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "pipe", "pipe"] });
  const log = o.consoleLog ? createWriteStream(o.consoleLog, { flags: "a" }) : undefined;
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const tail: string[] = [];
  const ready = new Promise<GuestReady>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      log?.write(`${line}\n`);
      tail.push(line);
      if (tail.length > 40) tail.shift();
      o.onConsole?.(line);
      if (line.startsWith('{"ready":true')) {
        try {
          resolve(JSON.parse(line) as GuestReady);
        } catch {
          // A console line can be interleaved with kernel messages; the next one may be whole.
        }
      }
    });
    child.once("error", (err) =>
      reject(new ImageError("VM_FAILED", `qemu-system-x86_64: ${err.message}`, { cause: err })),
    );
    void exited.then((code) =>
      reject(
        new ImageError(
          "VM_FAILED",
          `the provider VM stopped (qemu exit ${code}) before the daemon was ready:\n${[...tail, stderr].join("\n")}`,
        ),
      ),
    );
  });
  ready.catch(() => undefined);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
    log?.end();
  };
  return { process: child, hostPorts, ...(o.podPorts ? { podPorts: o.podPorts } : {}), ready, exited, stop };
}

/** A multiaddr the guest printed (its own address) as the host reaches it: 127.0.0.1 and the forwarded port. */
export function hostMultiaddr(guestAddr: string, hostPort: number): string {
  const m = /\/p2p\/([^/]+)$/.exec(guestAddr);
  const ws = guestAddr.includes("/ws/") || guestAddr.endsWith("/ws");
  return `/ip4/127.0.0.1/tcp/${hostPort}${ws ? "/ws" : ""}${m ? `/p2p/${m[1]}` : ""}`;
}
