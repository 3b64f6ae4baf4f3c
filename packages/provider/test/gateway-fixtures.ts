// Shared by the gateway tests and the gateway benchmark's style: a busybox image built locally with buildah
// (scratch + /bin/busybox), carrying CGI scripts for the proxy tests and a WebSocket echo server in ash.
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { ContainerSpec } from "../src/engine/types.js";
import {
  createGateway,
  findNginx,
  type Gateway,
  localhostLookup,
  nginxDirFor,
  PodmanEngine,
  type PodSpec,
} from "../src/index.js";

/** Who holds the gateway's port: the Node gateway alone, or nginx in front of it (when installed). */
export type DataPlane = "node" | "nginx";
export const NGINX = findNginx();
export const DATA_PLANES: DataPlane[] = NGINX ? ["node", "nginx"] : ["node"];

export const run = promisify(execFile);

const CGI = {
  // Request environment as the container saw it (headers become HTTP_* variables).
  env: `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
env
`,
  // Hash of the request body.
  sha: `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
sha256sum | cut -d' ' -f1
`,
  // Sends "first", then waits for /cgi-bin/release before "second": only a streaming proxy delivers "first".
  hold: `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo first
head -n1 /tmp/go >/dev/null
echo second
`,
  release: `#!/bin/sh
echo go > /tmp/go
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo released
`,
  // Answers each body line as it arrives: only a proxy streaming the upload delivers the first answer early.
  lines: `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
while read -r l; do echo "got $l"; [ "$l" = end ] && break; done
`,
};

// RFC 6455 echo server for one connection on stdin/stdout, run by `nc -ll -p PORT -e /ws.sh`.
// Frames up to 65535 bytes; ping answered with pong; close answered with close (same status code).
const WS_ECHO = `#!/bin/sh
key=""
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\\r')
  [ -z "$line" ] && break
  case "$line" in
    [Ss][Ee][Cc]-[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]-[Kk][Ee][Yy]:*) key=$(printf '%s' "\${line#*:}" | tr -d ' ') ;;
  esac
done
[ -n "$key" ] || { printf 'HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n'; exit 0; }
accept=$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$key" | sha1sum | cut -d' ' -f1 | xxd -r -p | base64)
printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: %s\\r\\n\\r\\n' "$accept"
bytes() { dd bs=1 count="$1" 2>/dev/null | od -An -tu1 -v; }
oct() { printf '\\\\%03o' "$1"; }
while :; do
  set -- $(bytes 2)
  [ $# -eq 2 ] || exit 0
  op=$(($1 & 15)); len=$(($2 & 127))
  if [ $len -eq 126 ]; then set -- $(bytes 2); len=$((($1 << 8) | $2)); elif [ $len -eq 127 ]; then exit 0; fi
  set -- $(bytes 4); m0=$1; m1=$2; m2=$3; m3=$4
  fmt=""; i=0
  for b in $(bytes "$len"); do
    case $((i % 4)) in 0) k=$m0 ;; 1) k=$m1 ;; 2) k=$m2 ;; *) k=$m3 ;; esac
    fmt="$fmt$(oct $((b ^ k)))"; i=$((i + 1))
  done
  case $op in 8) printf "\\210$(oct $len)$fmt"; exit 0 ;; 9) op=10 ;; 10) continue ;; esac
  if [ $len -lt 126 ]; then h="$(oct $((128 | op)))$(oct $len)"; else h="$(oct $((128 | op)))\\\\176$(oct $((len >> 8)))$(oct $((len & 255)))"; fi
  printf "$h$fmt"
done
`;

// HTTP/1.1 keep-alive server for one connection, run by `nc -ll -p PORT -e /ka.sh`: answers every GET on the
// connection with "<NAME> <pid of this connection's shell>", so a client sees whether its requests share a
// connection. /slow waits 300 ms first. Each connection appends its pid to /tmp/ka-conns.
const KEEPALIVE = `#!/bin/sh
echo $$ >> /tmp/ka-conns
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\\r')
  [ -z "$line" ] && continue
  while IFS= read -r h; do h=$(printf '%s' "$h" | tr -d '\\r'); [ -z "$h" ] && break; done
  case "$line" in *" /slow "*) sleep 0.3 ;; esac
  body="$NAME $$"
  printf 'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: %s\\r\\n\\r\\n%s' "\${#body}" "$body"
done
`;

