import { randomBytes } from "node:crypto";
import { chmod, mkdir, rename, rm, rmdir, stat, statfs, writeFile } from "node:fs/promises";
import path from "node:path";
import { EngineError } from "./errors.js";

/** statfs f_type of tmpfs (and of /dev/shm on Linux). */
export const TMPFS_MAGIC = 0x01021994;

export async function isTmpfs(dir: string): Promise<boolean> {
  const s = await statfs(dir);
  return s.type === TMPFS_MAGIC;
}

/**
 * Secret volumes as directories on a tmpfs (memory, never the disk), bind-mounted read-only into containers.
 * Layout: ROOT (0700, root only) / POD / VOLUME (0755) / FILE (0444). The root is refused unless it is on
 * tmpfs, so a misconfiguration cannot put decrypted secrets on disk. A volume is written into a fresh
 * directory and renamed into place so a container never sees half of a new set of files.
 */
export class SecretStore {
  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    if (!(await isTmpfs(this.root))) {
      throw new EngineError(
        "INVALID_SPEC",
        `secrets dir ${this.root} is not on tmpfs: refusing to store secrets there`,
      );
    }
  }

  podDir(podId: string): string {
    return path.join(this.root, podId);
  }

  volumeDir(podId: string, volume: string): string {
    return path.join(this.root, podId, volume);
  }

  async write(podId: string, volume: string, files: Record<string, Uint8Array>): Promise<string> {
    const podDir = this.podDir(podId);
    await mkdir(podDir, { recursive: true, mode: 0o755 });
    const final = this.volumeDir(podId, volume);
    const staging = path.join(podDir, `.${volume}.${randomBytes(6).toString("hex")}`);
    await mkdir(staging, { mode: 0o755 });
    try {
      for (const [name, bytes] of Object.entries(files)) {
        await writeFile(path.join(staging, name), bytes, { mode: 0o444 });
      }
      // rename() cannot replace a non-empty directory: move the old one aside first.
      const old = path.join(podDir, `.${volume}.old.${randomBytes(6).toString("hex")}`);
      const hadOld = await exists(final);
      if (hadOld) await rename(final, old);
      await rename(staging, final);
      if (hadOld) await rm(old, { recursive: true, force: true });
      return final;
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
  }

  async has(podId: string, volume: string): Promise<boolean> {
    return exists(this.volumeDir(podId, volume));
  }

  async removePod(podId: string): Promise<void> {
    await rm(this.podDir(podId), { recursive: true, force: true });
  }

  /**
   * Removes the root if it is empty, so a stopped engine leaves nothing on tmpfs. A root that still holds pods'
   * secrets (pods keep running while the daemon restarts) stays: rmdir refuses a non-empty directory.
   */
  async close(): Promise<void> {
    await rmdir(this.root).catch(() => {});
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
