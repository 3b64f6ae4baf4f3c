import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { openOciLayout } from "@trustedpods/oci";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IpfsNode, pullImageToPodman, pushImage } from "../src/index.js";
import { exec, startNode, tempDir, uniqueName } from "./helpers.js";

const haveTools = await exec("sh", [
  "-c",
  "command -v podman && command -v buildah && command -v skopeo",
]).then(
  () => true,
  () => false,
);
if (!haveTools) console.warn("SKIP podman.test.ts: podman, buildah or skopeo not installed");

/** Builds a busybox image from scratch (no registry) and writes it as an OCI layout at `dir`. */
async function buildBusybox(dir: string, name: string): Promise<void> {
  const { stdout } = await exec("buildah", ["from", "scratch"]);
  const ctr = stdout.trim();
  try {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["config", "--entrypoint", '["/bin/busybox"]', "--cmd", "sh", ctr]);
    await exec("buildah", ["commit", "-q", ctr, name]);
    await exec("buildah", ["push", "-q", name, `oci:${dir}:latest`]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
}

describe.skipIf(!haveTools)("pull into Podman", () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let a: IpfsNode;
  let b: IpfsNode;
  const built = uniqueName("tpod-ipfs-src");
  const pulled = uniqueName("tpod-ipfs-pulled");

  beforeAll(async () => {
    tmp = await tempDir();
    a = await startNode(tmp.dir, "a");
    b = await startNode(tmp.dir, "b");
  });
  afterAll(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await exec("podman", ["rmi", "-f", pulled]).catch(() => {});
    await exec("buildah", ["rmi", "-f", built]).catch(() => {});
    await tmp?.cleanup();
  });

  it("pushes a locally built busybox image and runs it in Podman after pulling it by CID on another node", async () => {
    const layout = join(tmp.dir, "busybox");
    await buildBusybox(layout, built);
    const { cid } = await pushImage(a, await openOciLayout(layout));
    const image = await pullImageToPodman(b, cid, pulled, { peers: a.multiaddrs(), timeoutMs: 60_000 });
    // Podman's image id is the config digest: the same config blob as in the source layout arrived.
    const manifestPath = join(layout, "blobs", "sha256", image.root.digest.slice(7));
    const manifest = JSON.parse(await readFile(manifestPath, "utf8")) as { config: { digest: string } };
    const { stdout: id } = await exec("podman", ["image", "inspect", "--format", "{{.Id}}", pulled]);
    expect(`sha256:${id.trim()}`).toBe(manifest.config.digest);
    const { stdout } = await exec("podman", ["run", "--rm", pulled, "echo", "hello from ipfs"], {
      timeout: 60_000,
    });
    expect(stdout.trim()).toBe("hello from ipfs");
  });
});