// One request with a body per connection (`nc -ll -p PORT -e /upload.sh`; busybox httpd takes no chunked
// bodies): reads it byte-exact, chunked or with Content-Length (a proxy may turn a chunked body that it has
// whole into a counted one), with read and dd bs=1 (neither reads ahead), and answers its sha256.
const UPLOAD = `#!/bin/sh
len=""
while IFS= read -r h; do
  h=$(printf '%s' "$h" | tr -d '\\r')
  [ -z "$h" ] && break
  case "$h" in [Cc]ontent-[Ll]ength:*) len=$(printf '%s' "\${h#*:}" | tr -d ' ') ;; esac
done
body=/tmp/body.$$
: > "$body"
if [ -n "$len" ]; then
  dd bs=1 count="$len" 2>/dev/null > "$body"
else
  while IFS= read -r line; do
    size=$(printf '%s' "$line" | tr -d '\\r' | cut -d';' -f1)
    n=$((0x$size))
    [ "$n" -eq 0 ] && break
    dd bs=1 count="$n" 2>/dev/null >> "$body"
    IFS= read -r crlf
  done
fi
sum=$(sha256sum < "$body" | cut -d' ' -f1)
rm -f "$body"
printf 'HTTP/1.1 200 OK\\r\\nContent-Length: %s\\r\\nConnection: close\\r\\n\\r\\n%s' "\${#sum}" "$sum"
`;

