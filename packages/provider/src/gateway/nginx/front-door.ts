// The native data plane in front of the Node gateway: nginx holds the public port and its route table follows
// the gateway's pods (debounced: a burst of changes is one reload). Requests nginx served itself are read back
// from its access log for the daemon's request metrics.
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, open, rm, truncate } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type { GatewayLimits, GatewayLogger, GatewayRequestEvent } from "../types.js";
import { type NginxRoute, renderNginxConfig } from "./config.js";
import { NginxProcess } from "./process.js";

export interface NginxFrontDoorOptions {
  binary: string;
  /** nginx's own directory (config, sockets, temp files); created 0750. */
  dir: string;
  listen: { host: string; port: number };
  workers: number | "auto";
  trustForwarded: boolean;
  limits: GatewayLimits;
  log: GatewayLogger;
  onRequest?: (event: GatewayRequestEvent) => void;
}

/** The access log is read this often and truncated past this size (it only feeds metrics). */
const LOG_READ_MS = 2_000;
const LOG_MAX_BYTES = 16 * 1024 * 1024;
const LOG_CHUNK = 4 * 1024 * 1024;
/** Debian's nogroup, the group nginx's workers run in (`user nobody nogroup`). */
const NOGROUP = 65534;

/**
 * Where nginx's files go for a daemon whose state lives in `dataDir`. As root, nginx's workers run as nobody,
 * who cannot pass through a 0700 data dir: then a directory of its own under /run (tmpfs), named after the data
 * dir so two daemons never share one.
 */
export function nginxDirFor(dataDir: string): string {
  if (process.getuid?.() !== 0) return path.join(dataDir, "nginx");
  const id = createHash("sha256").update(path.resolve(dataDir)).digest("hex").slice(0, 16);
  return `/run/tpod-nginx-${id}`;
}

