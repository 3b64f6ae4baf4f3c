// The gateway's upstream connection pools against real Podman pods running a keep-alive server (busybox nc +
// /ka.sh, which answers with its connection's pid): connections are reused and bounded per pod, and whatever
// the gateway knew about a pod's addresses is dropped when its routes are set again (an update), so no request
// reaches an old container, not even one whose address lookup began before the update.
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import http from "node:http";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Engine, localhostLookup, type PodmanEngine, type PodSpec } from "../src/index.js";
import { GatewayTestHarness, httpContainer, request, run, waitFor } from "./gateway-fixtures.js";

const haveTools = ["/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox"].every((p) => existsSync(p));
const uid = randomBytes(4).toString("hex");
const pid = (name: string) => `gp${name}-${uid}`;

const harness = new GatewayTestHarness("gwpool", uid, { owner: `p${uid}` });
const { image, apply, gateway } = harness;
let engine: PodmanEngine;

/** A pod whose container `web` serves keep-alive HTTP on 8081 and answers "<name> <connection pid>". */
function kaPod(podId: string, name: string): PodSpec {
  return {
    podId,
    containers: [
      httpContainer(image, "web", ["sh", "-c", "mkdir -p /tmp && exec nc -ll -p 8081 -e /ka.sh"], 8081, {
        env: { NAME: name },
      }),
    ],
    restart: { mode: "never" },
  };
}

/** GET through the gateway on a fresh client connection: "<name> <upstream connection pid>". */
async function who(url: string): Promise<{ name: string; conn: string }> {
  const r = await request(url);
  expect(r.status, r.body.toString()).toBe(200);
  const [name, conn] = r.body.toString().split(" ");
  return { name: name!, conn: conn! };
}

async function connectionsSeen(podId: string): Promise<number> {
  const { stdout } = await run("podman", [
    "exec",
    engine.containerName(podId, "web"),
    "cat",
    "/tmp/ka-conns",
  ]);
  return stdout.trim().split("\n").filter(Boolean).length;
}

