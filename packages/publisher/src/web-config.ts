// The web app's config document (`config.json`, served next to the app by `serveWebApp`): which chain it talks
// to, and on the devnet the dev key; and the attestation policy that follows from it. Browser-safe.
import type { Policy } from "@trustedpods/attestation";
import type { Hex } from "viem";
import { PublisherError } from "./errors.js";
import {
  DEVNET_POLICY,
  type DevnetState,
  isHttpUrl,
  type NetworkContracts,
  parseContracts,
  requiringReleases,
  STRICT_POLICY,
} from "./network.js";

/** `config.json` next to the web app: which chain it talks to, and on the devnet the dev key. */
export interface WebAppConfig {
  version: 1;
  /** Shown in the header, e.g. "devnet". */
  name: string;
  rpcUrl: string;
  chainId?: number;
  contracts: NetworkContracts;
  /** True on the local devnet: insecure-dev evidence is accepted and loopback provider addresses may be dialed. */
  devnet: boolean;
  /** The devnet's PUBLIC anvil test key, offered as "dev key" instead of a browser wallet. Never on a real chain. */
  devKey?: Hex;
  /**
   * IPFS HTTP gateways serving raw blocks (`GET URL/ipfs/CID?format=raw`): where the app reads listing metadata.
   * Untrusted: every block is checked against its CID.
   */
  ipfsGateways?: string[];
}

const MAX_CONFIG_BYTES = 16 * 1024;

/** Validates a config document (from the network: the page fetched it). */
export function parseWebAppConfig(doc: unknown): WebAppConfig {
  const bad = (message: string, field: string): never => {
    throw new PublisherError("NETWORK_MALFORMED", `config.json: ${field} ${message}`, { field });
  };
  if (typeof doc === "string") {
    if (doc.length > MAX_CONFIG_BYTES) bad(`is larger than ${MAX_CONFIG_BYTES} bytes`, "document");
    try {
      doc = JSON.parse(doc);
    } catch {
      bad("is not JSON", "document");
    }
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    return bad("must be an object", "document");
  const d = doc as Record<string, unknown>;
  if (d.version !== 1) bad("must be 1", "version");
  if (!isHttpUrl(d.rpcUrl)) bad("must be an http(s) URL", "rpcUrl");
  if (d.chainId !== undefined && (!Number.isSafeInteger(d.chainId) || (d.chainId as number) <= 0))
    bad("must be a positive integer", "chainId");
  const contracts = parseContracts(d.contracts, "contracts", bad);
  const name = d.name === undefined ? "custom" : d.name;
  if (typeof name !== "string" || name.length > 64) bad("must be a short string", "name");
  const devnet = d.devnet === true;
  let devKey: Hex | undefined;
  if (d.devKey !== undefined) {
    if (typeof d.devKey !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(d.devKey))
      bad("must be 0x + 64 hex", "devKey");
    if (!devnet) bad("is only allowed on the devnet", "devKey");
    devKey = d.devKey as Hex;
  }
  let ipfsGateways: string[] | undefined;
  if (d.ipfsGateways !== undefined) {
    if (
      !Array.isArray(d.ipfsGateways) ||
      d.ipfsGateways.length > 8 ||
      !d.ipfsGateways.every((u) => isHttpUrl(u))
    )
      bad("must be a list of at most 8 http(s) URLs", "ipfsGateways");
    ipfsGateways = d.ipfsGateways as string[];
  }
  return {
    version: 1,
    name: name as string,
    rpcUrl: d.rpcUrl as string,
    ...(d.chainId !== undefined ? { chainId: d.chainId as number } : {}),
    contracts,
    devnet,
    ...(devKey ? { devKey } : {}),
    ...(ipfsGateways ? { ipfsGateways } : {}),
  };
}

/** The config `tpod devnet up` serves: its chain, contracts and publisher test key. */
export function webAppConfigFromDevnet(state: DevnetState): WebAppConfig {
  return {
    version: 1,
    name: "devnet",
    rpcUrl: state.rpcUrl,
    chainId: state.chainId,
    contracts: state.contracts,
    devnet: true,
    ...(state.publisherKey ? { devKey: state.publisherKey } : {}),
    ...(state.ipfs?.gatewayUrl ? { ipfsGateways: [state.ipfs.gatewayUrl] } : {}),
  };
}

/**
 * The attestation policy the web app verifies with: insecure-dev only on the devnet, and everywhere a published,
 * non-revoked release from the network's release registry.
 */
export function webPolicy(config: WebAppConfig): Policy {
  return requiringReleases(config.devnet ? DEVNET_POLICY : STRICT_POLICY);
}
