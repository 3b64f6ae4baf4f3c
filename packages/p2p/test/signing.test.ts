import { create, toBinary } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { ErrorCode, type SignedRequest, SignedRequestSchema } from "@trustedpods/protocol";
import { createWalletClient, custom, type Hex, keccak256, toBytes } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  callSignedServerStream,
  callSignedUnary,
  callUnary,
  MemoryNonceStore,
  type P2PNode,
  ReplayCache,
  type RequestVerifier,
  RpcError,
  registerSignedServerStream,
  registerSignedUnary,
  signRequest,
  verifySignedRequest,
  walletClientSigner,
} from "../src/index.js";
import { addressOf, startProvider, startPublisher } from "./helpers.js";

const CHAIN_ID = 31337n;
const publisherAccount = privateKeyToAccount(generatePrivateKey());
const attackerAccount = privateKeyToAccount(generatePrivateKey());
const providerAccount = privateKeyToAccount(generatePrivateKey());
const otherProvider = privateKeyToAccount(generatePrivateKey()).address;
const POD_ID: Hex = keccak256(toBytes("pod-1"));
const body = toBinary(StringValueSchema, create(StringValueSchema, { value: "deploy me" }));

async function expectRejected(promise: Promise<unknown>, code: ErrorCode, reason: string): Promise<RpcError> {
  const error = await promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RpcError);
  expect((error as RpcError).code).toBe(code);
  expect((error as RpcError).reason).toBe(reason);
  return error as RpcError;
}

function sign(overrides: Partial<Parameters<typeof signRequest>[0]> = {}): Promise<SignedRequest> {
  return signRequest({
    signer: publisherAccount,
    chainId: CHAIN_ID,
    provider: providerAccount.address,
    podId: POD_ID,
    operation: "provision",
    body,
    ...overrides,
  });
}

async function verifier(replay?: ReplayCache): Promise<RequestVerifier> {
  return {
    provider: providerAccount.address,
    chainId: CHAIN_ID,
    replay: replay ?? (await ReplayCache.open()),
  };
}

async function verify(request: SignedRequest, v?: RequestVerifier, operation = "provision") {
  return verifySignedRequest(request, { ...(v ?? (await verifier())), operation });
}

