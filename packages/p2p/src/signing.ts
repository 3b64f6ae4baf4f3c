import { create } from "@bufbuild/protobuf";
import { ErrorCode, type SignedRequest, SignedRequestSchema } from "@trustedpods/protocol";
import {
  type Address,
  bytesToHex,
  getAddress,
  type Hex,
  hexToBytes,
  isAddressEqual,
  isHex,
  keccak256,
  recoverTypedDataAddress,
  type TypedDataDefinition,
  type WalletClient,
} from "viem";
import { RpcError } from "./errors.js";

/** EIP-712 domain name and version of every Trusted Pods publisher request. */
export const REQUEST_DOMAIN_NAME = "TrustedPods";
export const REQUEST_DOMAIN_VERSION = "1";

/** The EIP-712 struct a publisher signs; the web app must sign exactly this (see docs/p2p.md). */
export const REQUEST_TYPES = {
  Request: [
    { name: "provider", type: "address" },
    { name: "podId", type: "bytes32" },
    { name: "operation", type: "string" },
    { name: "bodyHash", type: "bytes32" },
    { name: "expiry", type: "uint64" },
    { name: "nonce", type: "uint64" },
  ],
} as const;

export type RequestTypedData = TypedDataDefinition<typeof REQUEST_TYPES, "Request">;

/** Default lifetime of a signed request, and the longest a provider accepts. */
export const DEFAULT_REQUEST_TTL_SECONDS = 300;
export const MAX_REQUEST_TTL_SECONDS = 600;

export const ZERO_POD_ID: Hex = `0x${"00".repeat(32)}`;
const MAX_UINT64 = 2n ** 64n - 1n;

/**
 * Anything that signs EIP-712 typed data for an address: a viem LocalAccount (privateKeyToAccount,
 * mnemonicToAccount) fits as is; a WalletClient (browser wallet) fits through walletClientSigner.
 */
export interface RequestSigner {
  address: Address;
  signTypedData: (parameters: RequestTypedData) => Promise<Hex>;
}

/** Signs through a viem WalletClient, e.g. one wrapping a browser wallet. */
export function walletClientSigner(client: WalletClient, address: Address): RequestSigner {
  return {
    address,
    signTypedData: (parameters) => client.signTypedData({ account: address, ...parameters }),
  };
}

export interface RequestFields {
  chainId: bigint;
  provider: Address;
  podId: Hex;
  operation: string;
  bodyHash: Hex;
  expiry: bigint;
  nonce: bigint;
}

/** The full EIP-712 typed data of a request: what the signer signs and the provider recovers from. */
export function requestTypedData(fields: RequestFields): RequestTypedData {
  return {
    domain: { name: REQUEST_DOMAIN_NAME, version: REQUEST_DOMAIN_VERSION, chainId: fields.chainId },
    types: REQUEST_TYPES,
    primaryType: "Request",
    message: {
      provider: fields.provider,
      podId: fields.podId,
      operation: fields.operation,
      bodyHash: fields.bodyHash,
      expiry: fields.expiry,
      nonce: fields.nonce,
    },
  };
}

export interface SignRequestInput {
  signer: RequestSigner;
  chainId: bigint | number;
  /** The provider's Ethereum address (from the Registry). */
  provider: Address;
  /** 32-byte pod id; ZERO_POD_ID for operations about no particular pod. */
  podId?: Hex;
  /** The protocol name, e.g. "provision". */
  operation: string;
  /** The protocol's request message, already encoded. */
  body: Uint8Array;
  /** Seconds until the request expires (default 300, at most 600). */
  ttlSeconds?: number;
  /** Defaults to 64 random bits. */
  nonce?: bigint;
  /** Clock in ms, for tests. */
  now?: () => number;
}

// Web Crypto rather than node:crypto, so the web app can sign with this module in the browser.
function randomNonce(): bigint {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return new DataView(bytes.buffer).getBigUint64(0);
}

/** Signs a request body for one provider, pod and operation. */
export async function signRequest(input: SignRequestInput): Promise<SignedRequest> {
  const ttl = input.ttlSeconds ?? DEFAULT_REQUEST_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_REQUEST_TTL_SECONDS) {
    throw new RangeError(`ttlSeconds must be an integer in 1..${MAX_REQUEST_TTL_SECONDS}`);
  }
  const podId = input.podId ?? ZERO_POD_ID;
  if (!isHex(podId) || hexToBytes(podId).byteLength !== 32)
    throw new RangeError("podId must be 32 bytes of hex");
  const nowSeconds = BigInt(Math.floor((input.now ?? Date.now)() / 1000));
  const fields: RequestFields = {
    chainId: BigInt(input.chainId),
    provider: getAddress(input.provider),
    podId,
    operation: input.operation,
    bodyHash: keccak256(input.body),
    expiry: nowSeconds + BigInt(ttl),
    nonce: input.nonce ?? randomNonce(),
  };
  const signature = await input.signer.signTypedData(requestTypedData(fields));
  return create(SignedRequestSchema, {
    body: input.body,
    bodyHash: hexToBytes(fields.bodyHash),
    publisher: hexToBytes(getAddress(input.signer.address)),
    provider: hexToBytes(fields.provider),
    podId: hexToBytes(podId),
    operation: fields.operation,
    expiry: fields.expiry,
    nonce: fields.nonce,
    chainId: fields.chainId,
    signature: hexToBytes(signature),
  });
}

