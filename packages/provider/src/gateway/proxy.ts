// One proxied HTTP request: the client's request streamed to a pooled keep-alive connection of the container
// (undici), the response streamed back with backpressure both ways. One object per request carries the
// whole exchange (no per-request closures beyond the client's 'close' listener).
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Readable, Transform } from "node:stream";
import type { Dispatcher } from "undici";
import { CONNECT_ERRORS, GatewayError, toGatewayError } from "./errors.js";
import { proxyRequestHeaders, type RequestHead, responseHeaders } from "./headers.js";
import type { HostEntry, PodEntry } from "./lifecycle.js";
import type { Target } from "./pool.js";
import type { GatewayErrorCode, GatewayLimits, GatewayRequestEvent } from "./types.js";

/** Methods that may be sent again when a pooled connection turns out to be closed by the container. */
const RETRYABLE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** The pool was retired between lookup and dispatch (pod changed): look up again. */
const POOL_GONE = new Set(["UND_ERR_CLOSED", "UND_ERR_DESTROYED"]);

/** What an exchange needs from the gateway. */
export interface ProxyHost {
  readonly limits: GatewayLimits;
  readonly trustForwarded: boolean;
  /** Looks the target up again (waking the pod if needed). */
  target(pod: PodEntry, entry: HostEntry): Promise<Target>;
  invalidate(pod: PodEntry, target: Target): void;
  release(pod: PodEntry): void;
  reply(res: ServerResponse, err: GatewayError): void;
  readonly wantsEvents: boolean;
  emit(event: GatewayRequestEvent): void;
}

/** The request target as a path: absolute-form (`GET http://host/x`) is reduced to its path. */
export function pathOf(url: string | undefined): string {
  if (!url) return "/";
  if (url.startsWith("/") || url === "*") return url;
  try {
    const u = new URL(url);
    return `${u.pathname}${u.search}`;
  } catch {
    return "/";
  }
}

