/**
 * What a provider's operator does outside the daemon (`tpod provider register|update|deregister|pods|earnings`):
 * the Registry entry built from the daemon's own config, a read-only view of the daemon's pods, and earnings.
 * Everything here works while the daemon runs: the state database is opened read-only (WAL lets readers in).
 */
import { existsSync } from "node:fs";
import {
  balanceOf,
  type ChainContext,
  deregisterProvider,
  getProvider,
  isRegistered,
  type Price,
  type ProviderInput,
  Resource,
  registerProvider,
  updateProvider,
  withdraw,
} from "@trustedpods/chain";
import { loadPeerKey } from "@trustedpods/p2p";
import type { PricedResource, PricingFile } from "@trustedpods/protocol";
import {
  type Address,
  createPublicClient,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  type LocalAccount,
  type PublicClient,
} from "viem";
import type { ProviderConfig } from "./config.js";
import { loadAccountKey } from "./keys.js";
import { type EndpointRecord, type PodPhaseName, StateDb, stateFile } from "./state/db.js";

export type OperatorErrorCode =
  | "NO_REGISTRY"
  | "NO_MULTIADDRS"
  | "NO_TEE_TYPE"
  | "NOT_REGISTERED"
  | "ALREADY_REGISTERED"
  | "NO_STATE"
  | "CHAIN";

export class OperatorError extends Error {
  override readonly name = "OperatorError";
  constructor(
    readonly code: OperatorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const CHAIN_RESOURCE: Record<PricedResource, number> = {
  cpu: Resource.cpu,
  memory: Resource.memory,
  storage: Resource.storage,
  gpu: Resource.gpu,
};

/** The Registry's price list from a pricing table (resources without a price are not offered). */
export function registryPrices(pricing: PricingFile): Price[] {
  const out: Price[] = [];
  for (const [name, id] of Object.entries(CHAIN_RESOURCE) as [PricedResource, number][]) {
    const p = pricing.prices[name];
    if (p !== undefined) out.push({ resource: id, pricePerUnitSecond: p });
  }
  return out;
}

export interface RegistrationOptions {
  name?: string;
  regions?: string[];
  /** TEE types to advertise; default: "insecure-dev" for that attester, required for configfs-tsm. */
  teeTypes?: string[];
  /** Dialable multiaddrs; default: the config's p2p.announce. `/p2p/<peer id>` is appended where missing. */
  multiaddrs?: string[];
  metadataCid?: string;
  /** The daemon's peer id; default: read from the config's peer key file. */
  peerId?: string;
  /** The provider release it runs (a Releases id; publishers check its evidence against the release registry). */
  release?: Hex;
}

/** The libp2p peer id of the daemon's key file (the daemon creates it at first start). */
export async function configPeerId(config: ProviderConfig): Promise<string> {
  if (!existsSync(config.p2p.peerKeyFile))
    throw new OperatorError(
      "NO_MULTIADDRS",
      `peer key ${config.p2p.peerKeyFile} does not exist yet: start the daemon once (tpod provider serve) so it creates its identity`,
    );
  const key = await loadPeerKey(config.p2p.peerKeyFile);
  // An Ed25519 public key's string form is its identity multihash in base58btc: the peer id.
  return key.publicKey.toString();
}

/** The Registry entry this config describes. */
export async function registrationFromConfig(
  config: ProviderConfig,
  o: RegistrationOptions = {},
): Promise<ProviderInput> {
  const teeTypes = o.teeTypes?.length
    ? o.teeTypes
    : config.attester === "insecure-dev"
      ? ["insecure-dev"]
      : undefined;
  if (!teeTypes)
    throw new OperatorError(
      "NO_TEE_TYPE",
      "attester is configfs-tsm: say which TEE this host is with --tee-type sev-snp or --tee-type tdx",
    );
  const given = o.multiaddrs?.length ? o.multiaddrs : config.p2p.announce;
  if (given.length === 0)
    throw new OperatorError(
      "NO_MULTIADDRS",
      "no public address: set p2p.announce in the config (e.g. /dns4/provider.example.com/tcp/4001) or pass --multiaddr",
    );
  const peerId = o.peerId ?? (await configPeerId(config));
  const multiaddrs = given.map((a) => (a.includes("/p2p/") ? a : `${a}/p2p/${peerId}`));
  return {
    name: o.name ?? "provider",
    regions: o.regions ?? [],
    multiaddrs,
    metadataCid: o.metadataCid ?? "",
    teeTypes,
    token: getAddress(config.pricing.token),
    minNoticeSeconds: config.billing.minNoticeSeconds,
    prices: registryPrices(config.pricing),
    ...(o.release ? { release: o.release } : {}),
  };
}

export interface OperatorChain {
  account: LocalAccount;
  ctx: ChainContext;
  publicClient: PublicClient;
}

/** A chain context with the provider's account from its config (the account key file is checked as the daemon does). */
export async function operatorChain(config: ProviderConfig): Promise<OperatorChain> {
  if (!config.chain.registry)
    throw new OperatorError(
      "NO_REGISTRY",
      `${config.file}: chain.registry is not set: add the Registry contract address to the config`,
    );
  const account = await loadAccountKey(config.chain.accountKeyFile);
  const transport = http(config.chain.rpcUrl, { retryCount: 0, timeout: 15_000 });
  const publicClient = createPublicClient({ transport, pollingInterval: 250 }) as PublicClient;
  let chainId: number;
  try {
    chainId = await publicClient.getChainId();
  } catch (err) {
    throw new OperatorError("CHAIN", `cannot reach the chain at ${config.chain.rpcUrl}: ${short(err)}`, {
      cause: err,
    });
  }
  if (config.chain.chainId !== undefined && config.chain.chainId !== chainId)
    throw new OperatorError(
      "CHAIN",
      `${config.chain.rpcUrl} is chain ${chainId}, the config says ${config.chain.chainId}`,
    );
  const chain = {
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [config.chain.rpcUrl] } },
  };
  const walletClient = createWalletClient({ chain, transport, account });
  const ctx: ChainContext = {
    publicClient,
    walletClient,
    addresses: {
      registry: config.chain.registry,
      payments: config.chain.payments,
      marketplace: config.chain.marketplace ?? "0x0000000000000000000000000000000000000000",
    },
    // Billing reads `confirmations` blocks below the head; a write here only needs to be mined.
    confirmations: Math.max(1, config.chain.confirmations),
  };
  return { account, ctx, publicClient };
}

