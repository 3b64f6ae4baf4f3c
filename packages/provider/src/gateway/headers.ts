import type { IncomingMessage } from "node:http";

// RFC 9110 7.6.1: these describe one connection, not the message, and must not be forwarded. Proxy-* are
// meant for us (and would leak a client's proxy credentials to the pod).
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

// Forwarding headers are rebuilt by us; Expect was already answered by our server (100 Continue).
const REBUILT = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "expect"]);

/** Header names listed in Connection are hop-by-hop too. */
function connectionTokens(rawHeaders: string[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== "connection") continue;
    for (const t of rawHeaders[i + 1]!.split(",")) {
      const v = t.trim().toLowerCase();
      if (v) tokens.add(v);
    }
  }
  return tokens;
}

/** Flat [name, value, ...] without hop-by-hop headers (case and order kept, repeated headers kept). */
export function endToEnd(rawHeaders: string[], drop?: Set<string>): string[] {
  const listed = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed.has(lower) || drop?.has(lower)) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  return out;
}

function firstValue(rawHeaders: string[], name: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) return rawHeaders[i + 1];
  }
  return undefined;
}

function allValues(rawHeaders: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  }
  return out;
}

/**
 * Request headers for the upstream: end-to-end headers plus X-Forwarded-For/Proto/Host. Client-sent
 * forwarding headers are kept (and appended to) only when the gateway sits behind a proxy we trust;
 * otherwise a client could claim any address. For an upgrade, Connection/Upgrade are put back.
 */
export function upstreamRequestHeaders(
  req: IncomingMessage,
  trustForwarded: boolean,
  upgrade: boolean,
): string[] {
  const raw = req.rawHeaders;
  const headers = endToEnd(raw, REBUILT);
  const clientIp = req.socket.remoteAddress ?? "";
  const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
  const priorFor = trustForwarded ? allValues(raw, "x-forwarded-for").join(", ") : "";
  const proto = (trustForwarded && firstValue(raw, "x-forwarded-proto")) || (encrypted ? "https" : "http");
  const host = (trustForwarded && firstValue(raw, "x-forwarded-host")) || (req.headers.host ?? "");
  if (trustForwarded) {
    const fwd = allValues(raw, "forwarded");
    if (fwd.length) headers.push("Forwarded", fwd.join(", "));
  }
  headers.push("X-Forwarded-For", priorFor ? `${priorFor}, ${clientIp}` : clientIp);
  headers.push("X-Forwarded-Proto", proto, "X-Forwarded-Host", host);
  if (upgrade) {
    headers.push("Connection", "Upgrade", "Upgrade", req.headers.upgrade ?? "");
  }
  return headers;
}

/** The Host header's name part, lowercase, without port or trailing dot; null when absent or malformed. */
export function hostOf(req: IncomingMessage): string | null {
  const h = req.headers.host;
  if (!h) return null;
  let name = h.trim().toLowerCase();
  if (name.startsWith("[")) return null; // IPv6 literal: never a pod
  const colon = name.lastIndexOf(":");
  if (colon !== -1) {
    if (!/^\d{1,5}$/.test(name.slice(colon + 1))) return null;
    name = name.slice(0, colon);
  }
  if (name.endsWith(".")) name = name.slice(0, -1);
  return name || null;
}