// ---------------------------------------------------------------------------------------------------------
// Replay protection

/** One nonce a publisher used, kept until its request expires. */
export interface NonceRecord {
  /** Checksummed publisher address. */
  publisher: Address;
  nonce: bigint;
  /** Unix seconds. */
  expiry: bigint;
}

/**
 * Where the replay cache persists nonces so a restart does not reopen the replay window. The provider
 * daemon implements it over SQLite; MemoryNonceStore is the in-process implementation.
 */
export interface NonceStore {
  /** Every record whose expiry is after `nowSeconds`. */
  load(nowSeconds: bigint): Promise<NonceRecord[]>;
  /** Stores a record durably before the request it belongs to is acted on. */
  add(record: NonceRecord): Promise<void>;
  /** Drops records whose expiry is at or before `nowSeconds`. */
  prune(nowSeconds: bigint): Promise<void>;
}

/** A NonceStore kept in memory: survives a ReplayCache being rebuilt, not the process. */
export class MemoryNonceStore implements NonceStore {
  private readonly records = new Map<string, NonceRecord>();

  async load(nowSeconds: bigint): Promise<NonceRecord[]> {
    return [...this.records.values()].filter((r) => r.expiry > nowSeconds);
  }

  async add(record: NonceRecord): Promise<void> {
    this.records.set(nonceKey(record.publisher, record.nonce), { ...record });
  }

  async prune(nowSeconds: bigint): Promise<void> {
    for (const [key, record] of this.records) if (record.expiry <= nowSeconds) this.records.delete(key);
  }

  get size(): number {
    return this.records.size;
  }
}

function nonceKey(publisher: Address, nonce: bigint): string {
  return `${publisher.toLowerCase()}:${nonce}`;
}

export interface ReplayCacheOptions {
  /** Most unexpired nonces held at once (default 100 000); beyond that requests get RESOURCE_EXHAUSTED. */
  maxEntries?: number;
  /** Clock in ms, for tests. */
  now?: () => number;
}

// Expired entries are swept when the cache is full, and otherwise at most this often.
const SWEEP_INTERVAL_MS = 60_000;

/**
 * Remembers (publisher, nonce) pairs until their request expires. A request older than its expiry is refused
 * anyway, so forgetting a nonce after its expiry cannot let a replay through, and the cache stays bounded by
 * the number of requests accepted in one maximum TTL. When full of unexpired entries it refuses new requests
 * rather than evicting one (evicting would reopen a replay).
 */
export class ReplayCache {
  private readonly entries = new Map<string, bigint>();
  private readonly maxEntries: number;
  private readonly now: () => number;
  private lastSweep = 0;

