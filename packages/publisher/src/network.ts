/**
 * Which chain and contracts a publisher talks to. The shapes here are the single source of truth for the files
 * tpod reads: the devnet state file (`$TPOD_HOME/devnet.json`, written by `tpod devnet up`), named network files
 * (`$TPOD_HOME/networks/NAME.json`) and contracts files (`--contracts FILE`). Finding those files is in
 * "@trustedpods/publisher/node"; everything here also runs in a browser.
 */
import type { Policy } from "@trustedpods/attestation";
import type { ChainContext } from "@trustedpods/chain";
import {
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  isAddress,
  type PublicClient,
  type Transport,
  type WalletClient,
} from "viem";
import { PublisherError } from "./errors.js";
import { normalizePrivateKey } from "./keystore.js";

export interface NetworkContracts {
  registry: Address;
  payments: Address;
  marketplace: Address;
  /** The payment token the network's providers price in, when the network has one (the devnet does). */
  token?: Address;
  /** The release registry (Releases.sol); without it the default policy accepts no provider. */
  releases?: Address;
}

/** One provider the devnet started. */
export interface DevnetProvider {
  /** The provider's Ethereum address (its Registry entry). */
  address: Address;
  /** libp2p peer id. */
  peerId: string;
  multiaddrs: string[];
  /** The provider's own IPFS node (where it pulls images from; a publisher may dial it to serve blobs fast). */
  ipfs?: string[];
  /** The provider's HTTP gateway. */
  gateway?: DevnetGateway;
}

/** An HTTP gateway: pods' http endpoints are `http://NAME.<baseDomain>:<port>/` under `url`'s port. */
export interface DevnetGateway {
  /** e.g. `http://localhost:8080/`. */
  url: string;
  /** e.g. `localhost`: pod hostnames are one label under it. */
  baseDomain: string;
}

/**
 * `$TPOD_HOME/devnet.json`: what a running `tpod devnet up` tells other tpod commands. Written atomically with
 * mode 0600 when the devnet is ready, removed when it stops; `pid` lets readers tell a stale file from a live one.
 */
export interface DevnetState {
  version: 1;
  rpcUrl: string;
  chainId: number;
  contracts: Required<NetworkContracts>;
  /**
   * The funded publisher account's private key. It is a PUBLIC anvil test key: the devnet uses it when no
   * --key is given; it must never hold value on a real chain.
   */
  publisherKey?: Hex;
  /** The publisher account's address (derived from publisherKey when absent). */
  publisher?: Address;
  providers?: DevnetProvider[];
  /**
   * The devnet's IPFS node: `multiaddrs` (with /p2p/ID) are where publishers push images and secrets (the
   * provider dials it at start); `gatewayUrl` serves that node's raw blocks over HTTP (`URL/ipfs/CID?format=raw`,
   * what browsers read listing metadata from).
   */
  ipfs?: { multiaddrs?: string[]; gatewayUrl?: string };
  /** The devnet provider's HTTP gateway (the same as providers[0].gateway). */
  gateway?: DevnetGateway;
  /** Process id of the devnet; a file whose process is gone is stale. */
  pid?: number;
  /** ISO 8601 time the devnet became ready. */
  startedAt?: string;
}

/** `$TPOD_HOME/networks/NAME.json`: a chain the user works with, chosen with --network NAME or TPOD_NETWORK. */
export interface NetworkFile {
  rpcUrl: string;
  /** When given, the RPC endpoint must report this chain id (guards against a wrong URL). */
  chainId?: number;
  contracts: NetworkContracts;
  /** Policy file (YAML/JSON, attestation format) used when no --policy is given; relative to the networks dir. */
  policy?: string;
  /** Keystore address used when no --key is given. */
  key?: Address;
}

/** A network as the SDK uses it, with where each part came from (for messages and `tpod network show`). */
export interface ResolvedNetwork {
  /** "devnet", the network file's name, or "custom" for flags and environment. */
  name: string;
  rpcUrl: string;
  chainId?: number;
  contracts: NetworkContracts;
  /** True when both the RPC URL and the contracts come from the running devnet's state file. */
  isDevnet: boolean;
  sources: { rpcUrl: string; contracts: string };
  devnet?: DevnetState;
  /** A policy file named by the network file (absolute path). */
  policyFile?: string;
  /** The network file's default key. */
  defaultKey?: Address;
}

