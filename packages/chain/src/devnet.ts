import {
  type Address,
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
  type PublicClient,
  toHex,
} from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { type Anvil, type AnvilOptions, startAnvil } from "./anvil.js";
import type { ChainContext, ContractAddresses } from "./client.js";
import { deployContract, deployReleases, deployTrustedPods } from "./deploy.js";
import { waitForTransaction } from "./events.js";
import { testTokenAbi, testTokenBytecode } from "./gen/devnet/TestToken.js";
import { devnetReleaseInput, publishRelease } from "./releases.js";

/** anvil's well-known default mnemonic: every key derived from it is public. */
export const ANVIL_TEST_MNEMONIC = "test test test test test test test test test test test junk";

/**
 * Deploys the dev chain's mintable ERC-20 (anyone can mint: devnets and tests only). Its contract is compiled from
 * contracts/devnet/ and is not among the main entry's contracts.
 */
export function deployTestToken(
  publicClient: PublicClient,
  wallet: Parameters<typeof deployContract>[1],
  name = "Trusted Pods Test Token",
  symbol = "TPT",
  decimals = 18,
): Promise<Address> {
  return deployContract(publicClient, wallet, testTokenAbi, testTokenBytecode, [name, symbol, decimals]);
}

export interface DevAccount {
  address: Address;
  privateKey: Hex;
  /** Always says these are public test keys: never fund them on a real chain. */
  label: string;
}

export interface DevChainContracts extends ContractAddresses {
  /** The release registry; its only signer is dev account 0 (threshold 1). */
  releases: Address;
  /** The mintable test ERC-20 every dev account holds. */
  token: Address;
}

export interface DevChain {
  rpcUrl: string;
  chainId: number;
  contracts: DevChainContracts;
  accounts: DevAccount[];
  /** The id of the published devnet release (insecure-dev), unless `devnetRelease: false`. */
  devnetRelease?: Hex;
  anvil: Anvil;
  publicClient: PublicClient;
  /** A ChainContext whose wallet is dev account `index`. */
  context(index: number, confirmations?: number): ChainContext;
  stop(): Promise<void>;
}

export interface DevChainOptions extends AnvilOptions {
  /** Test tokens minted to every account (default 1,000,000 tokens of 18 decimals). */
  fundAmount?: bigint;
  /** Dev account indexes that sign releases, threshold 1 (default: account 0, the deployer). */
  releaseSigners?: number[];
  /** Publish the devnet release (insecure-dev, devnetReleaseInput) from account 0 (default true). */
  devnetRelease?: boolean;
}

const TEST_KEY_LABEL = "TEST KEY from anvil's public default mnemonic: never use on a real chain";

/** The first `count` anvil default accounts with their private keys. */
export function devAccounts(count = 10): DevAccount[] {
  return Array.from({ length: count }, (_, i) => {
    const hd = mnemonicToAccount(ANVIL_TEST_MNEMONIC, { addressIndex: i });
    const key = hd.getHdKey().privateKey;
    if (!key) throw new Error("cannot derive a dev key");
    const privateKey = toHex(key);
    return { address: hd.address, privateKey, label: TEST_KEY_LABEL };
  });
}

/**
 * Starts anvil on loopback, deploys Registry, Payments, Marketplace, a mintable test token and Releases (signer:
 * dev account 0) holding the devnet release, and mints tokens to every dev account. Stop it with `stop()`.
 */
export async function startDevChain(opts: DevChainOptions = {}): Promise<DevChain> {
  const anvil = await startAnvil(opts);
  try {
    const chain = { ...foundry, id: anvil.chainId, rpcUrls: { default: { http: [anvil.rpcUrl] } } };
    const transport = http(anvil.rpcUrl, { retryCount: 0 });
    const publicClient = createPublicClient({ chain, transport, pollingInterval: 100 }) as PublicClient;
    const accounts = devAccounts(opts.accounts ?? 10);
    const walletOf = (i: number) =>
      createWalletClient({ chain, transport, account: privateKeyToAccount(accounts[i]!.privateKey) });
    const deployer = walletOf(0);
    const addresses = await deployTrustedPods(publicClient, deployer);
    const token = await deployTestToken(publicClient, deployer);
    const fund = opts.fundAmount ?? 1_000_000n * 10n ** 18n;
    const hashes: Hex[] = [];
    for (const a of accounts) {
      hashes.push(
        await deployer.writeContract({
          address: token,
          abi: testTokenAbi,
          functionName: "mint",
          args: [a.address, fund],
        }),
      );
    }
    for (const h of hashes) await waitForTransaction(publicClient, h);
    // Last, so the other contracts and the token keep the addresses they always had on a fresh chain.
    const releases = await deployReleases(
      publicClient,
      deployer,
      (opts.releaseSigners ?? [0]).map((i) => accounts[i]!.address),
    );
    const contracts = { ...addresses, releases, token };
    let devnetRelease: Hex | undefined;
    if (opts.devnetRelease !== false) {
      // A dev chain is a devnet's: its providers have no TEE, and the devnet's default policy (like every
      // network's) accepts only a published release, so the insecure-dev one is published from the start.
      const sent = await publishRelease(
        { publicClient, walletClient: deployer, addresses: { ...addresses, releases } },
        devnetReleaseInput(),
      );
      devnetRelease = sent.id;
    }
    const devChain: DevChain = {
      rpcUrl: anvil.rpcUrl,
      chainId: anvil.chainId,
      contracts,
      accounts,
      ...(devnetRelease ? { devnetRelease } : {}),
      anvil,
      publicClient,
      context: (index, confirmations = 1) => ({
        publicClient,
        walletClient: walletOf(index),
        addresses: { ...addresses, releases },
        confirmations,
      }),
      // The anvil the chain holds when stopped: a caller may restart it (e.g. from a state dump) and swap it in.
      stop: () => devChain.anvil.stop(),
    };
    return devChain;
  } catch (err) {
    await anvil.stop();
    throw err;
  }
}
