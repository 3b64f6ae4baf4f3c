import { createReadStream, existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parseWebAppConfig, type WebAppConfig } from "@trustedpods/publisher";

export interface ServeWebAppOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Listen address; default 127.0.0.1 (the devnet is loopback only). */
  host?: string;
  /** Served as /config.json: which chain the app uses (and on the devnet, the dev key). */
  config: WebAppConfig;
  /** The built app; default the package's dist/www (`npm run build -w @trustedpods/web`). */
  root?: string;
}

export interface WebAppServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export class WebAppError extends Error {
  override readonly name = "WebAppError";
  constructor(
    readonly code: "NOT_BUILT" | "LISTEN_FAILED",
    message: string,
  ) {
    super(message);
  }
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".wasm": "application/wasm",
  ".map": "application/json",
};

export const DEFAULT_WEB_ROOT = fileURLToPath(new URL("../../dist/www", import.meta.url));

/** Serves the built app and its config.json; resolves once listening. */
export async function serveWebApp(options: ServeWebAppOptions): Promise<WebAppServer> {
  const root = resolve(options.root ?? DEFAULT_WEB_ROOT);
  if (!existsSync(join(root, "index.html")))
    throw new WebAppError(
      "NOT_BUILT",
      `the web app is not built (${join(root, "index.html")} is missing): run \`npm run build -w @trustedpods/web\``,
    );
  // Validate before serving: a bad config would only fail later, in every user's browser.
  const configJson = JSON.stringify(parseWebAppConfig(options.config));
  const server = createServer((req, res) => {
    const headers = {
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "cache-control": "no-store",
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, headers).end();
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400, headers).end();
      return;
    }
    if (path === "/config.json") {
      res.writeHead(200, { ...headers, "content-type": "application/json" }).end(configJson);
      return;
    }
    const file = normalize(join(root, path === "/" ? "index.html" : path));
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403, headers).end();
      return;
    }
    stat(file).then(
      (s) => {
        const target = s.isFile() ? file : join(root, "index.html");
        res.writeHead(200, {
          ...headers,
          "content-type": TYPES[extname(target)] ?? "application/octet-stream",
        });
        if (req.method === "HEAD") res.end();
        else createReadStream(target).pipe(res);
      },
      () => {
        // A missing asset is a 404; any other path is a route of the app (a reload of a deep link).
        if (extname(file)) res.writeHead(404, { ...headers, "content-type": "text/plain" }).end("not found");
        else {
          res.writeHead(200, { ...headers, "content-type": TYPES[".html"] });
          if (req.method === "HEAD") res.end();
          else createReadStream(join(root, "index.html")).pipe(res);
        }
      },
    );
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", (err) =>
      fail(new WebAppError("LISTEN_FAILED", `cannot serve the web app: ${err.message}`)),
    );
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => ok());
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host && options.host !== "0.0.0.0" ? options.host : "127.0.0.1";
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}/`,
    port,
    close: () => closeServer(server),
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((ok) => {
    server.close(() => ok());
    server.closeAllConnections();
  });
}