const MAX_URL_CHARS = 2048;
const MAX_LIST = 64;

type Bad = (message: string, field: string) => never;

function badIn(file: string): Bad {
  return (message, field) => {
    throw new PublisherError("NETWORK_MALFORMED", `${file}: ${field} ${message}`, { field });
  };
}

function obj(v: unknown, field: string, bad: Bad): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad("must be an object", field);
  return v as Record<string, unknown>;
}

function address(v: unknown, field: string, bad: Bad): Address {
  if (typeof v !== "string" || !isAddress(v, { strict: false }))
    bad("must be an address (0x and 40 hex digits)", field);
  return getAddress(v as string);
}

/** True for an http(s) URL of bounded length: the JSON-RPC transport tpod speaks. */
export function isHttpUrl(v: unknown): v is string {
  if (typeof v !== "string" || v.length > MAX_URL_CHARS) return false;
  try {
    return ["http:", "https:"].includes(new URL(v).protocol);
  } catch {
    return false;
  }
}

function rpcUrl(v: unknown, field: string, bad: Bad): string {
  if (!isHttpUrl(v)) bad("must be an http(s) URL", field);
  return v as string;
}

function chainId(v: unknown, field: string, bad: Bad): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) bad("must be a positive integer", field);
  return v as number;
}

function stringList(v: unknown, field: string, bad: Bad, max = 512): string[] {
  if (!Array.isArray(v) || v.length > MAX_LIST || v.some((s) => typeof s !== "string" || s.length > max))
    bad(`must be a list of at most ${MAX_LIST} strings`, field);
  return [...(v as string[])];
}

/** Parses the contract addresses of a contracts file, a network file or a devnet state file. */
export function parseContracts(v: unknown, field: string, bad: Bad, requireToken = false): NetworkContracts {
  const c = obj(v, field, bad);
  const out: NetworkContracts = {
    registry: address(c.registry, `${field}.registry`, bad),
    payments: address(c.payments, `${field}.payments`, bad),
    marketplace: address(c.marketplace, `${field}.marketplace`, bad),
  };
  if (c.token !== undefined || requireToken) out.token = address(c.token, `${field}.token`, bad);
  if (c.releases !== undefined) out.releases = address(c.releases, `${field}.releases`, bad);
  return out;
}

function gateway(v: unknown, field: string, bad: Bad): DevnetGateway {
  const g = obj(v, field, bad);
  if (typeof g.baseDomain !== "string" || !/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(g.baseDomain))
    bad("must be a lowercase DNS name", `${field}.baseDomain`);
  return { url: rpcUrl(g.url, `${field}.url`, bad), baseDomain: g.baseDomain as string };
}

/** Validates a devnet state document (unknown keys are ignored so an older reader keeps working). */
export function parseDevnetState(doc: unknown, file = "devnet.json"): DevnetState {
  const bad = badIn(file);
  const d = obj(doc, "document", bad);
  if (d.version !== 1) bad(`is ${String(d.version)}, this tpod reads version 1`, "version");
  const out: DevnetState = {
    version: 1,
    rpcUrl: rpcUrl(d.rpcUrl, "rpcUrl", bad),
    chainId: chainId(d.chainId, "chainId", bad),
    contracts: parseContracts(d.contracts, "contracts", bad, true) as Required<NetworkContracts>,
  };
  if (d.publisherKey !== undefined) {
    try {
      out.publisherKey = normalizePrivateKey(String(d.publisherKey));
    } catch {
      bad("must be a 32-byte hex private key", "publisherKey");
    }
  }
  if (d.publisher !== undefined) out.publisher = address(d.publisher, "publisher", bad);
  if (d.providers !== undefined) {
    if (!Array.isArray(d.providers) || d.providers.length > MAX_LIST) bad("must be a list", "providers");
    out.providers = (d.providers as unknown[]).map((p, i) => {
      const f = `providers[${i}]`;
      const o = obj(p, f, bad);
      if (typeof o.peerId !== "string" || o.peerId.length > 128) bad("must be a peer id", `${f}.peerId`);
      return {
        address: address(o.address, `${f}.address`, bad),
        peerId: o.peerId as string,
        multiaddrs: stringList(o.multiaddrs, `${f}.multiaddrs`, bad),
        ...(o.ipfs === undefined ? {} : { ipfs: stringList(o.ipfs, `${f}.ipfs`, bad) }),
        ...(o.gateway === undefined ? {} : { gateway: gateway(o.gateway, `${f}.gateway`, bad) }),
      };
    });
  }
  if (d.ipfs !== undefined) {
    const i = obj(d.ipfs, "ipfs", bad);
    out.ipfs = {
      ...(i.multiaddrs === undefined ? {} : { multiaddrs: stringList(i.multiaddrs, "ipfs.multiaddrs", bad) }),
      ...(i.gatewayUrl === undefined ? {} : { gatewayUrl: rpcUrl(i.gatewayUrl, "ipfs.gatewayUrl", bad) }),
    };
  }
  if (d.gateway !== undefined) out.gateway = gateway(d.gateway, "gateway", bad);
  if (d.pid !== undefined) {
    if (typeof d.pid !== "number" || !Number.isSafeInteger(d.pid) || d.pid <= 0)
      bad("must be a process id", "pid");
    out.pid = d.pid as number;
  }
  if (d.startedAt !== undefined) {
    if (typeof d.startedAt !== "string" || Number.isNaN(Date.parse(d.startedAt)))
      bad("must be an ISO 8601 time", "startedAt");
    out.startedAt = d.startedAt as string;
  }
  return out;
}

