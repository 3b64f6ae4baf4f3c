// Test-only: a REAL OCI registry (Debian's `docker-registry` package, distribution v2) on a free loopback port,
// with deletes enabled, storage in a temp dir; and a busybox image built locally (buildah, nothing pulled) as an
// OCI layout, for pushing to it. Imported by relative path.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const REGISTRY_BINARY = "/usr/bin/docker-registry";
/** Why registry tests cannot run here, or undefined when they can. */
export const REGISTRY_MISSING = !existsSync(REGISTRY_BINARY)
  ? `${REGISTRY_BINARY} is missing (Debian package docker-registry; scripts/setup.sh installs it)`
  : ["/usr/bin/skopeo", "/usr/bin/buildah", "/bin/busybox"].find((p) => !existsSync(p))
    ? "skopeo, buildah or busybox-static is missing (scripts/setup.sh installs them)"
    : undefined;

export interface TestRegistry {
  /** host:port, e.g. 127.0.0.1:41234 */
  host: string;
  stop(): Promise<void>;
}

/** Starts a registry on 127.0.0.1 port 0 and reads the port it got from its log. */
export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tpod-registry-"));
  const config = path.join(dir, "config.yml");
  await writeFile(
    config,
    `version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: ${path.join(dir, "data")}}
  delete: {enabled: true}
http: {addr: "127.0.0.1:0", secret: test-only}
`,
  );
  const child: ChildProcess = spawn(REGISTRY_BINARY, ["serve", config], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await gone;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const host = await new Promise<string>((resolve, reject) => {
      let log = "";
      const timer = setTimeout(() => reject(new Error(`registry did not start: ${log.slice(-500)}`)), 20_000);
      child.stderr?.on("data", (b: Buffer) => {
        log += b.toString();
        const m = /listening on (127\.0\.0\.1:\d+)/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`registry exited (${code}): ${log.slice(-500)}`));
      });
    });
    child.stderr?.resume();
    return { host, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Builds a busybox image from scratch with buildah (`marker` goes into a file, so two markers make two different
 * images) and writes it as an OCI layout at `dir`. The buildah image is removed again.
 */
export async function buildBusyboxLayout(dir: string, marker: string): Promise<void> {
  const ctr = (await run("buildah", ["from", "scratch"])).stdout.trim();
  const tag = `localhost/tpod-registry-test-${process.pid}-${marker}:1`;
  try {
    await run("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await run("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await run("buildah", ["run", ctr, "--", "/bin/sh", "-c", `echo ${marker} > /marker`]);
    await run("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await run("buildah", ["commit", "-q", ctr, tag]);
    await run("buildah", ["push", "-q", tag, `oci:${dir}`]);
  } finally {
    await run("buildah", ["rm", ctr]).catch(() => {});
    await run("buildah", ["rmi", "-f", tag]).catch(() => {});
  }
}

/** `skopeo inspect` of a reference on the (plain HTTP) test registry: its manifest digest and config digest. */
export async function inspectImage(ref: string): Promise<{ digest: string; config: string }> {
  const tls = "--tls-verify=false";
  const meta = JSON.parse((await run("skopeo", ["inspect", "--no-tags", tls, `docker://${ref}`])).stdout) as {
    Digest: string;
  };
  const raw = JSON.parse((await run("skopeo", ["inspect", "--raw", tls, `docker://${ref}`])).stdout) as {
    config: { digest: string };
  };
  return { digest: meta.Digest, config: raw.config.digest };
}
