// The engine contract on real Podman. The image is busybox built locally with buildah (no registry here).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe } from "vitest";
import { PodmanEngine } from "../src/index.js";
import { engineContract } from "./engine-contract.js";

const run = promisify(execFile);
const haveTools = ["/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox"].every((p) => existsSync(p));

async function buildBusybox(tag: string): Promise<void> {
  const ctr = (await run("buildah", ["from", "scratch"])).stdout.trim();
  try {
    await run("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await run("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await run("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await run("buildah", ["commit", "-q", ctr, tag]);
  } finally {
    await run("buildah", ["rm", ctr]).catch(() => {});
  }
}

describe.skipIf(!haveTools)("Podman (real)", () => {
  engineContract("podman", async () => {
    const uid = randomBytes(4).toString("hex");
    const tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-contract-"));
    const tag = `localhost/tpod-contract-${uid}:base`;
    await buildBusybox(tag);
    const archive = path.join(tmp, "busybox.tar");
    await run("podman", ["save", "-q", "-o", archive, tag]);
    const secretsDir = `/dev/shm/tpod-contract-${uid}`;
    const engine = await PodmanEngine.open({ runDir: path.join(tmp, "run"), secretsDir, owner: `c${uid}` });
    const image = await engine.loadImage(`ct-shared-${uid}`, "busybox", { kind: "archive", path: archive });
    return {
      engine,
      image: image.ref,
      imageSource: { kind: "archive", path: archive },
      close: async () => {
        await engine.removeImage(image.ref).catch(() => {});
        await engine.close();
        await run("podman", ["rmi", "-f", tag]).catch(() => {});
        await rm(tmp, { recursive: true, force: true });
        await rm(secretsDir, { recursive: true, force: true });
      },
    };
  });
});
