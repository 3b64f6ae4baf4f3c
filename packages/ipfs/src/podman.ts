import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { CID } from "multiformats/cid";
import { IpfsError } from "./errors.js";
import { type ImageRoot, type PullOptions, pullImageToLayout } from "./image.js";
import type { ContentStore } from "./store.js";

const exec = promisify(execFile);
const NAME_RE = /^[a-z0-9][a-z0-9._\-/:@]{0,254}$/;

/**
 * Pulls an image into Podman's local store under `name`: a verified OCI layout in a private temp directory,
 * then `skopeo copy oci:DIR containers-storage:NAME` (the same storage Podman reads). The temp layout is always
 * removed; Podman only sees the image once every digest checked.
 */
export async function pullImageToPodman(
  store: ContentStore,
  cid: CID | string,
  name: string,
  opts: PullOptions & { tmpDir?: string } = {},
): Promise<ImageRoot> {
  if (!NAME_RE.test(name)) throw new IpfsError("BAD_NAME", `invalid image name ${JSON.stringify(name)}`);
  const tmp = await mkdtemp(join(opts.tmpDir ?? tmpdir(), "tpod-pull-"));
  try {
    const layout = join(tmp, "layout");
    const image = await pullImageToLayout(store, cid, layout, { ...opts, refName: opts.refName ?? "latest" });
    try {
      await exec(
        "skopeo",
        ["copy", "--quiet", `oci:${layout}:${opts.refName ?? "latest"}`, `containers-storage:${name}`],
        {
          timeout: 10 * 60_000,
          maxBuffer: 4 * 1024 * 1024,
        },
      );
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new IpfsError(
        "PODMAN_IMPORT",
        `skopeo copy into containers-storage failed: ${(e.stderr || e.message).trim()}`,
      );
    }
    return image;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
