// A package's browser entry in real headless Chromium: bundled with esbuild for the browser (which fails on any
// Node built-in import), served from 127.0.0.1 with the files a test needs, evaluated in a page. The attestation
// verifier and both measurement tests run this way.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { build } from "esbuild";
import { type HeadlessChromium, launchChromium } from "./chromium.js";

export interface BundlePage {
  /** Opens a page at the server's root and evaluates `script` there (a string: vitest rewrites import()). */
  evaluate<T>(script: string): Promise<T>;
  close(): Promise<void>;
}

/**
 * Bundles `entry` and serves it as `/bundle.js` beside `files` (path → bytes or text, all as
 * application/octet-stream), then starts Chromium. A page script loads it with `await import("/bundle.js")`.
 */
export async function startBundlePage(
  entry: string,
  files: Record<string, Uint8Array | string> = {},
): Promise<BundlePage> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "chrome120",
    conditions: ["source"],
    write: false,
    logLevel: "silent",
  });
  const bundle = result.outputFiles[0]!.contents;
  const server: Server = createServer((req, res) => {
    const url = req.url ?? "/";
    if (url === "/")
      res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>t</title>");
    else if (url === "/bundle.js") res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    else if (Object.hasOwn(files, url))
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(files[url]);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let browser: HeadlessChromium;
  try {
    browser = await launchChromium();
  } catch (err) {
    server.close();
    throw err;
  }
  return {
    async evaluate<T>(script: string) {
      const page = await browser.context.newPage();
      try {
        await page.goto(`${base}/`);
        return (await page.evaluate(script)) as T;
      } finally {
        await page.close();
      }
    },
    async close() {
      await browser.close();
      await new Promise((r) => server.close(r));
    },
  };
}
