// Test-only: headless Chromium for the browser tests of several packages (attestation, publisher, web). Not a
// package and not a runtime dependency of any: tests import it by relative path. playwright-core drives the
// Chromium from apt (`npx playwright install` cannot download browsers here, see MACHINE-NOTES).
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

/** No sandbox (root in a container), no GPU, and nothing that reaches outside or slows the first start. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export interface HeadlessChromium {
  context: BrowserContext;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

/** Launches headless Chromium with a fresh profile in its own temporary directory (tests can run side by side). */
export async function launchChromium(
  opts: { viewport?: { width: number; height: number } } = {},
): Promise<HeadlessChromium> {
  const dir = await mkdtemp(join(tmpdir(), "tpod-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS],
      ...(opts.viewport ? { viewport: opts.viewport } : {}),
    });
    return {
      context,
      close: async () => {
        await context.close().catch(() => {});
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