describe("verifySignedRequest", () => {
  it("accepts a well-formed request and reports who signed it", async () => {
    const verified = await verify(await sign());
    expect(verified.publisher).toBe(publisherAccount.address);
    expect(verified.podId).toBe(POD_ID);
    expect(verified.body).toEqual(body);
  });

  it("rejects a forged signature (someone else's key claiming to be the publisher)", async () => {
    const forged = await sign({ signer: attackerAccount });
    forged.publisher = toBytes(publisherAccount.address);
    await expectRejected(verify(forged), ErrorCode.UNAUTHENTICATED, "bad-signature");
  });

  it("rejects a signature of garbage bytes", async () => {
    const request = await sign();
    request.signature = new Uint8Array(65).fill(1);
    await expectRejected(verify(request), ErrorCode.UNAUTHENTICATED, "bad-signature");
  });

  it("rejects a request addressed to another provider", async () => {
    await expectRejected(
      verify(await sign({ provider: otherProvider })),
      ErrorCode.UNAUTHENTICATED,
      "wrong-provider",
    );
  });

  it("rejects a provider field rewritten to this provider (the signature no longer matches)", async () => {
    const request = await sign({ provider: otherProvider });
    request.provider = toBytes(providerAccount.address);
    await expectRejected(verify(request), ErrorCode.UNAUTHENTICATED, "bad-signature");
  });

  it("rejects a request signed for another operation", async () => {
    const request = await sign({ operation: "delete" });
    await expectRejected(verify(request), ErrorCode.UNAUTHENTICATED, "wrong-operation");
  });

  it("rejects a tampered body", async () => {
    const request = await sign();
    request.body = toBinary(StringValueSchema, create(StringValueSchema, { value: "deploy a miner" }));
    await expectRejected(verify(request), ErrorCode.UNAUTHENTICATED, "body-hash-mismatch");
  });

  it("rejects a tampered body whose hash was updated too", async () => {
    const request = await sign();
    request.body = toBinary(StringValueSchema, create(StringValueSchema, { value: "deploy a miner" }));
    request.bodyHash = toBytes(keccak256(request.body));
    await expectRejected(verify(request), ErrorCode.UNAUTHENTICATED, "bad-signature");
  });

  it("rejects a tampered pod id", async () => {
    const request = await sign();
    request.podId = toBytes(keccak256(toBytes("someone-elses-pod")));
    await expectRejected(verify(request), ErrorCode.UNAUTHENTICATED, "bad-signature");
  });

  it("rejects an expired request", async () => {
    const request = await sign({ now: () => Date.now() - 3_600_000 });
    await expectRejected(verify(request), ErrorCode.UNAUTHENTICATED, "expired");
  });

  it("rejects an expiry too far in the future", async () => {
    const request = await sign({ now: () => Date.now() + 3_600_000 });
    await expectRejected(verify(request), ErrorCode.UNAUTHENTICATED, "expiry-too-far");
  });

  it("rejects a request for another chain", async () => {
    await expectRejected(verify(await sign({ chainId: 1n })), ErrorCode.UNAUTHENTICATED, "wrong-chain");
  });

  it("rejects malformed fields", async () => {
    const request = await sign();
    request.signature = request.signature.subarray(0, 64);
    await expectRejected(verify(request), ErrorCode.UNAUTHENTICATED, "malformed");
  });

  it("rejects a replayed request", async () => {
    const v = await verifier();
    const request = await sign();
    await verify(request, v);
    await expectRejected(verify(request, v), ErrorCode.UNAUTHENTICATED, "replayed");
  });

  it("keeps rejecting replays after a restart through the nonce store", async () => {
    const store = new MemoryNonceStore();
    const request = await sign();
    await verify(request, await verifier(await ReplayCache.open(store)));
    expect(store.size).toBe(1);
    const restarted = await verifier(await ReplayCache.open(store));
    await expectRejected(verify(request, restarted), ErrorCode.UNAUTHENTICATED, "replayed");
  });

  it("does not let a forged request burn the publisher's nonce", async () => {
    const v = await verifier();
    const forged = await sign({ signer: attackerAccount, nonce: 42n });
    forged.publisher = toBytes(publisherAccount.address);
    await expectRejected(verify(forged, v), ErrorCode.UNAUTHENTICATED, "bad-signature");
    const genuine = await sign({ nonce: 42n });
    expect((await verify(genuine, v)).nonce).toBe(42n);
  });

  it("keys nonces by publisher, so two publishers may use the same nonce", async () => {
    const v = await verifier();
    await verify(await sign({ nonce: 7n }), v);
    const other = await sign({ nonce: 7n, signer: attackerAccount });
    expect((await verify(other, v)).publisher).toBe(attackerAccount.address);
  });

  it("refuses new requests when the replay cache is full, and frees expired entries", async () => {
    let now = Date.now();
    const clock = () => now;
    const v = {
      ...(await verifier(await ReplayCache.open(new MemoryNonceStore(), { maxEntries: 2, now: clock }))),
    };
    const at = { now: clock };
    await verifySignedRequest(await sign({ ttlSeconds: 60, now: clock }), {
      ...v,
      ...at,
      operation: "provision",
    });
    await verifySignedRequest(await sign({ ttlSeconds: 60, now: clock }), {
      ...v,
      ...at,
      operation: "provision",
    });
    await expectRejected(
      verifySignedRequest(await sign({ now: clock }), { ...v, ...at, operation: "provision" }),
      ErrorCode.RESOURCE_EXHAUSTED,
      "replay-cache-full",
    );
    now += 61_000;
    const fresh = await verifySignedRequest(await sign({ now: clock }), {
      ...v,
      ...at,
      operation: "provision",
    });
    expect(fresh.publisher).toBe(publisherAccount.address);
    expect(v.replay.size).toBe(1);
  });

  it("refuses a signing lifetime above the maximum", async () => {
    await expect(sign({ ttlSeconds: 601 })).rejects.toThrow(RangeError);
  });

  it("verifies what a browser wallet signs through eth_signTypedData_v4 (WalletClient path)", async () => {
    // A fake EIP-1193 wallet: it receives the JSON payload a browser wallet would and signs it with a local key,
    // turning JSON's decimal strings back into integers as wallets do. This checks viem's JSON-RPC encoding of
    // our typed data (bigint uint64 fields, chainId) leads to the digest the provider recovers from.
    const walletKey = privateKeyToAccount(generatePrivateKey());
    const requests: string[] = [];
    const client = createWalletClient({
      transport: custom({
        async request({ method, params }: { method: string; params: unknown }) {
          requests.push(method);
          if (method !== "eth_signTypedData_v4") throw new Error(`fake wallet does not support ${method}`);
          const [, json] = params as [string, string];
          const typed = JSON.parse(json);
          const { EIP712Domain: _, ...types } = typed.types;
          const message = {
            ...typed.message,
            expiry: BigInt(typed.message.expiry),
            nonce: BigInt(typed.message.nonce),
          };
          const domain = { ...typed.domain, chainId: BigInt(typed.domain.chainId) };
          return walletKey.signTypedData({ domain, types, primaryType: typed.primaryType, message });
        },
      }),
    });
    const request = await sign({ signer: walletClientSigner(client, walletKey.address) });
    expect(requests).toEqual(["eth_signTypedData_v4"]);
    expect((await verify(request)).publisher).toBe(walletKey.address);
  });
});

