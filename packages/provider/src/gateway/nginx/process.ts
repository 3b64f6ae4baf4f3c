// The nginx master process of the native data plane: started in the foreground under setpriv (the kernel ends
// it when the daemon dies, even by SIGKILL), reloaded with SIGHUP, and asked on its control socket which config
// generation its workers run, so a reload is known to be live rather than assumed.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { GatewayError } from "../errors.js";
import type { GatewayLogger } from "../types.js";

const SETPRIV = "/usr/bin/setpriv";
const NGINX_CANDIDATES = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"];

/** The nginx binary: `explicit` when given, else the first of the usual places; null when there is none. */
export function findNginx(explicit?: string): string | null {
  if (explicit) return existsSync(explicit) ? explicit : null;
  for (const p of NGINX_CANDIDATES) if (existsSync(p)) return p;
  return null;
}

export interface NginxProcessOptions {
  binary: string;
  /** nginx's prefix, with its tmp/ (the front door creates both). */
  dir: string;
  controlSocket: string;
  log: GatewayLogger;
  /** Longest wait for a start or a reload to become live. */
  timeoutMs?: number;
  /** nginx ended without stop() (killed, crashed) after it had started. */
  onUnexpectedExit?: () => void;
}

const LOG_BURST = 20;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** GET /generation on the control socket; null while nothing answers. */
function askGeneration(socketPath: string): Promise<number | null> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: "/generation", agent: false, timeout: 1_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        if (body.length < 32) body += d;
      });
      res.on("end", () => resolve(res.statusCode === 200 && /^\d+$/.test(body) ? Number(body) : null));
      res.on("error", () => resolve(null));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(null));
  });
}

export class NginxProcess {
  private child: ChildProcess | null = null;
  private stopping = false;
  private started = false;
  /** Worker pids seen under the master: killed if the master dies without taking them along. */
  private workers = new Set<number>();
  private exited: Promise<void> = Promise.resolve();
  private stderr = "";
  private logSecond = 0;
  private logged = 0;
  private dropped = 0;
  private readonly confPath: string;
  private readonly timeoutMs: number;

  constructor(private readonly o: NginxProcessOptions) {
    this.confPath = path.join(o.dir, "nginx.conf");
    this.timeoutMs = o.timeoutMs ?? 10_000;
  }

