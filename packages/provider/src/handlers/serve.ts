/**
 * Registers the daemon's protocols with request accounting. Signed protocols are verified exactly as p2p's
 * registerSignedUnary/registerSignedServerStream do (verifySignedRequest with the protocol name as operation,
 * then the body decoded), but here, inside the accounting wrapper, so refused signatures show up in the
 * request metrics and logs with their code like every other failure.
 */
import { type DescMessage, fromBinary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { Libp2p } from "@libp2p/interface";
import {
  type CallContext,
  errorCodeName,
  type RequestVerifier,
  RpcError,
  registerServerStream,
  registerUnary,
  type ServerOptions,
  type SignedCallContext,
  verifySignedRequest,
} from "@trustedpods/p2p";
import { ErrorCode, SignedRequestSchema } from "@trustedpods/protocol";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { HandlerLimits } from "./limits.js";

export interface ServeContext {
  node: Libp2p;
  metrics: Metrics;
  log: Logger;
  verifier: RequestVerifier;
}

function codeOf(err: unknown): string {
  return err instanceof RpcError ? errorCodeName(err.code) : "INTERNAL";
}

function account(s: ServeContext, protocol: string, peer: string, err: unknown): void {
  const code = codeOf(err);
  s.metrics.requests.inc({ protocol, code });
  s.metrics.errors.inc({ protocol, code });
  const fields = {
    protocol,
    peer,
    code,
    reason: err instanceof RpcError ? err.reason : undefined,
    error: err instanceof RpcError ? err.message : undefined,
  };
  if (err instanceof RpcError) s.log.info(fields, "request refused");
  else s.log.error({ ...fields, err }, "request failed");
}

function options(s: ServeContext, o: ServerOptions): ServerOptions {
  return {
    ...o,
    onInternalError: (err, c) =>
      s.log.error({ err, protocol: c.protocol, peer: c.peer.toString() }, "internal error"),
  };
}

async function open<I extends DescMessage>(
  s: ServeContext,
  name: string,
  schema: I,
  signed: MessageShape<typeof SignedRequestSchema>,
  context: CallContext,
): Promise<{ body: MessageShape<I>; context: SignedCallContext }> {
  const verified = await verifySignedRequest(signed, { ...s.verifier, operation: name });
  let body: MessageShape<I>;
  try {
    body = fromBinary(schema, verified.body);
  } catch (error) {
    throw new RpcError(ErrorCode.INVALID_ARGUMENT, `request body is not a valid ${schema.typeName}`, {
      details: { reason: "malformed-message" },
      cause: error,
    });
  }
  return { body, context: { ...context, request: verified } };
}

/** Runs one call with request accounting: OK counted, refusals and failures counted and logged with their code. */
async function counted<T>(
  s: ServeContext,
  name: string,
  context: CallContext,
  run: () => Promise<T>,
): Promise<T> {
  try {
    const out = await run();
    s.metrics.requests.inc({ protocol: name, code: "OK" });
    return out;
  } catch (err) {
    account(s, name, context.peer.toString(), err);
    throw err;
  }
}

export function serveUnary<I extends DescMessage, O extends DescMessage>(
  s: ServeContext,
  name: string,
  req: I,
  res: O,
  handler: (request: MessageShape<I>, context: CallContext) => Promise<MessageInitShape<O>>,
  o: ServerOptions = {},
): Promise<() => Promise<void>> {
  const handle = (request: MessageShape<I>, context: CallContext) =>
    counted(s, name, context, () => handler(request, context));
  return registerUnary(s.node, name, req, res, handle, options(s, o));
}

export function serveSignedUnary<I extends DescMessage, O extends DescMessage>(
  s: ServeContext,
  name: string,
  req: I,
  res: O,
  handler: (request: MessageShape<I>, context: SignedCallContext) => Promise<MessageInitShape<O>>,
  o: ServerOptions = {},
): Promise<() => Promise<void>> {
  const handle = (signed: MessageShape<typeof SignedRequestSchema>, context: CallContext) =>
    counted(s, name, context, async () => {
      const opened = await open(s, name, req, signed, context);
      return handler(opened.body, opened.context);
    });
  return registerUnary(s.node, name, SignedRequestSchema, res, handle, options(s, o));
}

export function serveSignedStream<I extends DescMessage, O extends DescMessage>(
  s: ServeContext,
  name: string,
  req: I,
  res: O,
  handler: (request: MessageShape<I>, context: SignedCallContext) => AsyncIterable<MessageInitShape<O>>,
  o: ServerOptions = {},
): Promise<() => Promise<void>> {
  return registerServerStream(
    s.node,
    name,
    SignedRequestSchema,
    res,
    async function* (signed, context) {
      try {
        const opened = await open(s, name, req, signed, context);
        yield* handler(opened.body, opened.context);
        s.metrics.requests.inc({ protocol: name, code: "OK" });
      } catch (err) {
        account(s, name, context.peer.toString(), err);
        throw err;
      }
    },
    options(s, o),
  );
}

/** One protocol of the daemon: its name, its wire types, its limits and its handler over dependencies `D`. */
export interface Protocol<D> {
  name: string;
  serve(s: ServeContext, deps: D, limits: HandlerLimits): Promise<() => Promise<void>>;
}

type Limits = (l: HandlerLimits) => ServerOptions;

/** An unsigned request/response protocol (anyone may call it). */
export function unary<I extends DescMessage, O extends DescMessage, D>(
  name: string,
  req: I,
  res: O,
  handle: (deps: D, request: MessageShape<I>) => Promise<MessageInitShape<O>>,
  limits: Limits,
): Protocol<D> {
  return { name, serve: (s, d, l) => serveUnary(s, name, req, res, (r) => handle(d, r), limits(l)) };
}

/** A signed request/response protocol: the handler sees the verified signer. */
export function signed<I extends DescMessage, O extends DescMessage, D>(
  name: string,
  req: I,
  res: O,
  handle: (deps: D, request: MessageShape<I>, c: SignedCallContext) => Promise<MessageInitShape<O>>,
  limits: Limits,
): Protocol<D> {
  return {
    name,
    serve: (s, d, l) => serveSignedUnary(s, name, req, res, (r, c) => handle(d, r, c), limits(l)),
  };
}

/** A signed request answered by a stream. */
export function signedStream<I extends DescMessage, O extends DescMessage, D>(
  name: string,
  req: I,
  res: O,
  handle: (deps: D, request: MessageShape<I>, c: SignedCallContext) => AsyncIterable<MessageInitShape<O>>,
  limits: Limits,
): Protocol<D> {
  return {
    name,
    serve: (s, d, l) => serveSignedStream(s, name, req, res, (r, c) => handle(d, r, c), limits(l)),
  };
}
