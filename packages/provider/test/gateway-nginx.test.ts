// The native data plane: the nginx config as real nginx reads it (and what it refuses to write), and, with real
// Podman, which requests nginx serves straight from the container, how it falls back to the Node gateway when
// a container moves, and that it comes back by itself when nginx dies.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderNginxConfig } from "../src/gateway/nginx/config.js";
import {
  DEFAULT_GATEWAY_LIMITS,
  type Gateway,
  type GatewayRequestEvent,
  type PodmanEngine,
  type PodSpec,
} from "../src/index.js";
import {
  GatewayTestHarness,
  httpContainer,
  NGINX,
  request,
  waitFor,
  webCommand,
} from "./gateway-fixtures.js";

const exec = promisify(execFile);
const haveTools = ["/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox"].every((p) => existsSync(p));
const uid = randomBytes(4).toString("hex");

function configFor(dir: string, routes: Parameters<typeof renderNginxConfig>[0]["routes"]) {
  return {
    generation: 7,
    dir,
    listen: { host: "127.0.0.1", port: 18080 },
    nodeSocket: `${dir}/node.sock`,
    controlSocket: `${dir}/control.sock`,
    accessLog: `${dir}/access.log`,
    workers: 1 as const,
    dropPrivileges: false,
    trustForwarded: false,
    limits: DEFAULT_GATEWAY_LIMITS,
    routes,
  };
}

