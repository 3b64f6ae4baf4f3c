import type { Abi, Account, Address, Chain, Hex, PublicClient, Transport, WalletClient } from "viem";
import type { ContractAddresses } from "./client.js";
import { waitForTransaction } from "./events.js";
import {
  marketplaceAbi,
  marketplaceBytecode,
  paymentsAbi,
  paymentsBytecode,
  registryAbi,
  registryBytecode,
  releasesAbi,
  releasesBytecode,
} from "./gen/index.js";

/** Raised when a deployment transaction did not create a contract. */
export class DeployError extends Error {
  override readonly name = "DeployError";
  readonly code = "DEPLOY_FAILED";
}

type Wallet = WalletClient<Transport, Chain | undefined, Account>;

/** Deploys any compiled contract and resolves to its address once mined. */
export async function deployContract(
  publicClient: PublicClient,
  wallet: Wallet,
  abi: Abi,
  bytecode: Hex,
  args: readonly unknown[] = [],
): Promise<Address> {
  const hash = await wallet.deployContract({
    abi,
    bytecode,
    args,
    account: wallet.account,
    chain: wallet.chain,
  } as never);
  const receipt = await waitForTransaction(publicClient, hash);
  if (!receipt.contractAddress) throw new DeployError(`deployment ${hash} created no contract`);
  return receipt.contractAddress;
}

/** Deploys Marketplace, Payments (bound to it) and Registry. */
export async function deployTrustedPods(
  publicClient: PublicClient,
  wallet: Wallet,
): Promise<ContractAddresses> {
  const marketplace = await deployContract(publicClient, wallet, marketplaceAbi, marketplaceBytecode);
  const payments = await deployContract(publicClient, wallet, paymentsAbi, paymentsBytecode, [marketplace]);
  const registry = await deployContract(publicClient, wallet, registryAbi, registryBytecode);
  return { registry, payments, marketplace };
}

/**
 * Deploys the release registry with its k-of-n release signers (default: the deployer alone, threshold 1, as on
 * a devnet; a real network names several signers and a threshold above one).
 */
export function deployReleases(
  publicClient: PublicClient,
  wallet: Wallet,
  signers: Address[] = [wallet.account.address],
  threshold = 1,
): Promise<Address> {
  return deployContract(publicClient, wallet, releasesAbi, releasesBytecode, [signers, threshold]);
}
