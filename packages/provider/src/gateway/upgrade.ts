// WebSockets and other upgrades: a dedicated connection to the container per upgraded client connection
// (upgraded connections leave any pool anyway), 101 relayed, then bytes piped both ways.
import http, { type IncomingMessage } from "node:http";
import type net from "node:net";
import type { Duplex } from "node:stream";
import { CONNECT_ERRORS, errorBody, GatewayError, toGatewayError } from "./errors.js";
import { endToEnd, upstreamRequestHeaders } from "./headers.js";
import type { PodEntry } from "./lifecycle.js";
import type { Target } from "./pool.js";
import { pathOf } from "./proxy.js";
import type { GatewayLimits } from "./types.js";

/** An error answer written on a raw socket (no ServerResponse exists for an upgrade request). */
export function rawError(socket: Duplex, err: GatewayError, retryAfterSeconds: number): void {
  if (socket.destroyed) return;
  const body = errorBody(err);
  const lines = [
    `HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status] ?? "Error"}`,
    "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Cache-Control: no-store",
    `X-Tpod-Error: ${err.code}`,
    ...(err.retryable ? [`Retry-After: ${retryAfterSeconds}`] : []),
    "Connection: close",
  ];
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
}

export interface UpgradeHooks {
  limits: GatewayLimits;
  trustForwarded: boolean;
  invalidate(pod: PodEntry, target: Target): void;
  finish(status: number, err?: GatewayError): void;
  fail(err: GatewayError): void;
}

export function forwardUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  pod: PodEntry,
  up: Target,
  h: UpgradeHooks,
): void {
  const l = h.limits;
  const proxyReq = http.request({
    host: up.host,
    port: up.port,
    method: req.method,
    path: pathOf(req.url),
    headers: upstreamRequestHeaders(req, h.trustForwarded, true),
    agent: false,
    setHost: false,
  });
  const timer = setTimeout(
    () =>
      proxyReq.destroy(
        new GatewayError("UPSTREAM_TIMEOUT", `the pod sent no response within ${l.responseTimeoutMs} ms`),
      ),
    l.responseTimeoutMs,
  );
  socket.once("close", () => {
    clearTimeout(timer);
    proxyReq.destroy();
  });

  proxyReq.once("upgrade", (pres, upstream, upstreamHead) => {
    clearTimeout(timer);
    h.finish(101);
    if (socket.destroyed || pod.removed) {
      upstream.destroy();
      socket.destroy();
      return;
    }
    const lines = [`HTTP/1.1 101 ${pres.statusMessage || "Switching Protocols"}`];
    for (let i = 0; i < pres.rawHeaders.length; i += 2)
      lines.push(`${pres.rawHeaders[i]}: ${pres.rawHeaders[i + 1]}`);
    socket.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (upstreamHead.length) socket.write(upstreamHead);
    if (head.length) upstream.write(head);
    pod.upgraded.add(socket);
    pod.upgraded.add(upstream);
    const closeBoth = () => {
      socket.destroy();
      upstream.destroy();
      pod.upgraded.delete(socket);
      pod.upgraded.delete(upstream);
    };
    for (const s of [socket, upstream]) {
      s.once("close", closeBoth);
      s.on("error", closeBoth);
    }
    upstream.setNoDelay(true);
    (socket as net.Socket).setNoDelay?.(true);
    const idle = l.upgradeIdleTimeoutMs;
    (socket as net.Socket).setTimeout?.(idle);
    upstream.setTimeout(idle);
    if (idle > 0) {
      (socket as net.Socket).once("timeout", closeBoth);
      upstream.once("timeout", closeBoth);
    }
    // pipe() keeps backpressure both ways; a half-close is passed on as a half-close.
    socket.pipe(upstream);
    upstream.pipe(socket);
  });

  // The container answered without switching protocols: relay that answer and close.
  proxyReq.once("response", (pres) => {
    clearTimeout(timer);
    h.finish(pres.statusCode ?? 502);
    const headers = endToEnd(pres.rawHeaders, new Set(["content-length"]));
    const lines = [`HTTP/1.1 ${pres.statusCode} ${pres.statusMessage ?? ""}`];
    for (let i = 0; i < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
    lines.push("Connection: close");
    socket.write(`${lines.join("\r\n")}\r\n\r\n`);
    pres.pipe(socket);
  });

  proxyReq.once("error", (err) => {
    clearTimeout(timer);
    const code = (err as NodeJS.ErrnoException).code;
    if (code && CONNECT_ERRORS.has(code)) h.invalidate(pod, up);
    h.fail(toGatewayError(err));
  });
  proxyReq.end();
}
