// End to end: `tpod deploy docker-compose.yml` of a Compose project with two build: services (a Containerfile
// by the string form; a Dockerfile by the long form with dockerfile, args and a multi-stage target) and a UDP
// service, on the devnet (real anvil, Helia, libp2p, Podman, gateway). The base image is built from scratch into
// the local store (busybox and Debian's perl, nothing pulled); the pod then answers on HTTP, TCP and UDP.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { existsSync } from "node:fs";
import { mkdir, realpath, writeFile } from "node:fs/promises";
import net from "node:net";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliDevnet, cli, getUrl, startCliDevnet } from "../../../test-support/cli-devnet.js";
import { haveTools, waitFor } from "../../../test-support/provider-world.js";

const exec = promisify(execFile);
const HAVE = haveTools && existsSync("/usr/bin/perl");
if (!HAVE) console.warn("SKIP: compose deploy tests need podman, buildah, busybox-static and perl");

const uid = randomBytes(4).toString("hex");
const BASE = `localhost/tpod-compose-base-${uid}:latest`;
const PROJECT = `cproj-${uid}`;
let tmp: string;
let world: CliDevnet;
const built: string[] = [];

/** busybox (with its applets) and perl with exactly the libraries ldd lists and perl-base's modules. */
async function buildBase(): Promise<void> {
  const ctr = (await exec("buildah", ["from", "scratch"])).stdout.trim();
  try {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await exec("buildah", ["copy", ctr, "/usr/bin/perl", "/usr/bin/perl"]);
    const ldd = (await exec("ldd", ["/usr/bin/perl"])).stdout;
    for (const m of ldd.matchAll(/(\/\S+\.so[.\d]*)/g)) {
      const lib = m[1]!;
      await exec("buildah", ["copy", ctr, await realpath(lib), lib]);
    }
    const mods = "/usr/lib/x86_64-linux-gnu/perl-base";
    await exec("buildah", ["copy", ctr, mods, mods]);
    await exec("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await exec("buildah", ["commit", "-q", ctr, BASE]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
}

/** The Compose project: its files, as a developer would have them next to docker-compose.yml. */
async function writeProject(dir: string): Promise<string> {
  const files: Record<string, string> = {
    // String form: the context's Containerfile.
    "web/Containerfile": `FROM ${BASE}\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n`,
    "web/index.html": "hello over http from a compose build\n",
    // Long form: a named Dockerfile, build args (one from .env through interpolation), a multi-stage target.
    // (The Containerfile's own ${BASE_IMAGE} references: plain strings, not templates.)
    "echo/Dockerfile.tcp": [
      "ARG BASE_IMAGE",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Containerfile ARG reference
      "FROM ${BASE_IMAGE} AS script",
      "ARG GREETING=unset",
      `RUN printf '#!/bin/sh\\necho "%s over tcp"\\n' "$GREETING" > /greet.sh && chmod +x /greet.sh`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Containerfile ARG reference
      "FROM ${BASE_IMAGE} AS final",
      "COPY --from=script /greet.sh /greet.sh",
      'CMD ["nc", "-ll", "-p", "7000", "-e", "/greet.sh"]',
      "FROM final AS unused",
      'CMD ["false"]',
      "",
    ].join("\n"),
    ".env": "GREETING=hello\n",
    "docker-compose.yml": `name: ${PROJECT}
services:
  web:
    build: ./web
    ports:
      - "8080:8080"
  echo:
    build:
      context: echo
      dockerfile: Dockerfile.tcp
      target: final
      args:
        BASE_IMAGE: ${BASE}
        GREETING: \${GREETING}
    ports:
      - "7000:7000"
    depends_on: [web]
  dns:
    image: ${BASE}
    command:
      - perl
      - -MIO::Socket::INET
      - -e
      - '$$s = IO::Socket::INET->new(LocalPort => 5054, Proto => "udp") or die "bind: $$!"; print "udp up\\n"; $$| = 1; while (1) { $$s->recv($$m, 1500); $$s->send("pong $$m") }'
    ports:
      - "5054:5054/udp"
    mem_limit: 64m
`,
  };
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return join(dir, "docker-compose.yml");
}

/** The body of a 200 through the gateway, false for anything else. */
function get(url: string): Promise<string | false> {
  return getUrl(url, 5000).then(
    (r) => r.status === 200 && r.body,
    () => false,
  );
}

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(address.slice(i + 1)) };
}