describe.skipIf(!haveTools)("gateway upstream pools with real Podman", () => {
  beforeAll(async () => {
    engine = await harness.open();
  }, 120_000);

  afterAll(() => harness.close(), 120_000);

  it("reuses one upstream connection for sequential requests from different client connections", async () => {
    const p = pid("reuse");
    await apply(kaPod(p, "one"));
    const gw = await gateway();
    const host = gw.hostnameFor(`reuse-${uid}`);
    gw.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8081 }], {});
    const first = await waitFor("keep-alive pod", () => who(gw.urlFor(host)).catch(() => undefined));
    const seenBefore = await connectionsSeen(p);
    const conns = new Set([first.conn]);
    for (let i = 0; i < 10; i++) conns.add((await who(gw.urlFor(host))).conn);
    // Ten client connections to the gateway, one connection from the gateway to the container.
    expect(conns.size).toBe(1);
    expect(await connectionsSeen(p)).toBe(seenBefore);
  });

  it("holds at most maxSocketsPerPod connections to a pod; requests beyond wait for one", async () => {
    const p = pid("bound");
    await apply(kaPod(p, "bound"));
    const gw = await gateway({ limits: { maxSocketsPerPod: 2 } });
    const host = gw.hostnameFor(`bound-${uid}`);
    gw.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8081 }], {});
    await waitFor("keep-alive pod", () => who(gw.urlFor(host)).catch(() => undefined));
    // Eight requests at once, each held 300 ms by the container.
    const answers = await Promise.all(Array.from({ length: 8 }, () => who(`${gw.urlFor(host)}slow`)));
    expect(answers.every((a) => a.name === "bound")).toBe(true);
    expect(new Set(answers.map((a) => a.conn)).size).toBeLessThanOrEqual(2);
    expect(await connectionsSeen(p)).toBeLessThanOrEqual(2);
  });

  it("after an update, no request reaches the old container: pooled connections and a stale lookup are dropped", async () => {
    const p = pid("upd");
    await apply(kaPod(p, "old"));
    // The engine the gateway sees: real, but the first status() after `hold` is set answers only once released,
    // with what it saw before (a lookup that began before the update).
    let hold: Promise<void> | null = null;
    let release = () => {};
    let held = () => {};
    const heldNow = new Promise<void>((r) => {
      held = r;
    });
    const gated = new Proxy(engine, {
      get(target, prop, receiver) {
        if (prop !== "status") return Reflect.get(target, prop, receiver);
        return async (id: string) => {
          const s = await target.status(id);
          if (hold) {
            const h = hold;
            hold = null;
            held();
            await h;
          }
          return s;
        };
      },
    }) as Engine;
    const gw = await gateway({ engine: gated });
    const host = gw.hostnameFor(`upd-${uid}`);
    const routes = [{ hostname: host, container: "web", containerPort: 8081 }];
    gw.setRoutes(p, routes, {});
    const before = await waitFor("old pod", () => who(gw.urlFor(host)).catch(() => undefined));
    expect(before.name).toBe("old");
    expect((await who(gw.urlFor(host))).conn).toBe(before.conn); // pooled

    // 1. The daemon's update: new containers, routes set again. The next request uses a new lookup and a new
    //    connection, and reaches the new container.
    await apply(kaPod(p, "new"));
    gw.setRoutes(p, routes, {});
    const after = await waitFor("new pod", () => who(gw.urlFor(host)).catch(() => undefined));
    // (pids are per container: only the name tells the containers apart)
    expect(after.name).toBe("new");

    // 2. A lookup that began before the next update and finishes after it must not be used.
    gw.setRoutes(p, routes, {}); // forget the address: the next request looks up
    hold = new Promise<void>((r) => {
      release = r;
    });
    const pending = who(gw.urlFor(host));
    await heldNow; // the lookup has the "new" container's status in hand
    await apply(kaPod(p, "newer"));
    gw.setRoutes(p, routes, {});
    release();
    const answer = await pending;
    expect(answer.name).toBe("newer");
    for (let i = 0; i < 3; i++) expect((await who(gw.urlFor(host))).name).toBe("newer");
  });

  it("carries a chunked upload intact while the request waits for its pooled connection", async () => {
    const p = pid("chunk");
    await apply({
      podId: p,
      containers: [
        httpContainer(image, "web", ["sh", "-c", "mkdir -p /tmp && exec nc -ll -p 8082 -e /upload.sh"], 8082),
      ],
      restart: { mode: "never" },
    });
    // One connection per pod, held by a first upload: the second is queued in the pool with its first chunks
    // already sent by the client, and must not lose them.
    const gw = await gateway({ limits: { maxSocketsPerPod: 1 } });
    const host = gw.hostnameFor(`chunk-${uid}`);
    gw.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8082 }], {});
    const upload = (chunks: Buffer[]) =>
      new Promise<string>((resolve, reject) => {
        const req = http.request(gw.urlFor(host), {
          method: "POST",
          lookup: localhostLookup as never,
          agent: false,
          // Chunked even when the whole body is written before the head leaves (Node would count it then).
          headers: { "transfer-encoding": "chunked" },
        });
        req.on("response", (r) => {
          let t = "";
          r.on("data", (c: Buffer) => {
            t += c.toString();
          });
          r.on("end", () => resolve(t.trim()));
        });
        req.on("error", reject);
        Readable.from(chunks).pipe(req);
      });
    const sha = (chunks: Buffer[]) => createHash("sha256").update(Buffer.concat(chunks)).digest("hex");
    await waitFor("chunked pod", () => upload([Buffer.from("x")]).catch(() => undefined));
    const one = Array.from({ length: 16 }, () => randomBytes(4096));
    const two = Array.from({ length: 16 }, () => randomBytes(4096));
    const [a, b] = await Promise.all([upload(one), upload(two)]);
    expect(a).toBe(sha(one));
    expect(b).toBe(sha(two));
  }, 60_000);

  it("drops a pod's pooled connections when its routes are removed", async () => {
    const p = pid("rm");
    await apply(kaPod(p, "gone"));
    const gw = await gateway();
    const host = gw.hostnameFor(`rm-${uid}`);
    gw.setRoutes(p, [{ hostname: host, container: "web", containerPort: 8081 }], {});
    await waitFor("pod", () => who(gw.urlFor(host)).catch(() => undefined));
    // The container's side of the pooled connection: its shell is alive while the connection is open.
    const shells = async () =>
      (await run("podman", ["exec", engine.containerName(p, "web"), "ps", "-o", "pid,args"])).stdout
        .split("\n")
        .filter((l) => l.includes("ka.sh") && !l.includes("nc -ll")).length;
    expect(await shells()).toBeGreaterThanOrEqual(1);
    gw.removeRoutes(p);
    expect((await request(gw.urlFor(host))).status).toBe(404);
    await waitFor("pooled connection closed", async () => (await shells()) === 0, 10_000);
  });
});