export type RegistryAction = "register" | "update" | "deregister";

export interface RegistryResult {
  action: RegistryAction;
  provider: Address;
  txHash: Hex;
  entry?: ProviderInput;
}

/** register / update / deregister this provider, refusing the ones that cannot succeed with a clear reason. */
export async function applyRegistration(
  chain: OperatorChain,
  action: RegistryAction,
  entry?: ProviderInput,
): Promise<RegistryResult> {
  const provider = chain.account.address;
  const registered = await isRegistered(chain.ctx, provider);
  if (action === "register" && registered)
    throw new OperatorError(
      "ALREADY_REGISTERED",
      `${provider} is already registered: use \`tpod provider update\` to change its entry`,
    );
  if (action !== "register" && !registered)
    throw new OperatorError(
      "NOT_REGISTERED",
      `${provider} is not registered: use \`tpod provider register\` first`,
    );
  let sent: { hash: Hex };
  try {
    if (action === "deregister") sent = await deregisterProvider(chain.ctx);
    else if (action === "register") sent = await registerProvider(chain.ctx, entry!);
    else sent = await updateProvider(chain.ctx, entry!);
  } catch (err) {
    throw new OperatorError("CHAIN", `${action} failed: ${short(err)}`, { cause: err });
  }
  return { action, provider, txHash: sent.hash, ...(entry && action !== "deregister" ? { entry } : {}) };
}

export { getProvider as readRegistryEntry };

// ---------------------------------------------------------------------------------------------- pods

export interface OperatorPod {
  /** Engine pod id. */
  id: string;
  publisher: Address;
  podId: Hex;
  phase: PodPhaseName;
  message: string;
  endpoints: EndpointRecord[];
  createdAt: string;
  updatedAt: string;
}

function openStateReadOnly(config: ProviderConfig): StateDb {
  const state = StateDb.openReadOnly(config.dataDir);
  if (!state)
    throw new OperatorError(
      "NO_STATE",
      `no daemon state at ${stateFile(config.dataDir)}: the daemon has not run with this config yet (tpod provider serve --config ${config.file})`,
    );
  return state;
}

/** The daemon's pods from its state database, read-only (deleted pods only when asked). */
export function listOperatorPods(config: ProviderConfig, o: { all?: boolean } = {}): OperatorPod[] {
  const state = openStateReadOnly(config);
  try {
    if (!state.hasTable("pods")) return [];
    return state
      .listPods()
      .filter((p) => o.all || p.phase !== "deleted")
      .map((p) => ({
        id: p.id,
        publisher: p.publisher,
        podId: p.podId,
        phase: p.phase,
        message: p.message,
        endpoints: p.endpoints,
        createdAt: new Date(p.createdAt).toISOString(),
        updatedAt: new Date(p.updatedAt).toISOString(),
      }));
  } finally {
    state.close();
  }
}

// ---------------------------------------------------------------------------------------------- earnings
// What a provider earned is read from the chain's events by the publisher SDK (providerEarnings), so channels
// that settled long ago count too; withdrawing is the operator's own transaction.

/** Moves the whole withdrawable balance of the pricing token to the provider's wallet. */
export async function withdrawEarnings(
  config: ProviderConfig,
  chain: OperatorChain,
): Promise<{ amount: bigint; txHash: Hex }> {
  const token = getAddress(config.pricing.token);
  const amount = await balanceOf(chain.ctx, chain.account.address, token);
  if (amount === 0n) return { amount, txHash: "0x" };
  try {
    const sent = await withdraw(chain.ctx, token);
    return { amount, txHash: sent.hash };
  } catch (err) {
    throw new OperatorError("CHAIN", `withdraw failed: ${short(err)}`, { cause: err });
  }
}

function short(err: unknown): string {
  if (err && typeof err === "object" && "shortMessage" in err && typeof err.shortMessage === "string")
    return err.shortMessage;
  return err instanceof Error ? err.message : String(err);
}
