/**
 * Cleanup that never hangs a command: each step is best effort and bounded. A command's result is already
 * printed when it cleans up, so a step that fails or takes too long is reported as a warning (what to remove
 * by hand), never an error, and the steps after it still run.
 */
import { rm } from "node:fs/promises";

export interface CleanupStep {
  /** What the step does, for the warning: "stop the upload IPFS node". */
  what: string;
  run(): unknown;
}

/** How long one cleanup step may take by default. */
export const CLEANUP_STEP_TIMEOUT_MS = 15_000;

export async function cleanUp(
  steps: CleanupStep[],
  o: { timeoutMs?: number; warn?: (message: string) => void } = {},
): Promise<void> {
  const ms = o.timeoutMs ?? CLEANUP_STEP_TIMEOUT_MS;
  for (const s of steps) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<"timeout">((done) => {
      timer = setTimeout(() => done("timeout"), ms);
    });
    try {
      // Settles either way, so a step that fails after its deadline is no unhandled rejection.
      const work = Promise.resolve()
        .then(() => s.run())
        .then(
          () => ({ ok: true as const }),
          (error: unknown) => ({ ok: false as const, error }),
        );
      const r = await Promise.race([work, expired]);
      if (r === "timeout")
        o.warn?.(`cleanup: could not ${s.what} within ${Math.round(ms / 1000)} s; moving on`);
      else if (!r.ok)
        o.warn?.(
          `cleanup: could not ${s.what}: ${r.error instanceof Error ? r.error.message : String(r.error)}`,
        );
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Removes a directory tree, retrying while something still writes into it (ENOTEMPTY, EBUSY: a node that is
 * shutting down still flushes its datastore), as a cleanup step.
 */
export function removeDirStep(dir: string): CleanupStep {
  return {
    what: `remove ${dir} (remove it by hand)`,
    run: () => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }),
  };
}
