// The HTTP gateway against real Podman pods: routing, proxy semantics, WebSockets, streaming, limits,
// isolation of the upstream port, and scale to zero, with each data plane (the Node gateway alone, and nginx in
// front of it). Images are built locally (buildah, scratch + busybox).
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  engineWaker,
  type Gateway,
  type GatewayRequestEvent,
  localhostLookup,
  type PodmanEngine,
  type PodSpec,
  type PodWaker,
} from "../src/index.js";
import {
  DATA_PLANES,
  type DataPlane,
  GatewayTestHarness,
  httpContainer,
  request,
  run,
  waitFor,
  webCommand,
} from "./gateway-fixtures.js";

const haveTools = ["/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox"].every((p) => existsSync(p));
const uid = randomBytes(4).toString("hex");

const harness = new GatewayTestHarness("gwtest", uid, { owner: `g${uid}`, hostFirewall: true });
const { image, apply } = harness;
let engine: PodmanEngine;

beforeAll(async () => {
  if (haveTools) engine = await harness.open();
}, 120_000);
afterAll(() => harness.close(), 120_000);

function webPod(podId: string, name: string, extra: Partial<PodSpec> = {}): PodSpec {
  return {
    podId,
    containers: [httpContainer(image, "web", webCommand(name), 8080)],
    restart: { mode: "never" },
    ...extra,
  };
}

/** Waits until the web server of a freshly applied pod answers (through the gateway, which is what we test). */
async function ready(url: string): Promise<void> {
  await waitFor(`${url} to answer`, async () => (await request(url).catch(() => null))?.status === 200);
}

async function exec(podId: string, container: string, cmd: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run("podman", ["exec", engine.containerName(podId, container), ...cmd]);
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    return { code: typeof e.code === "number" ? e.code : 1, out: e.stdout ?? "" };
  }
}

function countingWaker(inner: PodWaker) {
  const calls = { wake: 0, sleep: 0 };
  const waker: PodWaker = {
    wake: async (id) => {
      calls.wake++;
      await inner.wake(id);
    },
    sleep: async (id) => {
      calls.sleep++;
      await inner.sleep(id);
    },
  };
  return { waker, calls };
}

function wsConnect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, "ws"), { lookup: localhostLookup as never });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, r) => reject(new Error(`unexpected response ${r.statusCode}`)));
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once("message", (data, binary) => resolve({ data: data as Buffer, binary }));
    ws.once("close", () => reject(new Error("closed")));
  });
}