  /** Writes the first config and starts nginx; resolves once its workers answer with `generation`. */
  async start(config: string, generation: number): Promise<void> {
    await this.reapStale();
    // A master that was killed leaves its control socket file behind, and nginx will not bind over it.
    await rm(this.o.controlSocket, { force: true });
    await this.installConfig(config);
    const argv = [this.o.binary, "-p", this.o.dir, "-c", this.confPath, "-e", "stderr"];
    const [cmd, ...args] = existsSync(SETPRIV) ? [SETPRIV, "--pdeathsig", "TERM", "--", ...argv] : argv;
    const child = spawn(cmd!, args, { stdio: ["ignore", "ignore", "pipe"] });
    this.child = child;
    this.stopping = false;
    this.started = false;
    this.stderr = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      // nginx writes warnings and errors here (error_log stderr): keep the start-up ones for a clear failure,
      // pass the rest to the daemon's log.
      if (this.stderr.length < 4096) this.stderr += d;
      for (const line of d.split("\n")) if (line.trim()) this.logLine(line);
    });
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        if (this.child === child) this.child = null;
        this.o.log.info({ code, signal }, "nginx exited");
        if (this.started && !this.stopping) {
          // A master killed outright leaves its workers serving the port with the old table: end them first.
          void this.killOrphans().then(() => {
            resolve();
            this.o.onUnexpectedExit?.();
          });
          return;
        }
        resolve();
      }),
    );
    child.once("error", () => {});
    try {
      await this.waitFor(generation);
      this.started = true;
      await this.noteWorkers();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Replaces the config and reloads; resolves once the new workers answer with `generation`. */
  async reload(config: string, generation: number): Promise<void> {
    if (!this.child?.pid) throw new GatewayError("GATEWAY_CLOSING", "nginx is not running");
    // A config nginx refuses never replaces the file: the running table stays, and we say why.
    await this.installConfig(config);
    this.child.kill("SIGHUP");
    await this.waitFor(generation);
    await this.noteWorkers();
  }

  /** The master's children now (old workers still draining after a reload are children too). */
  private async noteWorkers(): Promise<void> {
    const pid = this.child?.pid;
    if (!pid) return;
    const list = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
    this.workers = new Set(
      list
        .trim()
        .split(/\s+/)
        .filter((w) => /^\d+$/.test(w))
        .map(Number),
    );
  }

  /**
   * Kills the workers the dead master left: only processes that are still nginx workers and whose parent is no
   * nginx master, so a recycled pid (another daemon's worker, anything else) is never hit.
   */
  private async killOrphans(): Promise<void> {
    const cmdline = (pid: number | string) => readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    for (const w of this.workers) {
      if (!(await cmdline(w)).startsWith("nginx: ")) continue;
      const stat = await readFile(`/proc/${w}/stat`, "utf8").catch(() => "");
      const ppid = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
      if (!ppid || (await cmdline(ppid)).startsWith("nginx: master")) continue;
      try {
        process.kill(w, "SIGKILL");
      } catch {
        // already gone
      }
    }
    this.workers.clear();
  }

  /** Graceful stop (SIGQUIT: in-flight requests finish), SIGKILL after the timeout. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.stopping = true;
    child.kill("SIGQUIT");
    const timer = setTimeout(() => child.kill("SIGKILL"), this.timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** nginx's messages into the daemon's log, at most LOG_BURST a second (a broken upstream can flood them). */
  private logLine(line: string): void {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.logSecond) {
      if (this.dropped > 0)
        this.o.log.warn({ dropped: this.dropped }, "nginx: messages dropped (rate limit)");
      this.logSecond = second;
      this.logged = 0;
      this.dropped = 0;
    }
    if (this.logged++ < LOG_BURST) this.o.log.warn({ nginx: line.slice(0, 500) }, "nginx");
    else this.dropped++;
  }

  /** Writes the config beside the live one, has nginx check it, and only then puts it in place. */
  private async installConfig(config: string): Promise<void> {
    const tmp = `${this.confPath}.next`;
    await writeFile(tmp, config, { mode: 0o640 });
    try {
      await this.test(tmp);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await rename(tmp, this.confPath);
  }

  /** `nginx -t` on `file`, with nginx's own message when it refuses. */
  private test(file: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = spawn(this.o.binary, ["-t", "-q", "-p", this.o.dir, "-c", file, "-e", "stderr"], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      let err = "";
      t.stderr?.setEncoding("utf8");
      t.stderr?.on("data", (d: string) => {
        if (err.length < 4096) err += d;
      });
      t.once("error", (e) => reject(new Error(`cannot run ${this.o.binary}: ${e.message}`)));
      t.once("exit", (code) =>
        code === 0
          ? resolve()
          : reject(new Error(`nginx refused its config: ${err.trim() || `exit ${code}`}`)),
      );
    });
  }

  private async waitFor(generation: number): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      if (!this.child) throw new Error(`nginx exited: ${this.stderr.trim() || "no message"}`);
      if ((await askGeneration(this.o.controlSocket)) === generation) return;
      if (Date.now() > deadline)
        throw new Error(`nginx did not load config generation ${generation} within ${this.timeoutMs} ms`);
      await sleep(5);
    }
  }

  /** A daemon killed where setpriv is missing leaves its nginx behind: end it, found by its pid file and config. */
  private async reapStale(): Promise<void> {
    const pid = Number((await readFile(path.join(this.o.dir, "nginx.pid"), "utf8").catch(() => "")).trim());
    if (!Number.isInteger(pid) || pid <= 1) return;
    const argv = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!argv.split("\0").includes(this.confPath)) return;
    this.o.log.warn({ pid }, "stopping the nginx a previous daemon run left behind");
    try {
      process.kill(pid, "SIGQUIT");
    } catch {
      return;
    }
    for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await sleep(25);
  }
}
