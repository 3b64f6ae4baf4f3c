import { createHash } from "node:crypto";
import { access, constants, readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import type Docker from "dockerode";
import { EngineError } from "./errors.js";

/**
 * The image of a pod's infra container: only catatonit, which in pause mode (`-P`) does nothing but hold the
 * pod's network namespace, like Kubernetes' pause container. It is built here from the host's catatonit
 * binary (the one Podman already needs for `--init`), so no registry is involved.
 */
export const PAUSE_BINARY_CANDIDATES = ["/usr/libexec/podman/catatonit", "/usr/bin/catatonit"] as const;
export const PAUSE_ENTRYPOINT = ["/catatonit", "-P"];
const PAUSE_REPO = "localhost/tpod-pause";

const BLOCK = 512;

function octal(buf: Buffer, value: number, start: number, len: number): void {
  buf.write(`${value.toString(8).padStart(len - 1, "0")}\0`, start, len, "ascii");
}

/** A ustar header for one regular file (the pause layer needs the executable bit, which oci's tarHeader lacks). */
function fileHeader(name: string, size: number, mode: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, "utf8");
  octal(h, mode, 100, 8);
  octal(h, 0, 108, 8);
  octal(h, 0, 116, 8);
  octal(h, size, 124, 12);
  octal(h, 0, 136, 12);
  h.fill(0x20, 148, 156);
  h.write("0", 156, 1, "ascii");
  h.write("ustar\0", 257, 6, "ascii");
  h.write("00", 263, 2, "ascii");
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
  return h;
}

/** A root filesystem tarball holding /catatonit (mode 0755). */
export function pauseRootfsTar(binary: Uint8Array): Buffer {
  const pad = Buffer.alloc((BLOCK - (binary.byteLength % BLOCK)) % BLOCK);
  return Buffer.concat([
    fileHeader("catatonit", binary.byteLength, 0o755),
    binary,
    pad,
    Buffer.alloc(BLOCK * 2),
  ]);
}

export async function findPauseBinary(
  candidates: readonly string[] = PAUSE_BINARY_CANDIDATES,
): Promise<string> {
  for (const p of candidates) {
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // try the next one
    }
  }
  throw new EngineError(
    "ENGINE_FAILURE",
    "catatonit not found (install the catatonit package): Podman needs it for --init and the pod's infra container",
  );
}

/** The pause image's reference, imported into the engine when missing. Named after the binary's hash. */
export async function ensurePauseImage(docker: Docker, binaryPath?: string): Promise<string> {
  const binary = await readFile(binaryPath ?? (await findPauseBinary()));
  const ref = `${PAUSE_REPO}:${createHash("sha256").update(binary).digest("hex").slice(0, 12)}`;
  const have = await docker
    .getImage(ref)
    .inspect()
    .catch(() => undefined);
  if (have) return ref;
  // Podman 4.3's compat import ignores `tag` (the image becomes repo:latest): the whole reference goes in repo.
  const res = (await docker.importImage(Readable.from([pauseRootfsTar(binary)]), {
    repo: ref,
  })) as unknown as Readable;
  for await (const _ of res) {
    // drain: the import is done when the response ends
  }
  await docker
    .getImage(ref)
    .inspect()
    .catch((err: unknown) => {
      throw new EngineError("ENGINE_FAILURE", `could not import the pause image ${ref}`, { cause: err });
    });
  return ref;
}
