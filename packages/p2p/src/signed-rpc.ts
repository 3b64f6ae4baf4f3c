import {
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  create as newMessage,
  toBinary,
} from "@bufbuild/protobuf";
import type { Libp2p } from "@libp2p/interface";
import { ErrorCode, SignedRequestSchema } from "@trustedpods/protocol";
import type { Address, Hex } from "viem";
import { RpcError } from "./errors.js";
import {
  type CallContext,
  type CallOptions,
  callServerStream,
  callUnary,
  type DialTarget,
  registerServerStream,
  registerUnary,
  type ServerOptions,
} from "./rpc.js";
import {
  type ReplayCache,
  type RequestSigner,
  signRequest,
  type VerifiedRequest,
  verifySignedRequest,
} from "./signing.js";

/** How a provider checks the signed requests of its protocols. */
export interface RequestVerifier {
  /** The provider's own Ethereum address. */
  provider: Address;
  chainId: bigint | number;
  replay: ReplayCache;
  maxTtlSeconds?: number;
  now?: () => number;
}

/** A handler's view of a call whose request was signed: who signed it and for which pod. */
export interface SignedCallContext extends CallContext {
  request: VerifiedRequest;
}

/** How a publisher signs the requests it sends. */
export interface RequestSigning {
  signer: RequestSigner;
  chainId: bigint | number;
  provider: Address;
  podId?: Hex;
  ttlSeconds?: number;
}

async function openSigned<I extends DescMessage>(
  request: MessageShape<typeof SignedRequestSchema>,
  context: CallContext,
  name: string,
  requestSchema: I,
  verifier: RequestVerifier,
): Promise<{ body: MessageShape<I>; context: SignedCallContext }> {
  const verified = await verifySignedRequest(request, { ...verifier, operation: name });
  let body: MessageShape<I>;
  try {
    body = fromBinary(requestSchema, verified.body);
  } catch (error) {
    throw new RpcError(ErrorCode.INVALID_ARGUMENT, `request body is not a valid ${requestSchema.typeName}`, {
      details: { reason: "malformed-message" },
      cause: error,
    });
  }
  return { body, context: { ...context, request: verified } };
}

/**
 * Like registerUnary, but the wire request is a SignedRequest whose body is the protocol's request: the
 * handler only runs for requests that pass verifySignedRequest for this operation (the protocol name).
 */
export function registerSignedUnary<I extends DescMessage, O extends DescMessage>(
  node: Libp2p,
  name: string,
  requestSchema: I,
  responseSchema: O,
  handler: (
    request: MessageShape<I>,
    context: SignedCallContext,
  ) => Promise<MessageInitShape<O>> | MessageInitShape<O>,
  options: ServerOptions & { verifier: RequestVerifier },
): Promise<() => Promise<void>> {
  return registerUnary(
    node,
    name,
    SignedRequestSchema,
    responseSchema,
    async (signed, context) => {
      const opened = await openSigned(signed, context, name, requestSchema, options.verifier);
      return handler(opened.body, opened.context);
    },
    options,
  );
}

/** Like registerServerStream, for signed requests (see registerSignedUnary). */
export function registerSignedServerStream<I extends DescMessage, O extends DescMessage>(
  node: Libp2p,
  name: string,
  requestSchema: I,
  responseSchema: O,
  handler: (request: MessageShape<I>, context: SignedCallContext) => AsyncIterable<MessageInitShape<O>>,
  options: ServerOptions & { verifier: RequestVerifier },
): Promise<() => Promise<void>> {
  return registerServerStream(
    node,
    name,
    SignedRequestSchema,
    responseSchema,
    async function* (signed, context) {
      const opened = await openSigned(signed, context, name, requestSchema, options.verifier);
      yield* handler(opened.body, opened.context);
    },
    options,
  );
}

async function sign<I extends DescMessage>(
  name: string,
  requestSchema: I,
  request: MessageInitShape<I>,
  signing: RequestSigning,
) {
  const body = toBinary(requestSchema, newMessage(requestSchema, request));
  return signRequest({ ...signing, operation: name, body });
}

/** Signs `request` for `name` and calls the unary protocol with it. */
export async function callSignedUnary<I extends DescMessage, O extends DescMessage>(
  node: Libp2p,
  peer: DialTarget,
  name: string,
  requestSchema: I,
  request: MessageInitShape<I>,
  responseSchema: O,
  signing: RequestSigning,
  options: CallOptions = {},
): Promise<MessageShape<O>> {
  const signed = await sign(name, requestSchema, request, signing);
  return callUnary(node, peer, name, SignedRequestSchema, signed, responseSchema, options);
}

/** Signs `request` for `name` and calls the server-stream protocol with it. */
export async function* callSignedServerStream<I extends DescMessage, O extends DescMessage>(
  node: Libp2p,
  peer: DialTarget,
  name: string,
  requestSchema: I,
  request: MessageInitShape<I>,
  responseSchema: O,
  signing: RequestSigning,
  options: CallOptions = {},
): AsyncGenerator<MessageShape<O>, void, undefined> {
  const signed = await sign(name, requestSchema, request, signing);
  yield* callServerStream(node, peer, name, SignedRequestSchema, signed, responseSchema, options);
}
