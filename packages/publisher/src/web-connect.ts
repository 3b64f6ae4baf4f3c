// The web app's chain connection: read-only, through the devnet's dev key, or through a browser wallet
// (EIP-1193). Browser-safe.
import {
  type Account,
  type Address,
  type Chain,
  createWalletClient,
  custom,
  type EIP1193Provider,
  getAddress,
  type Hex,
  isAddress,
  type Transport,
  type WalletClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { PublisherError } from "./errors.js";
import { connectNetwork, type NetworkClients, type ResolvedNetwork, shortMessage } from "./network.js";
import type { WebAppConfig } from "./web-config.js";

function resolvedFrom(config: WebAppConfig): ResolvedNetwork {
  return {
    name: config.name,
    rpcUrl: config.rpcUrl,
    ...(config.chainId !== undefined ? { chainId: config.chainId } : {}),
    contracts: config.contracts,
    isDevnet: config.devnet,
    sources: { rpcUrl: "the web app's config.json", contracts: "the web app's config.json" },
  };
}

/** Who signs: nobody (read-only), the devnet's dev key, or a browser wallet (window.ethereum). */
export type WebSigner =
  | { kind: "none" }
  | { kind: "dev-key"; key: Hex }
  | { kind: "wallet"; provider: EIP1193Provider };

export interface WebConnection extends NetworkClients {
  account?: Address;
  signer: WebSigner["kind"];
}

/**
 * Connects to the config's chain. A browser wallet is asked for an account and must be on the config's chain
 * (WRONG_CHAIN is reported as NETWORK_UNREACHABLE with what to switch to).
 */
export async function connectWeb(config: WebAppConfig, signer: WebSigner): Promise<WebConnection> {
  const network = resolvedFrom(config);
  if (signer.kind === "dev-key") {
    const account = privateKeyToAccount(signer.key);
    const c = await connectNetwork(network, { account });
    return { ...c, account: account.address, signer: "dev-key" };
  }
  const base = await connectNetwork(network);
  if (signer.kind === "none") return { ...base, signer: "none" };
  let accounts: unknown;
  try {
    accounts = await signer.provider.request({ method: "eth_requestAccounts" });
  } catch (err) {
    throw new PublisherError("NO_KEY", `the browser wallet did not share an account: ${shortMessage(err)}`, {
      cause: err,
    });
  }
  const first = Array.isArray(accounts) ? accounts[0] : undefined;
  if (typeof first !== "string" || !isAddress(first, { strict: false }))
    throw new PublisherError(
      "NO_KEY",
      "the browser wallet has no account: create or unlock one in the wallet",
    );
  const walletChain = Number.parseInt(String(await signer.provider.request({ method: "eth_chainId" })), 16);
  if (walletChain !== base.chainId)
    throw new PublisherError(
      "NETWORK_UNREACHABLE",
      `the browser wallet is on chain ${walletChain}, but this app talks to chain ${base.chainId} (${config.rpcUrl}): switch the wallet's network`,
    );
  const address = getAddress(first);
  const walletClient = createWalletClient({
    chain: base.chain,
    transport: custom(signer.provider),
    account: address,
  }) as unknown as WalletClient<Transport, Chain | undefined, Account>;
  return {
    ...base,
    walletClient,
    context: { ...base.context, walletClient },
    account: address,
    signer: "wallet",
  };
}