  private constructor(
    private readonly store: NonceStore,
    options: ReplayCacheOptions,
  ) {
    this.maxEntries = options.maxEntries ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  /** A cache primed from `store` (default: a fresh MemoryNonceStore). */
  static async open(store: NonceStore = new MemoryNonceStore(), options: ReplayCacheOptions = {}) {
    const cache = new ReplayCache(store, options);
    for (const record of await store.load(cache.nowSeconds())) {
      cache.entries.set(nonceKey(record.publisher, record.nonce), record.expiry);
    }
    return cache;
  }

  get size(): number {
    return this.entries.size;
  }

  private nowSeconds(): bigint {
    return BigInt(Math.floor(this.now() / 1000));
  }

  /**
   * Records the nonce, or throws UNAUTHENTICATED (reason "replayed") if this publisher used it before. The
   * check and the in-memory insert happen in one synchronous step, so two concurrent copies of one request
   * cannot both pass.
   */
  async remember(publisher: Address, nonce: bigint, expiry: bigint): Promise<void> {
    const key = nonceKey(publisher, nonce);
    const nowSeconds = this.nowSeconds();
    const seen = this.entries.get(key);
    if (seen !== undefined && seen > nowSeconds) {
      throw unauthenticated("replayed", "this request was already received (nonce reused)");
    }
    if (this.entries.size >= this.maxEntries || this.now() - this.lastSweep > SWEEP_INTERVAL_MS) {
      this.sweep(nowSeconds);
    }
    if (this.entries.size >= this.maxEntries) {
      throw new RpcError(ErrorCode.RESOURCE_EXHAUSTED, "too many recent requests; retry later", {
        details: { reason: "replay-cache-full" },
      });
    }
    this.entries.set(key, expiry);
    await this.store.add({ publisher: getAddress(publisher), nonce, expiry });
  }

  private sweep(nowSeconds: bigint): void {
    this.lastSweep = this.now();
    for (const [key, expiry] of this.entries) if (expiry <= nowSeconds) this.entries.delete(key);
    this.store.prune(nowSeconds).catch(() => {
      // Pruning is housekeeping; a failure only leaves expired rows that load() filters out anyway.
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Verification

export interface VerifyRequestOptions {
  /** This provider's Ethereum address: requests for anyone else are refused. */
  provider: Address;
  chainId: bigint | number;
  /** The operation the request arrived on (the protocol name). */
  operation: string;
  replay: ReplayCache;
  /** Longest accepted distance between now and the expiry (default and maximum 600 s). */
  maxTtlSeconds?: number;
  /** Clock in ms, for tests. */
  now?: () => number;
}

export interface VerifiedRequest {
  publisher: Address;
  provider: Address;
  podId: Hex;
  operation: string;
  body: Uint8Array;
  expiry: bigint;
  nonce: bigint;
}

/** The reasons in `details.reason` of the UNAUTHENTICATED errors verifySignedRequest throws. */
export type RejectReason =
  | "malformed"
  | "wrong-chain"
  | "wrong-provider"
  | "wrong-operation"
  | "body-hash-mismatch"
  | "expired"
  | "expiry-too-far"
  | "bad-signature"
  | "replayed";

function unauthenticated(reason: RejectReason, message: string): RpcError {
  return new RpcError(ErrorCode.UNAUTHENTICATED, message, { details: { reason } });
}

function fixedBytes(value: Uint8Array, length: number, field: string): Hex {
  if (value.byteLength !== length) throw unauthenticated("malformed", `${field} must be ${length} bytes`);
  return bytesToHex(value);
}

/**
 * Checks a signed request from the cheap checks to the expensive ones, and records its nonce last so a
 * forged request cannot burn a publisher's nonce. Throws RpcError UNAUTHENTICATED with `details.reason` set.
 */
export async function verifySignedRequest(
  request: SignedRequest,
  options: VerifyRequestOptions,
): Promise<VerifiedRequest> {
  const publisher = getAddress(fixedBytes(request.publisher, 20, "publisher"));
  const provider = getAddress(fixedBytes(request.provider, 20, "provider"));
  const podId = fixedBytes(request.podId, 32, "pod id");
  const bodyHash = fixedBytes(request.bodyHash, 32, "body hash");
  const signature = fixedBytes(request.signature, 65, "signature");
  if (request.expiry > MAX_UINT64 || request.nonce > MAX_UINT64) {
    throw unauthenticated("malformed", "expiry and nonce must fit in 64 bits");
  }
  if (request.chainId !== BigInt(options.chainId)) {
    throw unauthenticated(
      "wrong-chain",
      `signed for chain ${request.chainId}, this provider is on ${options.chainId}`,
    );
  }
  if (!isAddressEqual(provider, options.provider)) {
    throw unauthenticated("wrong-provider", `addressed to provider ${provider}, not this one`);
  }
  if (request.operation !== options.operation) {
    throw unauthenticated(
      "wrong-operation",
      `signed for "${request.operation}", sent to "${options.operation}"`,
    );
  }
  if (keccak256(request.body) !== bodyHash) {
    throw unauthenticated("body-hash-mismatch", "the body does not match the signed body hash");
  }
  const nowSeconds = BigInt(Math.floor((options.now ?? Date.now)() / 1000));
  if (request.expiry <= nowSeconds) throw unauthenticated("expired", "the request has expired");
  const maxTtl = Math.min(options.maxTtlSeconds ?? MAX_REQUEST_TTL_SECONDS, MAX_REQUEST_TTL_SECONDS);
  if (request.expiry > nowSeconds + BigInt(maxTtl)) {
    throw unauthenticated("expiry-too-far", `the expiry is more than ${maxTtl} s in the future`);
  }
  const fields: RequestFields = {
    chainId: request.chainId,
    provider,
    podId,
    operation: request.operation,
    bodyHash,
    expiry: request.expiry,
    nonce: request.nonce,
  };
  let signer: Address;
  try {
    signer = await recoverTypedDataAddress({ ...requestTypedData(fields), signature });
  } catch {
    throw unauthenticated("bad-signature", "the signature is invalid");
  }
  if (!isAddressEqual(signer, publisher)) {
    throw unauthenticated("bad-signature", "the signature was not made by the claimed publisher");
  }
  await options.replay.remember(publisher, request.nonce, request.expiry);
  return {
    publisher,
    provider,
    podId,
    operation: request.operation,
    body: request.body,
    expiry: request.expiry,
    nonce: request.nonce,
  };
}