describe.skipIf(!NGINX)("nginx config", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "tpod-nginx-conf-"));
    await mkdir(path.join(dir, "tmp"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("is accepted by nginx -t, with direct and Node-routed hosts", async () => {
    const conf = renderNginxConfig(
      configFor(dir, [
        { hostname: "shop-1.localhost", podId: "pod-1", upstream: { host: "10.88.0.5", port: 8080 } },
        { hostname: "api-1.localhost", podId: "pod-1", upstream: { host: "10.88.0.5", port: 8080 } },
        { hostname: "six.localhost", podId: "pod-2", upstream: { host: "fd00::5", port: 80 } },
        { hostname: "asleep.localhost", podId: "pod-3", upstream: null },
      ]),
    );
    // Two hosts on one container share one upstream (one keep-alive pool); a sleeping pod has none.
    expect(conf.match(/^ {2}upstream pod\d+ \{/gm)).toHaveLength(2);
    expect(conf).toContain("server [fd00::5]:80 max_fails=0;");
    expect(conf).toMatch(/asleep\.localhost pod-3;/);
    expect(conf).not.toMatch(/asleep\.localhost pod\d/);
    const file = path.join(dir, "nginx.conf");
    await writeFile(file, conf);
    const r = await exec(NGINX!, ["-t", "-p", dir, "-c", file, "-e", "stderr"]).catch(
      (e: { stderr?: string }) => ({ stderr: `FAILED ${e.stderr}` }),
    );
    expect(r.stderr).toContain("syntax is ok");
    expect(r.stderr).not.toContain("FAILED");
  });

  it("refuses to write anything that could change the config's meaning", () => {
    const good = { hostname: "a.localhost", podId: "pod-1", upstream: { host: "10.0.0.1", port: 80 } };
    const bad = [
      { ...good, hostname: "a.localhost; include /etc/passwd" },
      { ...good, hostname: "a.localhost\n" },
      { ...good, podId: "pod-1;" },
      { ...good, upstream: { host: "10.0.0.1; server evil", port: 80 } },
      { ...good, upstream: { host: "example.com", port: 80 } },
      { ...good, upstream: { host: "10.0.0.1", port: 70000 } },
    ];
    expect(() => renderNginxConfig(configFor(dir, [good]))).not.toThrow();
    for (const r of bad) expect(() => renderNginxConfig(configFor(dir, [r])), JSON.stringify(r)).toThrow();
    expect(() => renderNginxConfig({ ...configFor(dir, []), accessLog: '/tmp/x"; evil' })).toThrow(/path/);
    expect(() =>
      renderNginxConfig({ ...configFor(dir, []), listen: { host: "0.0.0.0;", port: 80 } }),
    ).toThrow(/listen/);
    // "::" means both families, as it does for Node.
    expect(renderNginxConfig({ ...configFor(dir, []), listen: { host: "::", port: 80 } })).toContain(
      "listen [::]:80 ipv6only=off reuseport",
    );
  });
});

describe.skipIf(!haveTools || !NGINX)("nginx data plane with real Podman", () => {
  const harness = new GatewayTestHarness("gwnginx", uid, { owner: `x${uid}`, hostFirewall: true });
  const events: GatewayRequestEvent[] = [];
  const podId = `ngx-${uid}`;
  let engine: PodmanEngine;
  let gw: Gateway;
  let host: string;

  const webPod = (name: string): PodSpec => ({
    podId,
    containers: [httpContainer(harness.image, "web", webCommand(name), 8080)],
    restart: { mode: "never" },
  });
  const nameTxt = async () => (await request(`${gw.urlFor(host)}name.txt`)).body.toString().trim();

  beforeAll(async () => {
    engine = await harness.open();
    await harness.apply(webPod("first"));
    gw = await harness.gateway({ onRequest: (e) => events.push(e) }, "nginx");
    host = gw.hostnameFor(`n-${uid}`);
    gw.setRoutes(podId, [{ hostname: host, container: "web", containerPort: 8080 }], {});
  }, 120_000);
  afterAll(() => harness.close(), 120_000);

  it("serves an awake pod's GETs straight from the container; bodies and unknown hosts go through Node", async () => {
    expect(gw.dataPlane).toBe("nginx");
    // The first request finds the pod through the Node gateway, which then hands the host to nginx.
    expect(await waitFor("the pod", () => nameTxt().catch(() => undefined))).toBe("first");
    await gw.settled();
    // The hand-over is asynchronous: wait until nginx's config routes the host before counting direct requests.
    await waitFor("nginx.conf routing the host", async () =>
      (await readFile(path.join(nginxDir(), "nginx.conf"), "utf8")).includes(host),
    );
    events.length = 0;
    for (let i = 0; i < 5; i++) expect(await nameTxt()).toBe("first");
    const post = await request(`${gw.urlFor(host)}cgi-bin/sha`, { method: "POST", body: "abc" });
    expect(post.status).toBe(200);
    // nginx's own requests reach the daemon from its access log (flushed every 2 s). nginx reloads after its
    // config is written, so the first GETs may still have gone through Node: keep asking until five came direct.
    const direct = await waitFor("nginx's access log", async () => {
      const d = events.filter((e) => e.direct);
      if (d.length >= 5) return d;
      expect(await nameTxt()).toBe("first");
      return undefined;
    });
    expect(direct.slice(0, 5).every((e) => e.podId === podId && e.status === 200 && e.method === "GET")).toBe(
      true,
    );
    expect(direct.some((e) => e.method === "POST")).toBe(false);
    expect(events.filter((e) => !e.direct && e.method === "POST")).toMatchObject([{ podId, status: 200 }]);
  }, 120_000); // a pod start and nginx reloads under a loaded 2-core machine can pass the 30 s default

  it("when the container moves, requests still arrive (through Node) and the new address goes to nginx", async () => {
    const before = (await engine.status(podId)).containers[0]!.ip;
    // Replaced behind the gateway's back (no setRoutes): nginx still holds the old address.
    await harness.apply(webPod("second"));
    const after = (await engine.status(podId)).containers[0]!.ip;
    expect(await waitFor("the new container", async () => (await nameTxt()) === "second")).toBe(true);
    await gw.settled();
    // The request through Node schedules the address refresh; nginx's config is rewritten when it lands.
    const newAddress = `server ${after}:8080 max_fails=0;`;
    const conf = await waitFor("nginx.conf with the new address", async () => {
      const text = await readFile(path.join(nginxDir(), "nginx.conf"), "utf8");
      return text.includes(newAddress) ? text : undefined;
    });
    expect(conf).toContain(newAddress);
    if (before !== after) expect(conf).not.toContain(`server ${before}:8080`);
  });

  it("restarts nginx when it dies, on the same port", async () => {
    const pid = Number((await readFile(path.join(nginxDir(), "nginx.pid"), "utf8")).trim());
    process.kill(pid, "SIGKILL");
    await waitFor("nginx gone", async () => !existsSync(`/proc/${pid}/cmdline`) || undefined);
    expect(await waitFor("nginx back", () => nameTxt().catch(() => undefined), 20_000)).toBe("second");
    const again = Number((await readFile(path.join(nginxDir(), "nginx.pid"), "utf8")).trim());
    expect(again).not.toBe(pid);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "keeps the Node gateway's socket to root and nginx's workers (nogroup)",
    async () => {
      const st = await stat(path.join(nginxDir(), "node.sock"));
      expect(st.mode & 0o777).toBe(0o660);
      expect(st.uid).toBe(0);
      expect(st.gid).toBe(65534);
      const d = await stat(nginxDir());
      expect(d.mode & 0o007).toBe(0);
    },
  );

  /** The nginx directory of `gw`: the one whose nginx.conf listens on its port. */
  function nginxDir(): string {
    const dirs = harness.nginxDirs;
    if (dirs.length !== 1) throw new Error(`expected one nginx gateway, found ${dirs.length}`);
    return dirs[0]!;
  }
});