/** Validates a named network file; unknown keys are errors so a typo cannot go unnoticed. */
export function parseNetworkFile(doc: unknown, file: string): NetworkFile {
  const bad = badIn(file);
  const d = obj(doc, "document", bad);
  for (const k of Object.keys(d)) {
    if (!["rpcUrl", "chainId", "contracts", "policy", "key"].includes(k)) bad("is not a known key", k);
  }
  const out: NetworkFile = {
    rpcUrl: rpcUrl(d.rpcUrl, "rpcUrl", bad),
    contracts: parseContracts(d.contracts, "contracts", bad),
  };
  if (d.chainId !== undefined) out.chainId = chainId(d.chainId, "chainId", bad);
  if (d.policy !== undefined) {
    if (typeof d.policy !== "string" || d.policy.length === 0 || d.policy.length > 1024)
      bad("must be a file path", "policy");
    out.policy = d.policy as string;
  }
  if (d.key !== undefined) out.key = address(d.key, "key", bad);
  return out;
}

/**
 * A contracts file: either the addresses themselves (`{registry, payments, marketplace, token?}`) or any document
 * holding them under `contracts` (a network file, a devnet state file, `tpod devnet chain`'s line), whose
 * `rpcUrl` and `chainId` come along when present.
 */
export function parseContractsFile(
  doc: unknown,
  file: string,
): { contracts: NetworkContracts; rpcUrl?: string; chainId?: number } {
  const bad = badIn(file);
  const d = obj(doc, "document", bad);
  if (d.contracts === undefined) return { contracts: parseContracts(d, "document", bad) };
  return {
    contracts: parseContracts(d.contracts, "contracts", bad),
    ...(d.rpcUrl === undefined ? {} : { rpcUrl: rpcUrl(d.rpcUrl, "rpcUrl", bad) }),
    ...(d.chainId === undefined ? {} : { chainId: chainId(d.chainId, "chainId", bad) }),
  };
}

/** The devnet's evidence rules: accepts insecure-dev evidence (there is no TEE on a developer's machine). */
export const DEVNET_POLICY: Policy = Object.freeze({ allowInsecureDev: true });
/** Every other network's evidence rules: genuine SEV-SNP, TDX or SGX evidence, no debug guests, no insecure-dev. */
export const STRICT_POLICY: Policy = Object.freeze({});

/**
 * A policy as a network default applies it: a published, non-revoked release is required unless the policy
 * itself says `releases: any`. A policy file therefore narrows the release requirement unless it widens it
 * in so many words.
 */
export function requiringReleases(policy: Policy): Policy {
  return policy.releases ? policy : { ...policy, releases: "required" };
}

/** The devnet's default: insecure-dev allowed, and its devnet release (which lists insecure-dev) required. */
export const DEVNET_DEFAULT_POLICY: Policy = Object.freeze(requiringReleases(DEVNET_POLICY));
/** Every other network's default: genuine TEE evidence whose measurement is in a published, non-revoked release. */
export const NETWORK_DEFAULT_POLICY: Policy = Object.freeze(requiringReleases(STRICT_POLICY));