describe.skipIf(!haveTools).each(DATA_PLANES)(
  "HTTP gateway with real Podman, %s data plane",
  (plane: DataPlane) => {
    const pid = (name: string) => `gw${name}-${plane[1]}${uid}`;
    const gateway = (opts: Parameters<typeof harness.gateway>[0] = {}) => harness.gateway(opts, plane);
    const a = pid("a");
    const b = pid("b");
    let gw: Gateway;
    let hostA: string;
    let hostB: string;

    beforeAll(async () => {
      await Promise.all([apply(webPod(a, "pod-a")), apply(webPod(b, "pod-b"))]);
      gw = await gateway();
      hostA = gw.hostnameFor(`a-${uid}`);
      hostB = gw.hostnameFor(`b-${uid}`);
      gw.setRoutes(a, [{ hostname: hostA, container: "web", containerPort: 8080 }], {});
      gw.setRoutes(b, [{ hostname: hostB, container: "web", containerPort: 8080 }], {});
      await ready(`${gw.urlFor(hostA)}name.txt`);
      await ready(`${gw.urlFor(hostB)}name.txt`);
      // With nginx, both hosts now go straight to their containers: the tests below use that path.
      await gw.settled();
    }, 120_000);

    it("routes by Host header to two different pods", async () => {
      const ra = await request(`${gw.urlFor(hostA)}name.txt`);
      const rb = await request(`${gw.urlFor(hostB)}name.txt`);
      expect(ra.status).toBe(200);
      expect(ra.body.toString()).toBe("pod-a\n");
      expect(rb.body.toString()).toBe("pod-b\n");
      // Host matching ignores case, the port and a trailing dot.
      const rc = await request(`http://127.0.0.1:${gw.address.port}/name.txt`, {
        headers: { host: `${hostB.toUpperCase()}.:${gw.address.port}` },
      });
      expect(rc.body.toString()).toBe("pod-b\n");
      expect(gw.urlFor(hostA)).toBe(`http://${hostA}:${gw.address.port}/`);
    });

    it.skipIf(!existsSync("/usr/bin/curl"))(
      "curl reaches devnet *.localhost names without any DNS setup",
      async () => {
        const { stdout } = await run("curl", ["-sS", `${gw.urlFor(hostA)}name.txt`]).catch((e) => ({
          stdout: `curl failed: ${e}`,
        }));
        expect(stdout).toBe("pod-a\n");
      },
    );

    it("answers unknown and missing hosts with typed errors", async () => {
      const r = await request(`http://nothing-${uid}.localhost:${gw.address.port}/`);
      expect(r.status).toBe(404);
      expect(r.headers["x-tpod-error"]).toBe("UNKNOWN_HOST");
      expect(JSON.parse(r.body.toString())).toEqual({
        error: { code: "UNKNOWN_HOST", message: `no pod is served at nothing-${uid}.localhost` },
      });
      // HTTP/1.0 without a Host header. The client keeps its side open: nginx takes a half-close for a client that
      // left and answers nothing (the Node gateway alone would answer).
      const raw = await new Promise<string>((resolve, reject) => {
        const s = net.connect(gw.address.port, "127.0.0.1", () => s.write("GET / HTTP/1.0\r\n\r\n"));
        let out = "";
        s.on("data", (d: Buffer) => {
          out += d.toString();
        });
        s.on("end", () => resolve(out));
        s.on("error", reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 400 /);
      expect(raw).toContain('"code":"MISSING_HOST"');
    });

    it("rejects routes that collide with another pod's hostname or leave the base domain", () => {
      expect(() =>
        gw.setRoutes(pid("x"), [{ hostname: hostA, container: "web", containerPort: 8080 }], {}),
      ).toThrow(/already belongs to another pod/);
      expect(() =>
        gw.setRoutes(pid("x"), [{ hostname: "evil.example.com", container: "web", containerPort: 8080 }], {}),
      ).toThrow(/not under localhost/);
      expect(gw.routesOf(pid("x"))).toEqual([]);
    });

    it("sets X-Forwarded-* itself, drops hop-by-hop and client-forged forwarding headers", async () => {
      const r = await request(`${gw.urlFor(hostA)}cgi-bin/env`, {
        headers: {
          "x-forwarded-for": "6.6.6.6",
          "x-forwarded-host": "forged.example",
          connection: "keep-alive, x-private",
          "x-private": "connection-scoped",
          "proxy-authorization": "Basic c2VjcmV0",
          "x-end-to-end": "kept",
        },
      });
      expect(r.status).toBe(200);
      const env = r.body.toString();
      expect(env).toContain("HTTP_X_FORWARDED_FOR=127.0.0.1\n");
      expect(env).toContain(`HTTP_X_FORWARDED_HOST=${hostA}:${gw.address.port}\n`);
      expect(env).toContain("HTTP_X_FORWARDED_PROTO=http\n");
      expect(env).toContain("HTTP_X_END_TO_END=kept\n");
      expect(env).not.toContain("6.6.6.6");
      expect(env).not.toContain("forged.example");
      expect(env).not.toContain("HTTP_X_PRIVATE");
      expect(env).not.toContain("c2VjcmV0");
    });

    it("behind a trusted TLS terminator, appends to X-Forwarded-For and keeps its Proto/Host", async () => {
      const events: GatewayRequestEvent[] = [];
      const g = await gateway({
        trustForwarded: true,
        publicUrl: "https://{host}/",
        onRequest: (e) => events.push(e),
      });
      const host = g.hostnameFor(`trusted-${uid}`);
      g.setRoutes(a, [{ hostname: host, container: "web", containerPort: 8080 }], {});
      expect(g.urlFor(host)).toBe(`https://${host}/`);
      const r = await request(`http://127.0.0.1:${g.address.port}/cgi-bin/env`, {
        headers: {
          host,
          "x-forwarded-for": "203.0.113.7",
          "x-forwarded-proto": "https",
          "x-forwarded-host": host,
        },
      });
      const env = r.body.toString();
      expect(env).toContain("HTTP_X_FORWARDED_FOR=203.0.113.7, 127.0.0.1\n");
      expect(env).toContain("HTTP_X_FORWARDED_PROTO=https\n");
      expect(env).toContain(`HTTP_X_FORWARDED_HOST=${host}\n`);
      await request(`http://127.0.0.1:${g.address.port}/`, { headers: { host: `nope-${uid}.localhost` } });
      await waitFor("request events", async () => events.length >= 2);
      expect(events[0]).toMatchObject({ podId: a, host, method: "GET", status: 200, upgrade: false });
      expect(events[1]).toMatchObject({ podId: null, status: 404, error: "UNKNOWN_HOST" });
    });

    it("proxies a WebSocket both ways (busybox echo server in the pod)", async () => {
      // The WebSocket server is a second container of its own pod on port 9000.
      const w = pid("ws");
      await apply({
        podId: w,
        containers: [httpContainer(image, "echo", ["nc", "-ll", "-p", "9000", "-e", "/ws.sh"], 9000)],
      });
      const host = gw.hostnameFor(`ws-${uid}`);
      gw.setRoutes(w, [{ hostname: host, container: "echo", containerPort: 9000 }], {});
      const sock = await waitFor("websocket upgrade", () =>
        wsConnect(gw.urlFor(host)).catch(() => undefined),
      );
      const m1 = nextMessage(sock);
      sock.send("hello through the gateway");
      expect((await m1).data.toString()).toBe("hello through the gateway");
      const bin = randomBytes(300);
      const m2 = nextMessage(sock);
      sock.send(bin);
      const got = await m2;
      expect(got.binary).toBe(true);
      expect(Buffer.compare(got.data, bin)).toBe(0);
      const pong = new Promise<Buffer>((resolve) => sock.once("pong", resolve));
      sock.ping("are-you-there");
      expect((await pong).toString()).toBe("are-you-there");
      const closed = new Promise<number>((resolve) => sock.once("close", resolve));
      sock.close(1000);
      expect(await closed).toBe(1000);
      await waitFor("upgraded connection released", async () => gw.podState(w)?.active === 0);
    });

    it("streams responses: the first bytes arrive before the container has finished", async () => {
      // /cgi-bin/hold writes "first" and then blocks until /cgi-bin/release runs. A gateway that buffered whole
      // responses would never hand us "first", and this test would time out.
      const body = await new Promise<string>((resolve, reject) => {
        const req = http.get(
          `${gw.urlFor(hostA)}cgi-bin/hold`,
          { lookup: localhostLookup as never, agent: false },
          (r) => {
            let text = "";
            let released = false;
            r.on("data", (c: Buffer) => {
              text += c.toString();
              if (!released && text.includes("first")) {
                released = true;
                request(`${gw.urlFor(hostA)}cgi-bin/release`).catch(reject);
              }
            });
            r.on("end", () => resolve(text));
          },
        );
        req.on("error", reject);
      });
      expect(body).toBe("first\nsecond\n");
    });

    it("streams request bodies: the container answers a line before the upload is complete", async () => {
      const answer = await new Promise<string>((resolve, reject) => {
        const req = http.request(`${gw.urlFor(hostA)}cgi-bin/lines`, {
          method: "POST",
          lookup: localhostLookup as never,
          agent: false,
          headers: { "content-length": String("one\nend\n".length) },
        });
        req.on("response", (r) => {
          let text = "";
          r.on("data", (c: Buffer) => {
            text += c.toString();
            // Only after the container answered the first line do we send the rest of the body.
            if (text === "got one\n") req.end("end\n");
          });
          r.on("end", () => resolve(text));
        });
        req.on("error", reject);
        req.write("one\n");
      });
      expect(answer).toBe("got one\ngot end\n");
    });

    it("carries 64 MiB bodies both ways intact", async () => {
      const size = 64 * 1024 * 1024;
      // Upload from a generator (never in memory at once), hashed by the container.
      const hash = createHash("sha256");
      let sent = 0;
      const source = Readable.from(
        (function* () {
          while (sent < size) {
            const chunk = randomBytes(Math.min(1 << 20, size - sent));
            sent += chunk.length;
            hash.update(chunk);
            yield chunk;
          }
        })(),
      );
      const uploaded = await new Promise<string>((resolve, reject) => {
        const req = http.request(`${gw.urlFor(hostA)}cgi-bin/sha`, {
          method: "POST",
          lookup: localhostLookup as never,
          agent: false,
          headers: { "content-length": String(size), "content-type": "application/octet-stream" },
        });
        req.on("response", (r) => {
          let t = "";
          r.on("data", (c: Buffer) => {
            t += c.toString();
          });
          r.on("end", () => resolve(t.trim()));
        });
        req.on("error", reject);
        source.pipe(req);
      });
      expect(uploaded).toBe(hash.digest("hex"));

      // Download: a file of random bytes made in the container, hashed there and here.
      const made = await exec(a, "web", [
        "sh",
        "-c",
        "head -c 67108864 /dev/urandom > /www/big.bin && sha256sum /www/big.bin",
      ]);
      expect(made.code).toBe(0);
      const want = made.out.split(" ")[0];
      const got = await new Promise<{ hash: string; bytes: number }>((resolve, reject) => {
        http
          .get(`${gw.urlFor(hostA)}big.bin`, { lookup: localhostLookup as never, agent: false }, (r) => {
            const h = createHash("sha256");
            let bytes = 0;
            r.on("data", (c: Buffer) => {
              bytes += c.length;
              h.update(c);
            });
            r.on("end", () => resolve({ hash: h.digest("hex"), bytes }));
          })
          .on("error", reject);
      });
      expect(got.bytes).toBe(size);
      expect(got.hash).toBe(want);
    }, 120_000);

    it("refuses bodies over the limit: 413 when announced, cut off when chunked", async () => {
      const small = await gateway({ limits: { maxBodyBytes: 1024 } });
      const host = small.hostnameFor(`small-${uid}`);
      small.setRoutes(a, [{ hostname: host, container: "web", containerPort: 8080 }], {});
      const r = await request(`${small.urlFor(host)}cgi-bin/sha`, {
        method: "POST",
        body: Buffer.alloc(4096),
      });
      expect(r.status).toBe(413);
      expect(r.headers["x-tpod-error"]).toBe("BODY_TOO_LARGE");
      const ok = await request(`${small.urlFor(host)}cgi-bin/sha`, {
        method: "POST",
        body: Buffer.alloc(1000),
      });
      expect(ok.status).toBe(200);
      expect(ok.body.toString().trim()).toBe(createHash("sha256").update(Buffer.alloc(1000)).digest("hex"));
      // Chunked (no Content-Length): the gateway counts and stops at the limit.
      const chunked = await new Promise<number | string>((resolve) => {
        const req = http.request(`${small.urlFor(host)}cgi-bin/sha`, {
          method: "POST",
          lookup: localhostLookup as never,
          agent: false,
        });
        req.on("response", (resp) => {
          resp.resume();
          resolve(resp.statusCode ?? 0);
        });
        req.on("error", (e) => resolve((e as NodeJS.ErrnoException).code ?? "error"));
        req.write(Buffer.alloc(600));
        req.write(Buffer.alloc(600));
        req.end(Buffer.alloc(600));
      });
      expect([413, "ECONNRESET", "EPIPE"]).toContain(chunked);
    });

    it("other pods cannot reach the container port the gateway uses", async () => {
      const st = await engine.status(a);
      const ip = st.containers[0]!.ip!;
      expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      // The gateway (on the host) reaches it...
      expect((await request(`${gw.urlFor(hostA)}name.txt`)).body.toString()).toBe("pod-a\n");
      // ...pod B reaches its own server (so nc and the request work)...
      const own = await exec(b, "web", [
        "sh",
        "-c",
        "printf 'GET /name.txt HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 8080",
      ]);
      expect(own.out).toContain("pod-b");
      // ...and cannot reach pod A's address on pod A's network.
      const other = await exec(b, "web", [
        "sh",
        "-c",
        `printf 'GET /name.txt HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ip} 8080`,
      ]);
      expect(other.out).not.toContain("pod-a");
    });

    it("does not wake a pod without scale-to-zero: 503 POD_NOT_RUNNING", async () => {
      const p = pid("stopped");
      await apply(webPod(p, "stopped"));
      const host = gw.hostnameFor(`stopped-${uid}`);
      gw.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8080 }], {});
      await engine.stop(p);
      const r = await request(gw.urlFor(host));
      expect(r.status).toBe(503);
      expect(r.headers["x-tpod-error"]).toBe("POD_NOT_RUNNING");
      expect(r.headers["retry-after"]).toBe("5");
      expect((await engine.status(p)).running).toBe(false);
    });

    it("answers a pod stopped for lack of funds with 402 POD_STOPPED_FOR_FUNDS (not 404) until it runs again", async () => {
      const p = pid("broke");
      await apply(webPod(p, "broke"));
      const host = gw.hostnameFor(`broke-${uid}`);
      const routes = [{ hostname: host, container: "web", containerPort: 8080 }];
      gw.setRoutes(p, routes, {});
      await ready(`${gw.urlFor(host)}name.txt`);
      await gw.settled();
      // What billing does when the deposit runs out: the containers stop, the hostnames say why.
      await engine.stop(p);
      gw.stopRoutes(p, routes, "funds");
      await gw.settled();
      const r = await request(`${gw.urlFor(host)}name.txt`);
      expect(r.status).toBe(402);
      expect(r.headers["x-tpod-error"]).toBe("POD_STOPPED_FOR_FUNDS");
      const body = JSON.parse(r.body.toString());
      expect(body.error.code).toBe("POD_STOPPED_FOR_FUNDS");
      expect(body.error.message).toMatch(/ran out of funds.*tops up/);
      // The stopped pod keeps its hostname: nobody else can take it meanwhile.
      expect(() => gw.setRoutes(pid("thief"), routes, {})).toThrow(/already belongs to another pod/);
      // A closed channel: gone for good.
      gw.stopRoutes(p, routes, "closed");
      const closed = await request(`${gw.urlFor(host)}name.txt`);
      expect([closed.status, closed.headers["x-tpod-error"]]).toEqual([410, "POD_CHANNEL_CLOSED"]);
      // Topped up: running and routed again.
      await engine.start(p);
      gw.setRoutes(p, routes, {});
      await ready(`${gw.urlFor(host)}name.txt`);
      expect((await request(`${gw.urlFor(host)}name.txt`)).body.toString()).toBe("broke\n");
      // Removed: the hostname is unknown again.
      gw.removeRoutes(p);
      await gw.settled();
      expect((await request(`${gw.urlFor(host)}name.txt`)).status).toBe(404);
    });

    describe("scale to zero", () => {
      it("stops an idle pod, wakes it for the next requests (one wake for concurrent ones) and answers them", async () => {
        const p = pid("zero");
        await apply(webPod(p, "zero"));
        const { waker, calls } = countingWaker(engineWaker(engine));
        const g = await gateway({ waker });
        const host = g.hostnameFor(`zero-${uid}`);
        g.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8080 }], {
          scaleToZero: { idleMs: 1000 },
        });
        await ready(`${g.urlFor(host)}name.txt`);
        await waitFor(
          "idle pod stopped",
          async () => !(await engine.status(p)).running && g.podState(p)?.state === "asleep",
        );
        expect(calls.sleep).toBe(1);
        const st = await engine.status(p);
        expect(st.containers[0]!.state).toBe("exited");

        const replies = await Promise.all(
          Array.from({ length: 8 }, () => request(`${g.urlFor(host)}name.txt`)),
        );
        for (const r of replies) {
          expect(r.status, r.body.toString()).toBe(200);
          expect(r.body.toString()).toBe("zero\n");
        }
        expect(calls.wake).toBe(1);
        expect((await engine.status(p)).running).toBe(true);

        // Asleep again, then woken by a WebSocket-less plain request once more.
        await waitFor(
          "stopped again",
          async () => g.podState(p)?.state === "asleep" && !(await engine.status(p)).running,
        );
        const again = await request(`${g.urlFor(host)}name.txt`);
        expect(again.status).toBe(200);
        expect(calls.wake).toBe(2);
      }, 90_000);

      it("never stops a pod while a request is in flight or a WebSocket is open", async () => {
        const p = pid("busy");
        await apply({
          podId: p,
          containers: [
            httpContainer(image, "web", webCommand("busy"), 8080),
            httpContainer(image, "echo", ["nc", "-ll", "-p", "9000", "-e", "/ws.sh"], 9000),
          ],
          restart: { mode: "never" },
        });
        const g = await gateway();
        const host = g.hostnameFor(`busy-${uid}`);
        const wsHost = g.hostnameFor(`busy-ws-${uid}`);
        g.setRoutes(
          p,
          [
            { hostname: host, container: "web", containerPort: 8080 },
            { hostname: wsHost, container: "echo", containerPort: 9000 },
          ],
          { scaleToZero: { idleMs: 300 } },
        );
        await ready(`${g.urlFor(host)}name.txt`);

        // A request held open by the container for many idle periods.
        let text = "";
        const held = new Promise<number>((resolve, reject) => {
          http
            .get(`${g.urlFor(host)}cgi-bin/hold`, { lookup: localhostLookup as never, agent: false }, (r) => {
              r.on("data", (c: Buffer) => {
                text += c.toString();
              });
              r.on("end", () => resolve(r.statusCode ?? 0));
            })
            .on("error", reject);
        });
        await waitFor("held request streaming", async () => text.includes("first"));
        await new Promise((r) => setTimeout(r, 1500));
        expect(g.podState(p)?.state).toBe("awake");
        expect((await engine.status(p)).running).toBe(true);
        await run("podman", ["exec", engine.containerName(p, "web"), "sh", "-c", "echo go > /tmp/go"]);
        expect(await held).toBe(200);
        expect(text).toBe("first\nsecond\n");

        // An open WebSocket keeps it awake too.
        const sock = await waitFor("websocket", () => wsConnect(g.urlFor(wsHost)).catch(() => undefined));
        await new Promise((r) => setTimeout(r, 1500));
        expect(g.podState(p)?.state).toBe("awake");
        const m = nextMessage(sock);
        sock.send("still here");
        expect((await m).data.toString()).toBe("still here");
        sock.close();
        await waitFor(
          "asleep after the WebSocket closed",
          async () => g.podState(p)?.state === "asleep" && !(await engine.status(p)).running,
        );
      }, 90_000);

      it("waits for the engine to report healthy when the container has a health check", async () => {
        // The server listens at once but only has its content (and /healthz) a second later: a gateway that
        // forwarded on the first TCP connect would get 404 for name.txt.
        const p = pid("health");
        const script =
          "rm -f /www/name.txt /www/healthz; httpd -f -p 8080 -h /www & sleep 1; echo ready > /www/name.txt; touch /www/healthz; wait";
        await apply({
          podId: p,
          containers: [
            httpContainer(image, "web", ["sh", "-c", script], 8080, {
              healthCheck: {
                probe: { kind: "http", path: "/healthz", port: 8080 },
                intervalMs: 100,
                timeoutMs: 1000,
                retries: 3,
                startPeriodMs: 10_000,
              },
            }),
          ],
        });
        await engine.stop(p);
        const g = await gateway();
        const host = g.hostnameFor(`health-${uid}`);
        g.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8080 }], {
          scaleToZero: { idleMs: 60_000 },
        });
        const r = await request(`${g.urlFor(host)}name.txt`);
        expect(r.status).toBe(200);
        expect(r.body.toString()).toBe("ready\n");
        expect((await engine.status(p)).containers[0]!.health).toBe("healthy");
      });

      it("answers 503 with Retry-After when the pod fails to start", async () => {
        const p = pid("crash");
        await apply({
          podId: p,
          containers: [httpContainer(image, "web", ["sh", "-c", "exit 3"], 8080)],
          restart: { mode: "never" },
        });
        const g = await gateway();
        const host = g.hostnameFor(`crash-${uid}`);
        g.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8080 }], {
          scaleToZero: { idleMs: 60_000 },
        });
        await waitFor("crashed", async () => !(await engine.status(p)).running);
        const r = await request(g.urlFor(host));
        // Seen once while other suites churned pod networks: a 404 from some other busybox httpd. Say where.
        if (r.status !== 503)
          console.log("unexpected answer", r.status, r.body.toString(), (await run("ip", ["route"])).stdout);
        expect(r.status, r.body.toString()).toBe(503);
        expect(r.headers["x-tpod-error"]).toBe("POD_START_FAILED");
        expect(r.headers["retry-after"]).toBe("5");
        expect(JSON.parse(r.body.toString()).error.message).toMatch(
          /container web is exited \(exit code 3\)/,
        );
      });

      it("answers 503 and leaves the pod stopped when the daemon's waker refuses", async () => {
        const p = pid("unpaid");
        await apply(webPod(p, "unpaid"));
        await engine.stop(p);
        const refusing: PodWaker = {
          wake: async () => {
            throw new Error("pod stopped for non-payment");
          },
          sleep: (id) => engine.stop(id),
        };
        const g = await gateway({ waker: refusing });
        const host = g.hostnameFor(`unpaid-${uid}`);
        g.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8080 }], {
          scaleToZero: { idleMs: 60_000 },
        });
        const r = await request(g.urlFor(host));
        expect(r.status).toBe(503);
        expect(JSON.parse(r.body.toString()).error).toEqual({
          code: "POD_START_FAILED",
          message: "the pod could not be started: pod stopped for non-payment",
        });
        expect((await engine.status(p)).running).toBe(false);
      });

      it("answers 504 with Retry-After when the pod never listens within the wake timeout", async () => {
        const p = pid("deaf");
        await apply({
          podId: p,
          containers: [httpContainer(image, "web", ["sleep", "3600"], 8080)],
        });
        await engine.stop(p);
        const g = await gateway({ limits: { wakeTimeoutMs: 1500, retryAfterSeconds: 7 } });
        const host = g.hostnameFor(`deaf-${uid}`);
        g.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8080 }], {
          scaleToZero: { idleMs: 60_000 },
        });
        const r = await request(g.urlFor(host));
        expect(r.status).toBe(504);
        expect(r.headers["x-tpod-error"]).toBe("POD_START_TIMEOUT");
        expect(r.headers["retry-after"]).toBe("7");
      }, 120000);
    });
  },
);
