// Where and as whom a publisher talks to a provider, the provider's errors as the SDK's, the endpoints a pod
// answers on, and waiting for the confirmations a provider asks for. Browser-safe.
import type { Libp2p } from "@libp2p/interface";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { errorCodeName, RpcError } from "@trustedpods/p2p/browser";
import type { Endpoint } from "@trustedpods/protocol";
import type { Account, Address } from "viem";
import { PublisherError } from "./errors.js";
import { shortMessage } from "./network.js";
import type { PodRecord } from "./pods.js";

/** Endpoints in the shape `tpod deploy --json` prints. */
export interface PodEndpoints {
  http: string[];
  tcp: { container: string; port: number; address: string }[];
  udp: { container: string; port: number; address: string }[];
}

export function endpointsFromWire(list: readonly Endpoint[]): PodEndpoints {
  const out: PodEndpoints = { http: [], tcp: [], udp: [] };
  for (const e of list) {
    if (e.target.case === "httpUrl" && e.target.value) out.http.push(e.target.value);
    else if (e.target.case === "tcpAddress")
      out.tcp.push({ container: e.container, port: e.containerPort, address: e.target.value });
    else if (e.target.case === "udpAddress")
      out.udp.push({ container: e.container, port: e.containerPort, address: e.target.value });
  }
  return out;
}

/**
 * Waits until the chain holds `confirmations` blocks on top of `block` (the provider reads the channel at
 * head − confirmations), or until `deadlineMs` (epoch ms): then returns false and the provider's own refusal,
 * which names the confirmations, decides. Polls the head: a devnet mines only on transactions.
 */
export async function waitForConfirmations(
  client: { getBlockNumber(args?: { cacheTime?: number }): Promise<bigint> },
  block: bigint,
  confirmations: number,
  deadlineMs: number,
): Promise<boolean> {
  const target = block + BigInt(confirmations);
  for (let attempt = 0; ; attempt++) {
    if ((await client.getBlockNumber({ cacheTime: 0 })) >= target) return true;
    if (Date.now() > deadlineMs) return false;
    await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
  }
}

/** Where and as whom a publisher talks to one provider about one pod. */
export interface PodConnection {
  node: Libp2p;
  /** The provider's multiaddrs (each ending in /p2p/PEER). */
  target: Multiaddr[];
  provider: Address;
  chainId: number;
  signer: Account & { signTypedData: NonNullable<Account["signTypedData"]> };
}

export function podConnection(
  node: Libp2p,
  record: Pick<PodRecord, "provider" | "multiaddrs" | "chainId">,
  signer: PodConnection["signer"],
  multiaddrs?: string[],
): PodConnection {
  const addrs = multiaddrs ?? record.multiaddrs ?? [];
  if (addrs.length === 0)
    throw new PublisherError("PROVIDER_UNREACHABLE", `no address known for provider ${record.provider}`);
  return {
    node,
    target: addrs.map((a) => multiaddr(a)),
    provider: record.provider,
    chainId: record.chainId,
    signer,
  };
}

/** A provider refusal as the SDK's error, keeping the wire code and field. */
export function providerError(op: string, err: unknown): unknown {
  if (err instanceof PublisherError) return err;
  if (err instanceof RpcError) {
    const code = errorCodeName(err.code);
    return new PublisherError("PROVIDER_REFUSED", `${op}: the provider refused (${code}): ${err.message}`, {
      cause: err,
      ...(err.details.field ? { field: err.details.field } : {}),
      details: { providerCode: code, ...err.details },
    });
  }
  return new PublisherError("PROVIDER_UNREACHABLE", `${op}: ${shortMessage(err)}`, { cause: err });
}

export async function signed<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw providerError(op, err);
  }
}
