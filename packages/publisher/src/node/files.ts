// $TPOD_HOME and the file primitives every piece of local state uses: private directories, bounded reads,
// atomic 0600 writes, a permission check for secret files and a small cross-process lock.
import { randomBytes } from "node:crypto";
import { chmod, link, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { PublisherError, type PublisherErrorCode } from "../errors.js";

export type Env = Record<string, string | undefined>;

/** `$TPOD_HOME`, default `~/.tpod`. */
export function tpodHome(env: Env = process.env): string {
  const h = env.TPOD_HOME;
  return h && h.length > 0 ? h : join(homedir(), ".tpod");
}

export interface TpodPaths {
  home: string;
  keys: string;
  networks: string;
  devnet: string;
  pods: string;
}

export function tpodPaths(home: string): TpodPaths {
  return {
    home,
    keys: join(home, "keys"),
    networks: join(home, "networks"),
    devnet: join(home, "devnet.json"),
    pods: join(home, "pods.json"),
  };
}

/** Creates `dir` (and parents) with mode 0700; tightens an existing directory we own to 0700. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) await chmod(dir, 0o700);
}

/**
 * Writes `data` to `path` atomically with `mode` (default 0600): a temporary file in the same directory, synced,
 * then renamed over `path` (or, with `exclusive`, hard-linked so an existing file is never replaced: EEXIST).
 * A crash leaves either the old file or the new one, never a half-written one.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { mode?: number; exclusive?: boolean } = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const dir = dirname(path);
  await ensurePrivateDir(dir);
  const temp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx", mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // The umask can only narrow the mode; chmod makes it exact.
    await chmod(temp, mode);
    if (options.exclusive) await link(temp, path);
    else await rename(temp, path);
  } finally {
    await rm(temp, { force: true });
  }
}

/** Reads a text file of at most `maxBytes`; a missing file is undefined, anything else unreadable throws. */
export async function readTextBounded(
  path: string,
  maxBytes: number,
  what: string,
  code: PublisherErrorCode = "NETWORK_MALFORMED",
): Promise<string | undefined> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new PublisherError(code, `${what} ${path} is not a file`);
    size = st.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  if (size > maxBytes) throw new PublisherError(code, `${what} ${path} is larger than ${maxBytes} bytes`);
  return readFile(path, "utf8");
}

/** Refuses a secret file that group or others can read or write. */
export async function assertPrivateFile(path: string, what: string): Promise<void> {
  const st = await stat(path);
  if ((st.mode & 0o077) !== 0) {
    throw new PublisherError(
      "FILE_PERMISSIONS",
      `${what} ${path} is accessible to group or others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`,
      { field: path },
    );
  }
}

export function parseJson(
  text: string,
  what: string,
  code: PublisherErrorCode = "NETWORK_MALFORMED",
): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new PublisherError(code, `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

/**
 * Runs `fn` holding `path.lock` (created exclusively), so read-modify-write cycles of two tpod processes do not
 * lose each other's changes. A lock older than 30 s is considered left behind by a crash and broken.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${path}.lock`;
  await ensurePrivateDir(dirname(path));
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const h = await open(lock, "wx", 0o600);
      await h.writeFile(String(process.pid));
      await h.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const st = await stat(lock).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
        await rm(lock, { force: true });
        continue;
      }
      if (Date.now() > until)
        throw new PublisherError("POD_RECORD", `${lock} is held by another tpod process`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}
