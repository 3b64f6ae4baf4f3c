// nginx.conf for the native data plane. nginx takes the gateway's public port and sends each request straight
// to the container of an awake, always-on pod over kept-alive connections; everything else (unknown hosts,
// scale-to-zero pods, pods not looked up yet, WebSockets, a container that refuses the connection) goes to the
// Node gateway on its private socket, which keeps every decision: waking, typed errors, invalidation.
// Everything written into the file was validated before (hostnames, pod ids, addresses, numbers): nothing from
// a request or a manifest reaches it unchecked.
import net from "node:net";
import { POD_ID_PATTERN } from "../../engine/types.js";
import { HOSTNAME } from "../routes.js";
import type { GatewayLimits } from "../types.js";

/** One hostname as nginx routes it: to a container when `upstream` is set, else to the Node gateway. */
export interface NginxRoute {
  hostname: string;
  podId: string;
  upstream: { host: string; port: number } | null;
}

export interface NginxConfigInput {
  /** Answered on the control socket: a reload is live once the new workers answer it. */
  generation: number;
  /** nginx's prefix: temp files, pid file, sockets. */
  dir: string;
  listen: { host: string; port: number };
  /** The Node gateway's private listener. */
  nodeSocket: string;
  controlSocket: string;
  /** Requests nginx sent to a container itself, one line each (pod, status, method, seconds, host). */
  accessLog: string;
  workers: number | "auto";
  /** Run workers as nobody:nogroup (the master is root). */
  dropPrivileges: boolean;
  trustForwarded: boolean;
  limits: GatewayLimits;
  routes: NginxRoute[];
}

/** Kept-alive connections per worker to one container and to the Node gateway. */
const KEEPALIVE_PER_WORKER = 32;

const seconds = (ms: number) => `${Math.max(1, Math.ceil(ms / 1000))}s`;

function checkRoute(r: NginxRoute): void {
  if (!HOSTNAME.test(r.hostname))
    throw new Error(`nginx config: invalid hostname ${JSON.stringify(r.hostname)}`);
  if (!POD_ID_PATTERN.test(r.podId))
    throw new Error(`nginx config: invalid pod id ${JSON.stringify(r.podId)}`);
  if (r.upstream) {
    const { host, port } = r.upstream;
    if (net.isIP(host) === 0)
      throw new Error(`nginx config: upstream ${JSON.stringify(host)} is not an IP address`);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new Error(`nginx config: invalid port ${port}`);
  }
}