/** Builds the test image: busybox, /www with CGI scripts, /ws.sh, /ka.sh, /upload.sh. */
export async function buildGatewayImage(tag: string, workDir: string): Promise<void> {
  const ctx = path.join(workDir, "image");
  await mkdir(path.join(ctx, "www", "cgi-bin"), { recursive: true });
  for (const [name, body] of Object.entries(CGI)) {
    const f = path.join(ctx, "www", "cgi-bin", name);
    await writeFile(f, body);
    await chmod(f, 0o755);
  }
  await writeFile(path.join(ctx, "www", "index.html"), "index\n");
  await writeFile(path.join(ctx, "ws.sh"), WS_ECHO);
  await chmod(path.join(ctx, "ws.sh"), 0o755);
  await writeFile(path.join(ctx, "ka.sh"), KEEPALIVE);
  await chmod(path.join(ctx, "ka.sh"), 0o755);
  await writeFile(path.join(ctx, "upload.sh"), UPLOAD);
  await chmod(path.join(ctx, "upload.sh"), 0o755);
  const { stdout } = await run("buildah", ["from", "scratch"]);
  const ctr = stdout.trim();
  try {
    await run("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await run("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await run("buildah", ["copy", ctr, path.join(ctx, "www"), "/www"]);
    await run("buildah", ["copy", ctr, path.join(ctx, "ws.sh"), "/ws.sh"]);
    await run("buildah", ["copy", ctr, path.join(ctx, "ka.sh"), "/ka.sh"]);
    await run("buildah", ["copy", ctr, path.join(ctx, "upload.sh"), "/upload.sh"]);
    await run("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await run("buildah", ["commit", "-q", ctr, tag]);
  } finally {
    await run("buildah", ["rm", ctr]).catch(() => {});
  }
}

/** What every container of the gateway tests may use. */
export const GATEWAY_TEST_RESOURCES = { cpuMillis: 500, memoryBytes: 64 * 1024 * 1024, pids: 64 };

/** A container of the test image running `command` and serving HTTP on `port`. */
export function httpContainer(
  image: string,
  name: string,
  command: string[],
  port: number,
  extra: Partial<ContainerSpec> = {},
): ContainerSpec {
  return {
    name,
    image,
    command,
    ports: [{ containerPort: port, protocol: "http" }],
    resources: GATEWAY_TEST_RESOURCES,
    ...extra,
  };
}

/** Shell command for the web container: its name in /www/name.txt, a FIFO for /cgi-bin/hold, httpd in front. */
export function webCommand(name: string, extra = ""): string[] {
  return [
    "sh",
    "-c",
    `echo ${name} > /www/name.txt && mkdir -p /tmp && { [ -p /tmp/go ] || mkfifo /tmp/go; } && ${extra} exec httpd -f -p 8080 -h /www`,
  ];
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** HTTP request that resolves *.localhost itself (Node's resolver does not). */
export function request(
  url: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: options.method ?? "GET",
      headers: options.headers,
      lookup: localhostLookup as never,
      agent: false,
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * One gateway test file's Podman world: the test image built with buildah, an engine under its own owner, and
 * every pod and gateway the file makes, all removed by close(). Names carry `uid`, so files run side by side.
 */
export class GatewayTestHarness {
  readonly image: string;
  readonly #secretsDir: string;
  readonly #gateways: Gateway[] = [];
  readonly #pods = new Set<string>();
  readonly #nginxDirs: string[] = [];
  #engine: PodmanEngine | undefined;
  #tmp: string | undefined;

  constructor(
    readonly name: string,
    readonly uid: string,
    private readonly engineOpts: { owner: string; hostFirewall?: boolean },
  ) {
    this.image = `localhost/tpod-${name}-${uid}:web`;
    this.#secretsDir = `/dev/shm/tpod-${name}-${uid}`;
  }

  /** The directories of the nginx gateways made so far. */
  get nginxDirs(): string[] {
    return [...this.#nginxDirs];
  }

  get engine(): PodmanEngine {
    if (!this.#engine) throw new Error("GatewayTestHarness.open() has not run");
    return this.#engine;
  }

  async open(): Promise<PodmanEngine> {
    this.#tmp = await mkdtemp(path.join(os.tmpdir(), `tpod-${this.name}-test-`));
    await buildGatewayImage(this.image, this.#tmp);
    this.#engine = await PodmanEngine.open({
      runDir: path.join(this.#tmp, "run"),
      secretsDir: this.#secretsDir,
      stopTimeoutSeconds: 5,
      ...this.engineOpts,
    });
    return this.#engine;
  }

  /** engine.apply, remembering the pod for close(). */
  readonly apply = (spec: PodSpec): ReturnType<PodmanEngine["apply"]> => {
    this.#pods.add(spec.podId);
    return this.engine.apply(spec);
  };

  /** A gateway on 127.0.0.1 (any port) for `*.localhost`, closed by close(). */
  readonly gateway = async (
    opts: Partial<Parameters<typeof createGateway>[0]> = {},
    plane: DataPlane = "node",
  ): Promise<Gateway> => {
    if (plane === "nginx" && !NGINX) throw new Error("nginx is not installed");
    const dir = nginxDirFor(`${this.#tmp}/nginx-${this.#gateways.length}`);
    const nginx = plane === "nginx" ? { nginx: { binary: NGINX!, dir } } : {};
    if (plane === "nginx") this.#nginxDirs.push(dir);
    const gw = await createGateway({
      engine: this.engine,
      listen: { host: "127.0.0.1", port: 0 },
      baseDomain: "localhost",
      ...nginx,
      ...opts,
    });
    this.#gateways.push(gw);
    return gw;
  };

  async close(): Promise<void> {
    for (const g of this.#gateways) await g.close().catch(() => {});
    if (this.#engine) {
      for (const p of this.#pods) await this.#engine.remove(p).catch(() => {});
      await this.#engine.close();
    }
    await run("podman", ["rmi", "-f", this.image]).catch(() => {});
    if (this.#tmp) await rm(this.#tmp, { recursive: true, force: true });
    await rm(this.#secretsDir, { recursive: true, force: true });
  }
}