function tcpLine(address: string): Promise<string | false> {
  const { host, port } = hostPort(address);
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let data = "";
    s.setTimeout(3000, () => s.destroy());
    s.on("data", (d) => {
      data += d.toString("utf8");
    });
    s.on("close", () => resolve(data.length > 0 && data));
    s.on("error", () => resolve(false));
  });
}

function udpRoundTrip(address: string, message: string): Promise<string | false> {
  const { host, port } = hostPort(address);
  return new Promise((resolve) => {
    const s = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
    const timer = setTimeout(() => {
      s.close();
      resolve(false);
    }, 1000);
    s.on("message", (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m.toString("utf8"));
    });
    s.send(message, port, host);
  });
}

beforeAll(async () => {
  if (!HAVE) return;
  world = await startCliDevnet({
    tmpPrefix: "tpod-compose-test-",
    engineOwner: `cd${uid}`,
    alongside: [buildBase()],
  });
  ({ tmp } = world);
}, 240_000);

afterAll(async () => {
  if (!HAVE) return;
  await world?.stop();
  for (const image of [...built, BASE]) await exec("podman", ["rmi", "-f", image]).catch(() => {});
}, 120_000);

describe.skipIf(!HAVE)("tpod deploy of a Compose file", () => {
  it("builds both build: services, deploys, and the pod answers on HTTP, TCP and UDP", async () => {
    const file = await writeProject(join(tmp, "project"));
    const d = await cli(["deploy", file, "--json"]);
    built.push(`${PROJECT}-web`, `${PROJECT}-echo`);
    expect(d.err).toContain("depends_on: dropped");
    expect(d.code, d.err).toBe(0);
    // Build progress is shown, service by service.
    expect(d.err).toContain(`building ${PROJECT}-web for service web`);
    expect(d.err).toMatch(/echo: (\[\d\/\d\] )?STEP \d+\/\d+: FROM/);
    const r = JSON.parse(d.out) as {
      podId: string;
      endpoints: {
        http: string[];
        tcp: { container: string; port: number; address: string }[];
        udp: { container: string; port: number; address: string }[];
      };
    };
    expect(r.endpoints.http).toHaveLength(1);
    expect(r.endpoints.tcp.map((t) => [t.container, t.port])).toEqual([["echo", 7000]]);
    expect(r.endpoints.udp.map((u) => [u.container, u.port])).toEqual([["dns", 5054]]);

    expect(await waitFor("http", () => get(r.endpoints.http[0]!), 60_000)).toBe(
      "hello over http from a compose build\n",
    );
    // The build arg came from .env through interpolation, and the target stage ran (not the later "unused").
    expect(await waitFor("tcp", () => tcpLine(r.endpoints.tcp[0]!.address), 60_000)).toBe("hello over tcp\n");
    expect(await waitFor("udp", () => udpRoundTrip(r.endpoints.udp[0]!.address, "ping"), 60_000)).toBe(
      "pong ping",
    );

    // tpod status shows the udp endpoint too.
    const st = await cli(["status", r.podId]);
    expect(st.code, st.err).toBe(0);
    expect(st.out).toContain(`udp  dns:5054 → ${r.endpoints.udp[0]!.address}`);
    const del = await cli(["delete", r.podId]);
    expect(del.code, del.err).toBe(0);
  }, 300_000);

  it("names a missing base image before building, and pulls nothing", async () => {
    const dir = join(tmp, "missing");
    await mkdir(join(dir, "app"), { recursive: true });
    const ghost = `localhost/tpod-no-such-base-${uid}:1`;
    await writeFile(join(dir, "app/Containerfile"), `FROM ${ghost}\nCMD ["true"]\n`);
    await writeFile(join(dir, "compose.yaml"), "services:\n  app:\n    build: ./app\n");
    const r = await cli(["manifest", "import", join(dir, "compose.yaml")]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`BASE_IMAGE_MISSING: service "app": base image ${ghost}`);
    expect(r.err).toContain("Containerfile:1");
    expect(r.out).toBe("");
    const noBuild = await cli(["manifest", "import", "--no-build", join(dir, "compose.yaml")]);
    expect(noBuild.code, noBuild.err).toBe(0);
    expect(noBuild.out).toContain("image: missing-app");
  });
});