describe("signed protocols over libp2p", () => {
  let provider: P2PNode;
  let publisher: P2PNode;
  let v: RequestVerifier;
  const signing = {
    signer: publisherAccount,
    chainId: CHAIN_ID,
    provider: providerAccount.address,
    podId: POD_ID,
  };

  beforeAll(async () => {
    provider = await startProvider();
    publisher = await startPublisher();
    v = await verifier();
    await registerSignedUnary(
      provider,
      "provision",
      StringValueSchema,
      StringValueSchema,
      (req, ctx) => ({ value: `${req.value} for ${ctx.request.publisher} pod ${ctx.request.podId}` }),
      { verifier: v },
    );
    await registerSignedServerStream(
      provider,
      "logs",
      StringValueSchema,
      StringValueSchema,
      async function* (req, ctx) {
        yield { value: `${req.value}:${ctx.request.publisher}` };
      },
      { verifier: v },
    );
  });

  afterAll(async () => {
    await publisher?.stop();
    await provider?.stop();
  });

  it("serves a signed unary call and tells the handler who signed it", async () => {
    const response = await callSignedUnary(
      publisher,
      addressOf(provider, "tcp"),
      "provision",
      StringValueSchema,
      { value: "ok" },
      StringValueSchema,
      signing,
    );
    expect(response.value).toBe(`ok for ${publisherAccount.address} pod ${POD_ID}`);
  });

  it("serves a signed server stream", async () => {
    const out: string[] = [];
    for await (const m of callSignedServerStream(
      publisher,
      addressOf(provider, "ws"),
      "logs",
      StringValueSchema,
      { value: "line" },
      StringValueSchema,
      signing,
    )) {
      out.push(m.value);
    }
    expect(out).toEqual([`line:${publisherAccount.address}`]);
  });

  it("sends the rejection reason to the caller for a replayed request", async () => {
    const request = await sign();
    const call = () =>
      callUnary(
        publisher,
        addressOf(provider, "tcp"),
        "provision",
        SignedRequestSchema,
        request,
        StringValueSchema,
      );
    expect((await call()).value).toContain(publisherAccount.address);
    const error = await expectRejected(call(), ErrorCode.UNAUTHENTICATED, "replayed");
    expect(error.remote).toBe(true);
  });

  it("sends wrong-operation to a caller who replays a delete request on provision", async () => {
    const request = await sign({ operation: "delete" });
    await expectRejected(
      callUnary(
        publisher,
        addressOf(provider, "tcp"),
        "provision",
        SignedRequestSchema,
        request,
        StringValueSchema,
      ),
      ErrorCode.UNAUTHENTICATED,
      "wrong-operation",
    );
  });

  it("sends bad-signature for a forged request over the wire", async () => {
    const forged = await sign({ signer: attackerAccount });
    forged.publisher = toBytes(publisherAccount.address);
    await expectRejected(
      callUnary(
        publisher,
        addressOf(provider, "tcp"),
        "provision",
        SignedRequestSchema,
        forged,
        StringValueSchema,
      ),
      ErrorCode.UNAUTHENTICATED,
      "bad-signature",
    );
  });

  it("rejects a signed body that is not the protocol's message type", async () => {
    const request = await sign({ body: Uint8Array.from([0x0a, 0x02, 0xff, 0xfe]) });
    await expectRejected(
      callUnary(
        publisher,
        addressOf(provider, "tcp"),
        "provision",
        SignedRequestSchema,
        request,
        StringValueSchema,
      ),
      ErrorCode.INVALID_ARGUMENT,
      "malformed-message",
    );
  });
});
