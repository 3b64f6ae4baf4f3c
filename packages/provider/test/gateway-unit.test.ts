// Pieces of the gateway that need no containers: Host parsing, hop-by-hop filtering, *.localhost lookup,
// route validation. Everything runs for real (a local HTTP server for the lookup).
import http, { type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import {
  createGateway,
  type Engine,
  endToEnd,
  type Gateway,
  GatewayError,
  hostOf,
  isLocalhostName,
  localhostLookup,
} from "../src/index.js";

const reqWithHost = (host?: string) => ({ headers: host === undefined ? {} : { host } }) as IncomingMessage;

describe("gateway helpers", () => {
  it("parses the Host header: case, port, trailing dot, malformed values", () => {
    expect(hostOf(reqWithHost("Shop.LocalHost:8080"))).toBe("shop.localhost");
    expect(hostOf(reqWithHost("shop.localhost."))).toBe("shop.localhost");
    expect(hostOf(reqWithHost("shop.localhost:http"))).toBeNull();
    expect(hostOf(reqWithHost("[::1]:80"))).toBeNull();
    expect(hostOf(reqWithHost(""))).toBeNull();
    expect(hostOf(reqWithHost())).toBeNull();
  });

  it("drops hop-by-hop headers, including those named in Connection, and keeps the rest in order", () => {
    const raw = [
      "Host",
      "a.localhost",
      "Connection",
      "keep-alive, X-Hop",
      "X-Hop",
      "1",
      "Keep-Alive",
      "timeout=5",
      "Transfer-Encoding",
      "chunked",
      "Proxy-Authorization",
      "Basic eA==",
      "TE",
      "trailers",
      "Set-Cookie",
      "a=1",
      "Set-Cookie",
      "b=2",
      "Upgrade",
      "websocket",
    ];
    expect(endToEnd(raw)).toEqual(["Host", "a.localhost", "Set-Cookie", "a=1", "Set-Cookie", "b=2"]);
  });

  it("resolves *.localhost to loopback and leaves other names to the system resolver", async () => {
    expect(isLocalhostName("a.b.LOCALHOST.")).toBe(true);
    expect(isLocalhostName("localhost.example")).toBe(false);
    const server = http.createServer((req, res) => res.end(req.headers.host));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get(`http://deep.name.localhost:${port}/`, { lookup: localhostLookup as never }, (res) => {
          let t = "";
          res.on("data", (c) => {
            t += c;
          });
          res.on("end", () => resolve(t));
        })
        .on("error", reject);
    });
    server.close();
    expect(body).toBe(`deep.name.localhost:${port}`);
    const all = await new Promise<unknown>((resolve) =>
      localhostLookup("x.localhost", { all: true }, (_e, addrs) => resolve(addrs)),
    );
    expect(all).toEqual([{ address: "127.0.0.1", family: 4 }]);
  });
});

describe("route validation", () => {
  // No engine call happens while only routes are set: an engine that throws proves it.
  const engine = new Proxy({}, { get: () => () => Promise.reject(new Error("not called")) }) as Engine;
  let gw: Gateway;
  afterAll(() => gw?.close());

  it("accepts valid routes and rejects bad hostnames, containers, ports and idle times", async () => {
    gw = await createGateway({ engine, listen: { host: "127.0.0.1", port: 0 }, baseDomain: "localhost" });
    expect(gw.hostnameFor("Shop-1")).toBe("shop-1.localhost");
    expect(() => gw.hostnameFor("a.b")).toThrow(GatewayError);
    gw.setRoutes("pod-1", [{ hostname: "Shop-1.localhost", container: "web", containerPort: 80 }], {
      scaleToZero: { idleMs: 60_000 },
    });
    expect(gw.routesOf("pod-1")).toEqual([
      { hostname: "shop-1.localhost", container: "web", containerPort: 80 },
    ]);
    expect(gw.podState("pod-1")).toMatchObject({
      state: "unknown",
      active: 0,
      scaleToZero: { idleMs: 60_000 },
    });
    const bad: [string, string, number, number | undefined, RegExp][] = [
      ["-x.localhost", "web", 80, undefined, /invalid hostname/],
      ["x.example.com", "web", 80, undefined, /not under localhost/],
      ["x.localhost", "Web", 80, undefined, /invalid container/],
      ["x.localhost", "web", 0, undefined, /invalid port/],
      ["x.localhost", "web", 70000, undefined, /invalid port/],
      ["x.localhost", "web", 80, 0, /invalid idle time/],
      ["x.localhost", "web", 80, 1.5, /invalid idle time/],
    ];
    for (const [hostname, container, containerPort, idleMs, msg] of bad) {
      expect(() =>
        gw.setRoutes(
          "pod-2",
          [{ hostname, container, containerPort }],
          idleMs === undefined ? {} : { scaleToZero: { idleMs } },
        ),
      ).toThrow(msg);
    }
    expect(() =>
      gw.setRoutes("pod-2", [{ hostname: "shop-1.localhost", container: "web", containerPort: 80 }], {}),
    ).toThrow(/already belongs to another pod/);
    expect(() => gw.setRoutes("Bad_Pod", [], {})).toThrow();
    expect(gw.routesOf("pod-2")).toEqual([]);
    // Replacing routes frees the old hostname; an empty list removes the pod.
    gw.setRoutes("pod-1", [{ hostname: "shop-2.localhost", container: "web", containerPort: 80 }], {});
    gw.setRoutes("pod-2", [{ hostname: "shop-1.localhost", container: "web", containerPort: 80 }], {});
    gw.setRoutes("pod-1", [], {});
    expect(gw.podState("pod-1")).toBeUndefined();
    gw.removeRoutes("pod-2");
    expect(gw.routesOf("pod-2")).toEqual([]);
  });
});