/** A free TCP port on `host` (nginx cannot listen on port 0 and say which port it got). */
async function freePort(host: string): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.listen(0, host, () => resolve());
  });
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export class NginxFrontDoor {
  readonly nodeSocket: string;
  private readonly controlSocket: string;
  private readonly accessLog: string;
  private readonly proc: NginxProcess;
  private generation = 0;
  private routes: NginxRoute[] = [];
  private applying: Promise<void> | null = null;
  private dirty = false;
  private closed = false;
  private port = 0;
  private logTimer: NodeJS.Timeout | null = null;
  private logOffset = 0;
  private logRest = "";

  constructor(private readonly o: NginxFrontDoorOptions) {
    this.nodeSocket = path.join(o.dir, "node.sock");
    this.controlSocket = path.join(o.dir, "control.sock");
    this.accessLog = path.join(o.dir, "access.log");
    this.proc = new NginxProcess({
      binary: o.binary,
      dir: o.dir,
      controlSocket: this.controlSocket,
      log: o.log,
      onUnexpectedExit: () => this.restartSoon(),
    });
  }

  get address(): { host: string; port: number } {
    return { host: this.o.listen.host, port: this.port };
  }

  /** Prepares the directory; the Node gateway then listens on `nodeSocket` before start(). */
  async prepare(): Promise<void> {
    await mkdir(path.join(this.o.dir, "tmp"), { recursive: true, mode: 0o750 });
    await chmod(this.o.dir, 0o750);
    await rm(this.nodeSocket, { force: true });
  }

  /**
   * When we are root, nginx's workers run as nobody:nogroup: through the group they may enter the directory
   * and connect to the Node gateway's socket, and no other user may (the Node gateway trusts what nginx
   * forwards).
   */
  async shareNodeSocket(): Promise<void> {
    await chmod(this.nodeSocket, 0o660);
    if (process.getuid?.() !== 0) return;
    for (const p of [this.o.dir, path.join(this.o.dir, "tmp"), this.nodeSocket]) await chown(p, 0, NOGROUP);
  }

  async start(): Promise<void> {
    await truncate(this.accessLog).catch(() => {});
    const fixed = this.o.listen.port !== 0;
    for (let attempt = 0; ; attempt++) {
      this.port = fixed ? this.o.listen.port : await freePort(this.o.listen.host);
      try {
        await this.proc.start(this.render(), this.generation);
        break;
      } catch (err) {
        // Port 0: another process may take the free port between our probe and nginx's bind.
        if (fixed || attempt >= 2 || !/Address already in use/.test(String(err))) throw err;
      }
    }
    this.logTimer = setInterval(() => void this.readLog(), LOG_READ_MS);
    this.logTimer.unref();
  }

  /** Sets the whole route table; nginx reloads once for a burst of calls. */
  update(routes: NginxRoute[]): void {
    if (this.closed) return;
    this.routes = routes;
    this.dirty = true;
    if (!this.applying) this.applying = this.applyLoop();
  }

  /** Resolves once every update so far is live in nginx (tests, and the bench's warm-up). */
  async settled(): Promise<void> {
    while (this.applying) await this.applying;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.logTimer) clearInterval(this.logTimer);
    await this.applying?.catch(() => {});
    await this.proc.stop();
    await this.readLog();
    await rm(this.o.dir, { recursive: true, force: true });
  }

  /** nginx died (killed, crashed): the public port is down until it runs again, so start it again, with backoff. */
  private restartSoon(attempt = 0): void {
    if (this.closed) return;
    const delay = Math.min(30_000, 250 * 2 ** attempt);
    this.o.log.warn({ delayMs: delay }, "nginx: exited unexpectedly; restarting");
    setTimeout(() => {
      if (this.closed) return;
      this.generation++;
      this.proc.start(this.render(), this.generation).then(
        () => this.o.log.info({ generation: this.generation }, "nginx: restarted"),
        (err: unknown) => {
          this.o.log.warn({ err: String(err) }, "nginx: restart failed");
          this.restartSoon(attempt + 1);
        },
      );
    }, delay).unref();
  }

  private render(): string {
    return renderNginxConfig({
      generation: this.generation,
      dir: this.o.dir,
      listen: { host: this.o.listen.host, port: this.port },
      nodeSocket: this.nodeSocket,
      controlSocket: this.controlSocket,
      accessLog: this.accessLog,
      workers: this.o.workers,
      dropPrivileges: process.getuid?.() === 0,
      trustForwarded: this.o.trustForwarded,
      limits: this.o.limits,
      routes: this.routes,
    });
  }

  private async applyLoop(): Promise<void> {
    try {
      while (this.dirty && !this.closed) {
        this.dirty = false;
        // Let a burst of route changes (a pod with several hostnames, many pods waking) land first.
        await new Promise((r) => setTimeout(r, 10));
        this.generation++;
        try {
          await this.proc.reload(this.render(), this.generation);
        } catch (err) {
          // The previous table stays live: its misses still reach the Node gateway, so nothing is lost but speed.
          this.o.log.warn({ err: String(err), generation: this.generation }, "nginx: reload failed");
          if (!this.closed) await new Promise((r) => setTimeout(r, 1_000));
          this.dirty = true;
        }
      }
    } finally {
      this.applying = null;
    }
  }

  /** Turns the lines nginx logged since the last read into request events. */
  private async readLog(): Promise<void> {
    if (!this.o.onRequest) return;
    let fh: Awaited<ReturnType<typeof open>> | undefined;
    try {
      fh = await open(this.accessLog, "r");
      const { size } = await fh.stat();
      if (size < this.logOffset) this.logOffset = 0; // truncated
      const len = Math.min(size - this.logOffset, LOG_CHUNK);
      if (len <= 0) return;
      const buf = Buffer.allocUnsafe(len);
      const { bytesRead } = await fh.read(buf, 0, len, this.logOffset);
      this.logOffset += bytesRead;
      const text = this.logRest + buf.subarray(0, bytesRead).toString("latin1");
      const lines = text.split("\n");
      this.logRest = (lines.pop() ?? "").slice(0, 4096);
      for (const line of lines) this.emitLine(line);
      if (this.logOffset >= LOG_MAX_BYTES && this.logOffset === size) {
        await truncate(this.accessLog, 0);
        this.logOffset = 0;
      }
    } catch {
      // No log yet, or nginx is reopening it: the next read catches up.
    } finally {
      await fh?.close();
    }
  }

  private emitLine(line: string): void {
    // log_format tpod: pod status method seconds host (fields nginx validated; host last)
    const [pod, status, method, secs, host] = line.split(" ", 5);
    const code = Number(status);
    if (!pod || pod === "-" || !Number.isInteger(code)) return;
    this.o.onRequest?.({
      podId: pod,
      host: host ?? "",
      method: method ?? "",
      status: code,
      upgrade: false,
      durationMs: Number(secs) * 1000,
      direct: true,
    });
  }
}
