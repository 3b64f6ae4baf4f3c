import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CID } from "multiformats/cid";
import { sha256 } from "multiformats/hashes/sha2";

const CODECS: Record<string, number> = { raw: 0x55, "dag-pb": 0x70, "dag-cbor": 0x71 };

/**
 * A FAKE Kubo RPC server (Kubo cannot be installed on this machine). It implements the few endpoints the
 * Kubo store uses as Kubo's RPC reference documents them: POST only (405 otherwise), arguments in the query
 * string, block/put taking a multipart body and answering {Key, Size}, block/get answering raw bytes, errors
 * as HTTP 500 with {Message, Code, Type: "error"}. Blocks live in memory; pins are a set.
 */
export class FakeKuboRpcServer {
  readonly blocks = new Map<string, Uint8Array>();
  readonly pins = new Set<string>();
  readonly calls: string[] = [];
  #server: Server | undefined;
  url = "";

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: Error) => this.#error(res, 500, err.message));
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }

  /** Corrupts a stored block (what a broken or malicious node would serve). */
  tamper(cid: CID): void {
    const key = cid.toV1().toString();
    const bytes = Uint8Array.from(this.blocks.get(key)!);
    bytes[0] = (bytes[0]! + 1) % 256;
    this.blocks.set(key, bytes);
  }

  #error(res: ServerResponse, status: number, message: string): void {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ Message: message, Code: 0, Type: "error" }));
  }

  #json(res: ServerResponse, value: unknown): void {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(value));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    this.calls.push(url.pathname);
    if (req.method !== "POST") return this.#error(res, 405, `${req.method} not allowed`);
    const arg = url.searchParams.get("arg") ?? "";
    const parseArg = () => CID.parse(arg).toV1();
    switch (url.pathname) {
      case "/api/v0/block/put": {
        const body = await readBody(req);
        const data = firstMultipartPart(body, req.headers["content-type"] ?? "");
        const codec = CODECS[url.searchParams.get("cid-codec") ?? "raw"];
        if (codec === undefined || url.searchParams.get("mhtype") !== "sha2-256") {
          return this.#error(res, 400, "unsupported cid-codec or mhtype");
        }
        const cid = CID.createV1(codec, await sha256.digest(data));
        this.blocks.set(cid.toString(), data);
        return this.#json(res, { Key: cid.toString(), Size: data.byteLength });
      }
      case "/api/v0/block/get": {
        const bytes = this.blocks.get(parseArg().toString());
        // Real Kubo would search the network here; the fake only knows its own blocks.
        if (!bytes) return this.#error(res, 500, "block was not found locally (offline)");
        res.writeHead(200, { "content-type": "text/plain", "content-length": bytes.byteLength });
        return void res.end(bytes);
      }
      case "/api/v0/block/stat": {
        const bytes = this.blocks.get(parseArg().toString());
        if (!bytes) return this.#error(res, 500, "block was not found locally (offline)");
        return this.#json(res, { Key: arg, Size: bytes.byteLength });
      }
      case "/api/v0/pin/add": {
        const cid = parseArg();
        if (!this.blocks.has(cid.toString())) return this.#error(res, 500, `pin: block ${cid} not found`);
        this.pins.add(cid.toString());
        return this.#json(res, { Pins: [cid.toString()] });
      }
      case "/api/v0/pin/rm": {
        const cid = parseArg();
        if (!this.pins.delete(cid.toString()))
          return this.#error(res, 500, "not pinned or pinned indirectly");
        return this.#json(res, { Pins: [cid.toString()] });
      }
      case "/api/v0/pin/ls": {
        const cid = parseArg();
        if (!this.pins.has(cid.toString())) return this.#error(res, 500, `path '${arg}' is not pinned`);
        return this.#json(res, { Keys: { [cid.toString()]: { Type: "recursive" } } });
      }
      case "/api/v0/id":
        return this.#json(res, {
          ID: "12D3KooWFakeKuboNodeForTests",
          Addresses: ["/ip4/127.0.0.1/tcp/4001"],
        });
      default:
        return this.#error(res, 404, `404 page not found: ${url.pathname}`);
    }
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** The bytes of the first part of a multipart/form-data body (block/put sends exactly one). */
function firstMultipartPart(body: Buffer, contentType: string): Uint8Array {
  const boundary = /boundary=("?)([^";]+)\1/.exec(contentType)?.[2];
  if (!boundary) throw new Error("block/put: not multipart");
  const delimiter = Buffer.from(`--${boundary}`);
  const start = body.indexOf(delimiter);
  const headersEnd = body.indexOf("\r\n\r\n", start);
  const end = body.indexOf(Buffer.from(`\r\n--${boundary}`), headersEnd);
  if (start < 0 || headersEnd < 0 || end < 0) throw new Error("block/put: malformed multipart body");
  return new Uint8Array(body.subarray(headersEnd + 4, end));
}
