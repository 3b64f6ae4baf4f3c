// serveWebApp: serves the built files and config.json, never a file outside its root, refuses a bad config
// and an unbuilt app with what to do; parseWebAppConfig validates what the page fetches.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseWebAppConfig, type WebAppConfig, webAppConfigFromDevnet } from "@trustedpods/publisher";
import { getAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveWebApp, type WebAppServer } from "../src/node/index.js";

const A = getAddress("0x00000000000000000000000000000000000000a1");
const CONFIG: WebAppConfig = {
  version: 1,
  name: "devnet",
  rpcUrl: "http://127.0.0.1:8545",
  chainId: 31337,
  contracts: { registry: A, payments: A, marketplace: A, token: A },
  devnet: true,
  devKey: `0x${"11".repeat(32)}`,
};

/** GET with the raw path (fetch would normalize "/../"). */
function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? ""), body }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

describe("serveWebApp", () => {
  let dir: string;
  let server: WebAppServer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "tpod-web-serve-"));
    await mkdir(join(dir, "www", "assets"), { recursive: true });
    await writeFile(join(dir, "www", "index.html"), "<!doctype html><title>app</title>");
    await writeFile(join(dir, "www", "assets", "app.js"), "console.log(1)");
    await writeFile(join(dir, "secret.txt"), "outside the root");
    server = await serveWebApp({ config: CONFIG, root: join(dir, "www") });
  });

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves index.html, assets with their type, and the config", async () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
    const index = await get(server.port, "/");
    expect(index).toMatchObject({ status: 200, body: "<!doctype html><title>app</title>" });
    expect(index.type).toContain("text/html");
    expect((await get(server.port, "/assets/app.js")).type).toContain("text/javascript");
    const config = await get(server.port, "/config.json");
    expect(JSON.parse(config.body)).toEqual(CONFIG);
    // Unknown paths fall back to the app (hash routes never reach the server, but a reload of a path might).
    expect((await get(server.port, "/pods")).body).toContain("<title>app</title>");
  });

  it("never serves a file outside its root", async () => {
    expect((await get(server.port, "/%E0%A4%A")).status).toBe(400);
    for (const p of ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"]) {
      const r = await get(server.port, p);
      expect(r.body).not.toContain("outside the root");
    }
  });

  it("refuses an unbuilt app and a malformed config with what to do", async () => {
    await expect(serveWebApp({ config: CONFIG, root: join(dir, "nothing") })).rejects.toThrow(
      /npm run build -w @trustedpods\/web/,
    );
    await expect(
      serveWebApp({ config: { ...CONFIG, rpcUrl: "ftp://x" }, root: join(dir, "www") }),
    ).rejects.toThrow(/rpcUrl must be an http\(s\) URL/);
  });
});

describe("parseWebAppConfig", () => {
  it("accepts the devnet's config and refuses a dev key off the devnet", () => {
    const state = {
      version: 1 as const,
      rpcUrl: "http://127.0.0.1:8545",
      chainId: 31337,
      contracts: CONFIG.contracts as Required<WebAppConfig["contracts"]>,
      publisherKey: CONFIG.devKey!,
    };
    expect(parseWebAppConfig(JSON.stringify(webAppConfigFromDevnet(state)))).toEqual(CONFIG);
    expect(() => parseWebAppConfig({ ...CONFIG, devnet: false })).toThrow(
      /devKey is only allowed on the devnet/,
    );
    expect(() => parseWebAppConfig("{not json")).toThrow(/not JSON/);
    expect(() => parseWebAppConfig({ ...CONFIG, version: 2 })).toThrow(/version must be 1/);
  });
});