function checkPath(p: string): string {
  // Paths come from the daemon's config; quoting them keeps spaces, the check keeps the file parseable.
  if (!p.startsWith("/") || /["\\\n;{}$]/.test(p))
    throw new Error(`nginx config: unusable path ${JSON.stringify(p)}`);
  return `"${p}"`;
}

function listenAddress(l: { host: string; port: number }): string {
  if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535)
    throw new Error(`nginx config: invalid listen port ${l.port}`);
  const v = net.isIP(l.host);
  if (v === 0) throw new Error(`nginx config: listen host ${JSON.stringify(l.host)} must be an IP address`);
  if (v === 4) return `${l.host}:${l.port}`;
  // Node listens on "::" for both families; nginx, by default, for IPv6 only.
  return net.isIPv6(l.host) && /^[0:]+$/.test(l.host)
    ? `[::]:${l.port} ipv6only=off`
    : `[${l.host}]:${l.port}`;
}

const unix = (p: string) => `"unix:${checkPath(p).slice(1)}`;

const upstreamAddress = (u: { host: string; port: number }) =>
  net.isIP(u.host) === 6 ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`;

/** Forwarding headers: replaced by what nginx saw unless a proxy we run in front is trusted to set them. */
function forwardingHeaders(trust: boolean): string[] {
  return trust
    ? [
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $tpod_fwd_proto;",
        "proxy_set_header X-Forwarded-Host $tpod_fwd_host;",
        "proxy_set_header Forwarded $http_forwarded;",
      ]
    : [
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        'proxy_set_header Forwarded "";',
      ];
}

export function renderNginxConfig(c: NginxConfigInput): string {
  const l = c.limits;
  const upstreams = new Map<string, string>(); // address -> upstream name
  const backend: string[] = [];
  const pods: string[] = [];
  for (const r of c.routes) {
    checkRoute(r);
    pods.push(`    ${r.hostname} ${r.podId};`);
    if (!r.upstream) continue;
    const addr = upstreamAddress(r.upstream);
    let name = upstreams.get(addr);
    if (!name) {
      name = `pod${upstreams.size}`;
      upstreams.set(addr, name);
    }
    backend.push(`    ${r.hostname} ${name};`);
  }
  const workers = c.workers === "auto" ? "auto" : String(Math.max(1, Math.floor(c.workers)));
  // Two descriptors per proxied connection; nginx would otherwise keep the daemon's (often 1024) and warn.
  const connections = Math.max(1024, l.maxConnections * 2 + 64);
  const dir = c.dir;
  const upstreamBlocks = [...upstreams].map(
    ([addr, name]) =>
      // The Node gateway is the backup: a refused or failed connect (container restarted, stopped, moved) is
      // sent there before anything reached the client, and it finds the pod's new address or answers why not.
      `  upstream ${name} {\n    server ${addr} max_fails=0;\n    server ${unix(c.nodeSocket)} backup;\n    keepalive ${KEEPALIVE_PER_WORKER};\n  }`,
  );
  return `# Written by the tpod provider daemon (generation ${c.generation}); rewritten on every route change.
worker_processes ${workers};
${c.dropPrivileges ? "user nobody nogroup;\n" : ""}pid ${checkPath(`${dir}/nginx.pid`)};
error_log stderr warn;
daemon off;
worker_rlimit_nofile ${connections * 2};

events {
  worker_connections ${connections};
}

http {
  server_tokens off;
  client_body_temp_path ${checkPath(`${dir}/tmp/body`)};
  proxy_temp_path ${checkPath(`${dir}/tmp/proxy`)};
  fastcgi_temp_path ${checkPath(`${dir}/tmp/fastcgi`)};
  uwsgi_temp_path ${checkPath(`${dir}/tmp/uwsgi`)};
  scgi_temp_path ${checkPath(`${dir}/tmp/scgi`)};
  access_log off;
  log_format tpod '$tpod_pod $status $request_method $request_time $host';
  map_hash_bucket_size 128;

  map $host $tpod_pod {
    default -;
${pods.join("\n")}
  }
  map $host $tpod_backend {
    default node;
${backend.join("\n")}
  }
  # Straight to the container only what nginx proxies as well as the Node gateway does. Through the Node
  # gateway: upgrades (WebSockets), which it tracks per pod; requests whose Connection header names other
  # headers, which nginx would forward (RFC 9110 7.6.1 says drop them); and requests with a body: nginx stops
  # sending a streamed body once the container starts answering, which deadlocks a container that answers
  # early and reads on (the Node gateway is full duplex), and it enforces the body limit with a typed error.
  map $http_connection $tpod_plain {
    default 0;
    "" 1;
    "~*^\\s*(keep-alive|close)\\s*$" 1;
  }
  map "$http_content_length$http_transfer_encoding" $tpod_bodyless {
    default 0;
    "" 1;
    "0" 1;
  }
  map "$http_upgrade:$tpod_plain:$tpod_bodyless" $tpod_target {
    default node;
    ":1:1" $tpod_backend;
  }
  # The Node gateway reads the client's Connection header itself (to drop what it names, to upgrade).
  map $tpod_target $tpod_connection {
    node $http_connection;
    default "";
  }
  map $tpod_target $tpod_direct {
    node 0;
    default 1;
  }
  map $http_x_forwarded_proto $tpod_fwd_proto {
    default $http_x_forwarded_proto;
    "" $scheme;
  }
  map $http_x_forwarded_host $tpod_fwd_host {
    default $http_x_forwarded_host;
    "" $http_host;
  }

  upstream node {
    server ${unix(c.nodeSocket)};
    keepalive ${KEEPALIVE_PER_WORKER};
  }
${upstreamBlocks.join("\n")}

  server {
    listen ${listenAddress(c.listen)} reuseport backlog=4096;
    server_name _;
    client_header_buffer_size 4k;
    large_client_header_buffers 4 ${Math.max(4, Math.ceil(l.maxHeaderBytes / 1024))}k;
    client_header_timeout ${seconds(l.headersTimeoutMs)};
    client_body_timeout ${seconds(l.idleTimeoutMs)};
    send_timeout ${seconds(l.idleTimeoutMs)};
    keepalive_timeout ${seconds(l.keepAliveTimeoutMs)};
    # The Node gateway enforces the body limit (requests with a body go through it).
    client_max_body_size 0;
    access_log ${checkPath(c.accessLog)} tpod buffer=64k flush=2s if=$tpod_direct;

    location / {
      proxy_pass http://$tpod_target;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Connection $tpod_connection;
      proxy_set_header Upgrade $http_upgrade;
      ${forwardingHeaders(c.trustForwarded).join("\n      ")}
      proxy_set_header Proxy-Authorization "";
      proxy_set_header Proxy-Connection "";
      proxy_set_header Keep-Alive "";
      proxy_set_header TE "";
      # Stream responses as the Node gateway does (server-sent events, long downloads); request bodies reach
      # nginx only on their way to the Node gateway, streamed too.
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_connect_timeout ${seconds(l.connectTimeoutMs)};
      # Waking a pod happens behind the Node gateway: its wait must fit.
      proxy_read_timeout ${seconds(Math.max(l.responseTimeoutMs, l.wakeTimeoutMs + 5_000, l.upgradeIdleTimeoutMs || 7 * 24 * 3_600_000))};
      proxy_send_timeout ${seconds(l.idleTimeoutMs)};
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 2;
    }
  }

  server {
    listen ${unix(c.controlSocket)};
    access_log off;
    location = /generation {
      return 200 "${c.generation}";
    }
  }
}
`;
}
