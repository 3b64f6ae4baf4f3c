/**
 * A node's small raw blocks over HTTP, as an IPFS trustless gateway serves them (`GET /ipfs/CID?format=raw` or
 * `Accept: application/vnd.ipld.raw`), so a browser, which cannot speak the node's TCP libp2p, can read listing
 * metadata. The reader checks every block against its CID, so nothing here needs to be trusted. Only blocks the
 * node already holds are served (it never fetches for an HTTP client) and only raw ones up to `maxBlockBytes`:
 * documents, not images.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { CID } from "multiformats/cid";
import { assertSupportedCid, type ContentStore, parseCid, RAW_CODEC } from "./store.js";

export interface BlockHttpOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Largest block served (default 256 KiB, the listing document limit). */
  maxBlockBytes?: number;
}

export interface BlockHttpServer {
  /** e.g. `http://127.0.0.1:PORT/`: blocks are at `${url}ipfs/CID`. */
  url: string;
  close(): Promise<void>;
}

const RAW_TYPE = "application/vnd.ipld.raw";

function reply(res: http.ServerResponse, status: number, body: Uint8Array | string, type: string): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength),
    // Content-addressed public data: any page may read it (the browser app runs on another origin).
    "access-control-allow-origin": "*",
    "x-content-type-options": "nosniff",
    ...(status === 200 ? { "cache-control": "public, max-age=29030400, immutable" } : {}),
  });
  res.end(body);
}

function fail(res: http.ServerResponse, status: number, code: string, message: string): void {
  reply(res, status, `${JSON.stringify({ error: { code, message } })}\n`, "application/json; charset=utf-8");
}

async function handle(
  store: ContentStore,
  max: number,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD")
    return fail(res, 405, "METHOD_NOT_ALLOWED", "only GET and HEAD");
  const url = new URL(req.url ?? "/", "http://x");
  const m = /^\/ipfs\/([A-Za-z0-9]{1,100})$/.exec(url.pathname);
  if (!m) return fail(res, 404, "NOT_FOUND", "blocks are at /ipfs/CID");
  const wantsRaw = url.searchParams.get("format") === "raw" || (req.headers.accept ?? "").includes(RAW_TYPE);
  if (!wantsRaw)
    return fail(res, 406, "NOT_ACCEPTABLE", `only raw blocks: add ?format=raw or Accept: ${RAW_TYPE}`);
  let cid: CID;
  try {
    cid = parseCid(m[1]!);
    assertSupportedCid(cid, [RAW_CODEC]);
  } catch (err) {
    return fail(res, 400, "INVALID_CID", (err as Error).message);
  }
  if (!(await store.hasBlock(cid))) return fail(res, 404, "NOT_FOUND", `this node does not hold ${cid}`);
  const bytes = await store.getBlock(cid, { maxSize: max });
  reply(res, 200, req.method === "HEAD" ? "" : bytes, RAW_TYPE);
}

/** Serves `store`'s raw blocks read-only over HTTP until close(). */
export async function serveBlocksOverHttp(
  store: ContentStore,
  o: BlockHttpOptions,
): Promise<BlockHttpServer> {
  const max = o.maxBlockBytes ?? 256 * 1024;
  const server = http.createServer((req, res) => {
    handle(store, max, req, res).catch((err) => {
      if (!res.headersSent) fail(res, 500, "BLOCK_UNREADABLE", (err as Error).message);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
