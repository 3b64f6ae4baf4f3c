// Test-only: `tpod devnet up --json` as a child process (the built CLI), as the devnet-up and provider-vm tests
// run it: spawned with its own $TPOD_HOME and ports picked by the system, resolved once it prints its ready line.
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import { createInterface } from "node:readline";

export interface DevnetProcess {
  child: ChildProcess;
  /** Resolves with the exit code once the process exited. */
  exited: Promise<number | null>;
  /** Its ready line, parsed (the tests check it field by field); rejects when it exits first. */
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON, checked field by field by the tests
  ready: Promise<any>;
  /** Everything it wrote to stderr so far. */
  readonly stderr: string;
}

/**
 * Spawns `BIN devnet up --json` on free ports with `extraArgs`. Returns at once, so a test can still stop the child
 * when it never gets ready.
 */
export function spawnDevnetUp(bin: string, home: string, extraArgs: string[]): DevnetProcess {
  const args = ["devnet", "up", "--json", "--gateway-port", "0", "--chain-port", "0", "--web-port", "0"];
  const child = spawn(bin, [...args, ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TPOD_HOME: home },
  });
  let stderr = "";
  child.stderr!.on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const ready = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`tpod exited with ${code} before ready:\n${stderr}`)));
  }).then((line) => JSON.parse(line));
  return {
    child,
    exited,
    ready,
    get stderr() {
      return stderr;
    },
  };
}

/** GET / from 127.0.0.1:PORT with a Host header (the gateway routes by Host). */
export function getWithHost(
  port: number,
  host: string,
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", headers: { host } }, (res) => {
      let body = "";
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }),
      );
    });
    req.once("error", reject);
  });
}
