/** The benches' pod image: busybox httpd serving "hello" on 8080, built from scratch with buildah (nothing is pulled). */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const exec = promisify(execFile);

/** Builds `image` into the local store; `dir` is a scratch directory for the site. */
export async function buildBusyboxHttpdImage(dir: string, image: string): Promise<void> {
  const ctr = (await exec("buildah", ["from", "scratch"])).stdout.trim();
  try {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await exec("sh", ["-c", `mkdir -p ${dir}/www && echo hello > ${dir}/www/index.html`]);
    await exec("buildah", ["copy", ctr, `${dir}/www`, "/www"]);
    await exec("buildah", [
      "config",
      "--entrypoint",
      "[]",
      "--cmd",
      '["httpd","-f","-p","8080","-h","/www"]',
      ctr,
    ]);
    await exec("buildah", ["commit", "-q", ctr, image]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
}