export interface SelectedPolicy {
  policy: Policy;
  /** Where it came from, for messages: "--policy FILE", "network file ...", "devnet default", "default". */
  source: string;
}

/**
 * Which attestation policy applies: an explicit one (--policy), else the network file's, else the devnet's
 * (allows insecure-dev) on the devnet, else the strict default (refuses insecure-dev). Each requires a published,
 * non-revoked release from the network's release registry unless the policy says `releases: any`.
 */
export function selectPolicy(
  network: ResolvedNetwork | undefined,
  explicit?: { policy: Policy; source: string },
  fromNetworkFile?: Policy,
): SelectedPolicy {
  if (explicit) return { policy: requiringReleases(explicit.policy), source: explicit.source };
  if (fromNetworkFile && network?.policyFile)
    return {
      policy: requiringReleases(fromNetworkFile),
      source: `network ${network.name} policy ${network.policyFile}`,
    };
  if (network?.isDevnet)
    return {
      policy: DEVNET_DEFAULT_POLICY,
      source: "devnet default (allows insecure-dev; a published, non-revoked release required)",
    };
  return {
    policy: NETWORK_DEFAULT_POLICY,
    source: "default (genuine TEE evidence of a published, non-revoked release; refuses insecure-dev)",
  };
}

export interface NetworkClients {
  chain: Chain;
  chainId: number;
  publicClient: PublicClient;
  walletClient?: WalletClient<Transport, Chain | undefined, Account>;
  /** What packages/chain's helpers take. */
  context: ChainContext;
}

/**
 * Connects to a resolved network: asks the RPC endpoint for its chain id (checked against the declared one) and
 * checks that the Registry has code there, so a wrong URL or a stale devnet file fails here with a clear message.
 */
export async function connectNetwork(
  network: ResolvedNetwork,
  options: { account?: Account; timeoutMs?: number } = {},
): Promise<NetworkClients> {
  const transport = http(network.rpcUrl, { retryCount: 0, timeout: options.timeoutMs ?? 10_000 });
  const probe = createPublicClient({ transport });
  let id: number;
  try {
    id = await probe.getChainId();
  } catch (err) {
    throw new PublisherError(
      "NETWORK_UNREACHABLE",
      `cannot reach the chain at ${network.rpcUrl} (from ${network.sources.rpcUrl}): ${shortMessage(err)}`,
      { cause: err },
    );
  }
  if (network.chainId !== undefined && network.chainId !== id) {
    throw new PublisherError(
      "NETWORK_UNREACHABLE",
      `${network.rpcUrl} is chain ${id}, but ${network.sources.rpcUrl} says chain ${network.chainId}`,
    );
  }
  const chain: Chain = {
    id,
    name: network.name,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [network.rpcUrl] } },
  };
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 250 }) as PublicClient;
  const code = await publicClient.getCode({ address: network.contracts.registry }).catch((err) => {
    throw new PublisherError("NETWORK_UNREACHABLE", `cannot read the Registry: ${shortMessage(err)}`, {
      cause: err,
    });
  });
  if (!code || code === "0x") {
    throw new PublisherError(
      "NETWORK_UNREACHABLE",
      `no contract at the Registry address ${network.contracts.registry} on ${network.rpcUrl} (contracts from ${network.sources.contracts}): wrong network, or a devnet that was restarted`,
    );
  }
  const walletClient = options.account
    ? (createWalletClient({ chain, transport, account: options.account }) as WalletClient<
        Transport,
        Chain | undefined,
        Account
      >)
    : undefined;
  const context: ChainContext = {
    publicClient,
    addresses: {
      registry: network.contracts.registry,
      payments: network.contracts.payments,
      marketplace: network.contracts.marketplace,
      ...(network.contracts.releases ? { releases: network.contracts.releases } : {}),
    },
    ...(walletClient ? { walletClient } : {}),
  };
  return { chain, chainId: id, publicClient, ...(walletClient ? { walletClient } : {}), context };
}

export function shortMessage(err: unknown): string {
  if (err && typeof err === "object" && "shortMessage" in err && typeof err.shortMessage === "string")
    return err.shortMessage;
  return err instanceof Error ? err.message : String(err);
}
