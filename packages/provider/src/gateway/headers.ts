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
 * X-Forwarded-For with the peer appended. A peer on a unix socket (nginx in front of us) has no address: what
 * it forwarded is the whole chain.
 */
function appendFor(prior: string, clientIp: string): string {
  if (!clientIp) return prior;
  return prior ? `${prior}, ${clientIp}` : clientIp;
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
  headers.push("X-Forwarded-For", appendFor(priorFor, clientIp));
  headers.push("X-Forwarded-Proto", proto, "X-Forwarded-Host", host);
  if (upgrade) {
    headers.push("Connection", "Upgrade", "Upgrade", req.headers.upgrade ?? "");
  }
  return headers;
}

/** The Host header's name part, lowercase, without port or trailing dot; null when absent or malformed. */
export function hostOf(req: IncomingMessage): string | null {
  return normalizeHost(req.headers.host);
}

/** A Host header value reduced to the name (see hostOf). */
export function normalizeHost(value: string | undefined): string | null {
  if (!value) return null;
  let name = value.trim().toLowerCase();
  if (name.startsWith("[")) return null; // IPv6 literal: never a pod
  const colon = name.lastIndexOf(":");
  if (colon !== -1) {
    if (!/^\d{1,5}$/.test(name.slice(colon + 1))) return null;
    name = name.slice(0, colon);
  }
  if (name.endsWith(".")) name = name.slice(0, -1);
  return name || null;
}

/** What the proxy needs from a request head, read in one pass over rawHeaders (req.headers stays unbuilt). */
export interface RequestHead {
  /** First Host value as sent. */
  host: string | undefined;
  contentLength: string | undefined;
  chunked: boolean;
}

export function readHead(raw: string[]): RequestHead {
  let host: string | undefined;
  let contentLength: string | undefined;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Length first: most headers are skipped without lowercasing.
    switch (name.length) {
      case 4:
        if (host === undefined && name.toLowerCase() === "host") host = raw[i + 1];
        break;
      case 14:
        if (contentLength === undefined && name.toLowerCase() === "content-length")
          contentLength = raw[i + 1];
        break;
      case 17:
        if (name.toLowerCase() === "transfer-encoding") chunked = true;
        break;
    }
  }
  return { host, contentLength, chunked };
}

const KEEP_OR_CLOSE = new Set(["keep-alive", "close"]);

/**
 * Request headers for a pooled upstream request, one pass: end-to-end headers (hop-by-hop, forwarding and
 * Expect dropped; only the first Host and Content-Length kept) plus X-Forwarded-For/Proto/Host as in
 * upstreamRequestHeaders().
 */
export function proxyRequestHeaders(
  raw: string[],
  host: string,
  clientIp: string,
  encrypted: boolean,
  trustForwarded: boolean,
): string[] {
  const out: string[] = [];
  let listed: Set<string> | null = null;
  let seenHost = false;
  let seenLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === "connection") {
        for (const t of raw[i + 1]!.split(",")) {
          const v = t.trim().toLowerCase();
          if (!v || KEEP_OR_CLOSE.has(v)) continue;
          listed ??= new Set();
          listed.add(v);
        }
      }
      continue;
    }
    if (REBUILT.has(lower)) continue;
    if (lower === "host") {
      if (seenHost) continue;
      seenHost = true;
    } else if (lower === "content-length") {
      if (seenLength) continue;
      seenLength = true;
    }
    out.push(name, raw[i + 1]!);
  }
  let headers = out;
  if (listed) {
    // Headers named in Connection are hop-by-hop too (rare: a second pass only then).
    headers = [];
    for (let i = 0; i < out.length; i += 2) {
      if (!listed.has(out[i]!.toLowerCase())) headers.push(out[i]!, out[i + 1]!);
    }
  }
  if (trustForwarded) {
    const priorFor = allValues(raw, "x-forwarded-for").join(", ");
    const fwd = allValues(raw, "forwarded");
    if (fwd.length) headers.push("Forwarded", fwd.join(", "));
    headers.push(
      "X-Forwarded-For",
      appendFor(priorFor, clientIp),
      "X-Forwarded-Proto",
      firstValue(raw, "x-forwarded-proto") || (encrypted ? "https" : "http"),
      "X-Forwarded-Host",
      firstValue(raw, "x-forwarded-host") || host,
    );
  } else {
    headers.push("X-Forwarded-For", clientIp, "X-Forwarded-Proto", encrypted ? "https" : "http");
    headers.push("X-Forwarded-Host", host);
  }
  return headers;
}

/**
 * Response headers for the client from undici's parsed ones: hop-by-hop headers (and those the Connection
 * header names) dropped. One pass over the few keys a response has, into a fresh object.
 */
export function responseHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const conn = headers.connection;
  let listed: Set<string> | null = null;
  if (conn !== undefined) {
    for (const v of Array.isArray(conn) ? conn : [conn]) {
      for (const t of v.split(",")) {
        const name = t.trim().toLowerCase();
        if (!name || KEEP_OR_CLOSE.has(name)) continue;
        listed ??= new Set();
        listed.add(name);
      }
    }
  }
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    const v = headers[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}
