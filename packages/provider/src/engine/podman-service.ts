import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { EngineError } from "./errors.js";

const SETPRIV = "/usr/bin/setpriv";

/** True when a Docker/libpod API answers /_ping on the socket. */
export function pingSocket(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath, path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

export interface PodmanService {
  socketPath: string;
  stop(): Promise<void>;
}

/**
 * Starts `podman system service --time=0` on a socket of our own (the daemon's run dir) and waits until it
 * answers. --time=0 keeps it alive for the daemon's lifetime; stop() ends exactly the process we started.
 */
export async function startPodmanService(runDir: string, timeoutMs = 20_000): Promise<PodmanService> {
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  const socketPath = path.join(runDir, "podman.sock");
  const service = ["podman", "system", "service", "--time=0", `unix://${socketPath}`];
  // setpriv (util-linux) makes the kernel SIGTERM the service when the daemon dies, even by SIGKILL, so a crashed
  // daemon leaves no service behind on its socket; it execs podman, so the child's pid stays podman's own.
  const argv = existsSync(SETPRIV) ? [SETPRIV, "--pdeathsig", "TERM", "--", ...service] : service;
  const child: ChildProcess = spawn(argv[0] as string, argv.slice(1), {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true;
      resolve();
    });
    child.once("error", () => {
      exited = true;
      resolve();
    });
  });
  const deadline = Date.now() + timeoutMs;
  while (!(await pingSocket(socketPath, 500))) {
    if (exited || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new EngineError("ENGINE_UNAVAILABLE", `podman system service did not start: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    socketPath,
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exitPromise;
      clearTimeout(timer);
    },
  };
}

/**
 * A daemon killed with SIGKILL leaves the `podman system service` it started running on its socket. Before
 * starting a new one, end that process: found by its exact command line (our own socket path), ended by pid.
 */
export async function reapStalePodmanService(
  socketPath: string,
  log: { warn(obj: object, msg: string): void },
): Promise<void> {
  const want = `unix://${socketPath}`;
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const argv = await readFile(`/proc/${e}/cmdline`, "utf8")
      .then((t) => t.split("\0"))
      .catch(() => [] as string[]);
    if (argv.includes("system") && argv.includes("service") && argv.includes(want)) {
      log.warn({ pid: Number(e) }, "stopping the podman service a previous daemon run left behind");
      try {
        process.kill(Number(e), "SIGTERM");
      } catch {
        continue;
      }
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          process.kill(Number(e), 0);
        } catch {
          break;
        }
      }
    }
  }
}