export class HttpExchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private target: Target | null = null;
  private attempt = 0;
  private received = 0;
  /** Final (non-1xx) response head received from the container. */
  private responded = false;
  private clientGone = false;
  /** Why the exchange was cut short; applied when undici starts a request still queued for a connection. */
  private abortReason: Error | null = null;
  private body: Readable | null = null;
  private draining = false;
  private readonly bodyless: boolean;
  error: GatewayErrorCode | undefined;
  private readonly started: number;

  constructor(
    private readonly gw: ProxyHost,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly host: string,
    private readonly head: RequestHead,
    readonly pod: PodEntry | null,
    private readonly entry: HostEntry | null,
  ) {
    this.started = gw.wantsEvents ? performance.now() : 0;
    this.bodyless = !head.chunked && (head.contentLength === undefined || head.contentLength === "0");
    res.once("close", () => this.onClientClose());
  }

  /** The gateway answers itself (error before or instead of proxying). */
  fail(err: unknown, fallback: GatewayErrorCode = "UPSTREAM_UNREACHABLE"): void {
    const e = toGatewayError(err, fallback);
    this.error = e.code;
    this.gw.reply(this.res, e);
  }

  /** Sends the request to the container over the target's pool. */
  dispatch(target: Target): void {
    if (this.clientGone || this.res.writableEnded) return;
    this.target = target;
    const req = this.req;
    const headers = proxyRequestHeaders(
      req.rawHeaders,
      this.head.host ?? "",
      req.socket.remoteAddress ?? "",
      (req.socket as { encrypted?: boolean }).encrypted === true,
      this.gw.trustForwarded,
    );
    try {
      target.pool.dispatch(
        {
          method: req.method as Dispatcher.HttpMethod,
          path: pathOf(req.url),
          headers,
          body: this.bodyStream(),
        },
        this,
      );
    } catch (err) {
      this.fail(err);
      return;
    }
  }

  /**
   * The body undici reads: none, the request itself when its length was announced (and checked before; undici
   * checks that the length matches), or for a chunked upload the request piped through a counter that fails
   * the exchange past maxBodyBytes. Made once: a retry after a retired pool sends the same, unread stream.
   */
  private bodyStream(): Readable | null {
    if (this.bodyless) return null;
    if (this.head.contentLength !== undefined) return this.req;
    if (this.body) return this.body;
    const max = this.gw.limits.maxBodyBytes;
    const counter = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        this.received += chunk.length;
        if (this.received > max) done(new GatewayError("BODY_TOO_LARGE", `request body over ${max} bytes`));
        else done(null, chunk);
      },
    });
    // Also while undici has not started reading it (request queued for a connection): an unheard 'error'
    // would throw.
    counter.on("error", (err) => {
      if (err instanceof GatewayError && err.code === "BODY_TOO_LARGE" && !this.error) this.tooLarge(err);
    });
    this.req.pipe(counter);
    this.body = counter;
    return counter;
  }

  /** A chunked upload went over the limit: 413 when nothing was answered yet, else cut off. */
  private tooLarge(err: GatewayError): void {
    this.error = err.code;
    this.abort(err);
    if (!this.res.headersSent) this.gw.reply(this.res, err);
    else this.res.destroy();
    this.req.unpipe();
    this.req.resume();
  }

  private abort(reason: Error): void {
    this.abortReason = reason;
    this.controller?.abort(reason);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason) controller.abort(this.abortReason);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    // 1xx (103 Early Hints): not relayed, like node:http's 'information'.
    if (statusCode < 200 || this.error) return;
    this.responded = true;
    const res = this.res;
    // Head and body of a small response leave in one write.
    res.cork();
    process.nextTick(uncork, res);
    res.writeHead(statusCode, statusMessage || undefined, responseHeaders(headers));
    if (controller.aborted) res.destroy();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.responded) return;
    if (!this.res.write(chunk)) {
      controller.pause();
      if (!this.draining) {
        this.draining = true;
        this.res.on("drain", () => this.controller?.resume());
      }
    }
  }

  onResponseEnd(): void {
    if (this.responded) this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.clientGone || this.error === "BODY_TOO_LARGE") return;
    if (err instanceof GatewayError && err.code === "BODY_TOO_LARGE") {
      if (!this.error) this.tooLarge(err);
      return;
    }
    if (this.responded || this.res.headersSent) {
      this.res.destroy();
      return;
    }
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const pod = this.pod!;
    if (this.attempt === 0 && POOL_GONE.has(code) && !pod.removed) {
      // The pod's pools were retired after our lookup (routes set again, pod stopped): look up again.
      this.attempt = 1;
      this.gw.target(pod, this.entry!).then(
        (t) => this.dispatch(t),
        (e) => this.fail(e, "POD_START_FAILED"),
      );
      return;
    }
    // A pooled keep-alive connection the container had already closed: safe to resend a bodyless request.
    if (
      this.attempt === 0 &&
      this.bodyless &&
      (code === "UND_ERR_SOCKET" || code === "ECONNRESET") &&
      RETRYABLE_METHODS.has(this.req.method ?? "")
    ) {
      this.attempt = 1;
      this.controller = null;
      this.dispatch(this.target!);
      return;
    }
    if (CONNECT_ERRORS.has(code)) this.gw.invalidate(pod, this.target!);
    this.fail(err);
  }

  // ------------------------------------------------------------------ client side

  private onClientClose(): void {
    const res = this.res;
    if (!res.writableFinished) {
      // The client went away: stop the upstream exchange too.
      this.clientGone = true;
      this.abort(new GatewayError("UPSTREAM_RESET", "the client went away"));
    }
    if (this.pod) this.gw.release(this.pod);
    if (!this.gw.wantsEvents) return;
    this.gw.emit({
      podId: this.pod?.podId ?? null,
      host: this.host,
      method: this.req.method ?? "",
      status: res.headersSent ? res.statusCode : 0,
      ...(this.error ? { error: this.error } : {}),
      upgrade: false,
      durationMs: performance.now() - this.started,
    });
  }
}

function uncork(res: ServerResponse): void {
  res.uncork();
}
