/**
 * The local devnet `tpod devnet up` runs in one process: a dev chain with the contracts, an IPFS node, a provider
 * daemon (Podman engine, insecure-dev attester, real billing, gateway) registered in the Registry, and a funded
 * publisher account, announced to other tpod commands through `$TPOD_HOME/devnet.json`.
 *
 * It is its own package because it composes four others (chain, ipfs, provider, publisher) that must not depend
 * on each other for this; the CLI stays a thin layer and tests (or a web app's dev server) can start a devnet
 * in process.
 */
import { open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { devnetReleaseInput, publishRelease, type ReleaseInput, registerProvider } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { type BlockHttpServer, createIpfsNode, type IpfsNode, serveBlocksOverHttp } from "@trustedpods/ipfs";
import type { PricingFile } from "@trustedpods/protocol";
import {
  Daemon,
  type Gateway,
  ListingMetadataPinner,
  loadConfig,
  PodmanEngine,
  type ProviderConfig,
  registrationFromConfig,
  registryPrices,
} from "@trustedpods/provider";
import type { ProviderVm } from "@trustedpods/provider-image";
import type { DevnetState } from "@trustedpods/publisher";
import {
  ensurePrivateDir,
  removeDevnetState,
  tpodPaths,
  writeDevnetState,
} from "@trustedpods/publisher/node";
import type { Address, Hex } from "viem";
import { startVmProvider, type VmProviderOptions, vmReleaseInput } from "./vm-provider.js";

export {
  VM_ENGINE_OWNER,
  type VmProviderOptions,
  vmProviderYaml,
  vmReleaseInput,
} from "./vm-provider.js";

export type DevnetErrorCode = "ALREADY_RUNNING" | "DIR_NOT_DEVNET" | "PORT_IN_USE" | "START_FAILED";

export class DevnetError extends Error {
  override readonly name = "DevnetError";
  constructor(
    readonly code: DevnetErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The devnet gateway's default port: fixed so pod URLs stay the same from one run to the next. */
export const DEFAULT_GATEWAY_PORT = 8080;
/** The devnet chain's default RPC port (anvil's and Hardhat's usual one, what wallets expect). */
export const DEFAULT_CHAIN_PORT = 8545;
/** Pod hostnames are `NAME.localhost`: every resolver (and curl) maps *.localhost to loopback without setup. */
export const DEVNET_BASE_DOMAIN = "localhost";

/**
 * The devnet chain mines a block every second when no transaction did (transactions still mine at once), so
 * chain time runs like a real chain's: a run-out deposit or a notice period ends without waiting for someone's
 * transaction.
 */
export const DEVNET_BLOCK_SECONDS = 1;

/** Dev account indexes: 0 deploys the contracts, 1 is the provider, 2 the publisher. */
const PROVIDER_ACCOUNT = 1;
const PUBLISHER_ACCOUNT = 2;
const MARKER = ".tpod-devnet";

/**
 * The devnet provider's prices: those of examples/pricing.yaml (per unit-second, 18-decimal token), in the
 * devnet's token. No GPU price: the Podman engine runs no GPUs.
 */
export function devnetPricing(token: Address): PricingFile {
  return {
    token,
    // The dev chain's test token is "TPT" (packages/chain deployTestToken).
    symbol: "TPT",
    decimals: 18,
    prices: { cpu: 10_000_000_000n, memory: 1_400_000_000n, storage: 28_000_000_000n },
  };
}

/** Short notice and deposit minimums so a demo can close a pod and see the refund within minutes. */
export const DEVNET_BILLING = {
  minNoticeSeconds: 60,
  minDepositSeconds: 600,
  // Gas is not priced on the devnet (no token price): claim each channel at most once per minute of accrual (the
  // loop's own interval), not on every tick: every provision wakes one, and a 50-pod bench sent 1,185 claims in
  // 11 minutes without this. A minute keeps demos and tests seeing claims soon after a pod starts.
  minClaimIntervalSeconds: 60,
} as const;

export interface DevnetOptions {
  /** `$TPOD_HOME`: where the state file and the lock go. */
  home: string;
  /** Working directory for the provider's data and the IPFS repo (default `$TPOD_HOME/devnet`); wiped at start. */
  dir?: string;
  /** 0 = any free port. */
  gatewayPort?: number;
  /** 0 = any free port. */
  chainPort?: number;
  /** Podman owner label of the provider's pods (several devnets or tests on one Podman need distinct ones). */
  engineOwner?: string;
  /** The provider daemon's pino level (default warn). */
  logLevel?: ProviderConfig["log"]["level"];
  /** Progress messages. */
  progress?: (message: string) => void;
  /**
   * Run the provider in a QEMU VM booted from a built provider image (tpod provider image build) instead of
   * in this process: a second host on this machine (startVmDevnet).
   */
  providerVm?: VmProviderOptions;
}

/** The ready line `tpod devnet up` prints. */
export interface DevnetInfo {
  ready: true;
  rpcUrl: string;
  chainId: number;
  contracts: {
    registry: Address;
    payments: Address;
    marketplace: Address;
    releases: Address;
    token: Address;
  };
  /** The release its provider declares (the devnet release, or the provider VM image's); signed by dev accounts 0 and the publisher. */
  release: { id: Hex; version: string };
  provider: {
    address: Address;
    peerId: string;
    multiaddrs: string[];
    ipfs: string[];
    /** The provider's config file: `tpod provider pods|earnings --config FILE` work on it. */
    config: string;
    pricing: { token: Address; symbol: string; decimals: number; prices: Record<string, string> };
    minNoticeSeconds: number;
    minDepositSeconds: number;
    metricsUrl: string;
    /**
     * The host ports its pods' tcp and udp endpoints get (engine.hostPortRange; with --provider-vm, the range
     * QEMU forwards into the VM); absent: any free port.
     */
    hostPortRange?: { from: number; to: number };
  };
  gateway: { url: string; baseDomain: string; port: number };
  /** `gatewayUrl`: the devnet IPFS node's raw blocks over HTTP (listing metadata for browsers). */
  ipfs: { multiaddrs: string[]; gatewayUrl: string };
  publisher: { address: Address; privateKey: Hex; label: string };
  stateFile: string;
  pid: number;
  /** Wall time from the start call to ready, and per step. */
  startupMs: number;
  timings: Record<string, number>;
}

export interface Devnet {
  info: DevnetInfo;
  daemon: Daemon;
  /** The provider VM when the devnet runs its provider in one (startVmDevnet). */
  vm?: ProviderVm;
  chain: DevChain;
  ipfs: IpfsNode;
  /** Pins every listing's metadata on the devnet's IPFS node, so it outlives the developer's process. */
  listingPins: ListingMetadataPinner;
  /** Resolves with a reason when a part dies on its own (anvil exits). */
  failed: Promise<string>;
  /**
   * Stops everything: the state file goes first (so no command finds a dying devnet), then the daemon, then the
   * provider's pods are removed (their channels live on a chain that is about to vanish), then engine, IPFS and
   * chain. The working directory is left for inspection and emptied at the next start.
   */
  stop(): Promise<void>;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** One devnet per $TPOD_HOME: an exclusive lock file holding the pid; a lock whose process is gone is taken over. */
async function takeLock(home: string): Promise<() => Promise<void>> {
  await ensurePrivateDir(home);
  const file = path.join(home, "devnet.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(file, "wx", 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return () => rm(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number((await readFile(file, "utf8").catch(() => "")).trim());
      if (Number.isSafeInteger(pid) && pid > 0 && processAlive(pid))
        throw new DevnetError(
          "ALREADY_RUNNING",
          `a devnet is already running (pid ${pid}, lock ${file}); its details are in ${tpodPaths(home).devnet}. Stop it with Ctrl-C in its terminal or \`kill ${pid}\`, or use another TPOD_HOME`,
        );
      await rm(file, { force: true });
    }
  }
  throw new DevnetError("ALREADY_RUNNING", `cannot take the devnet lock ${file}`);
}

/** Empties the working directory, refusing one that holds anything but an earlier devnet's files. */
async function prepareDir(dir: string): Promise<void> {
  let entries: string[] = [];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (entries.length > 0 && !entries.includes(MARKER))
    throw new DevnetError(
      "DIR_NOT_DEVNET",
      `${dir} is not empty and was not made by tpod devnet: give an empty or new directory with --dir`,
    );
  // Last run's chain is gone, so its provider state (channels, pods) means nothing: start clean.
  for (const e of entries) await rm(path.join(dir, e), { recursive: true, force: true });
  await ensurePrivateDir(dir);
  await writeFile(path.join(dir, MARKER), "made by tpod devnet up; emptied at every start\n");
}

function providerYaml(o: {
  dataDir: string;
  chain: DevChain;
  gatewayPort: number;
  ipfsPeers: string[];
  owner: string;
  logLevel: string;
}): string {
  const p = devnetPricing(o.chain.contracts.token);
  return `# Written by tpod devnet up for its provider daemon; the devnet rewrites it at every start.
dataDir: ${JSON.stringify(o.dataDir)}
p2p:
  listen: ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]
  inboundConnectionsPerSecondPerHost: 1000
chain:
  rpcUrl: ${JSON.stringify(o.chain.rpcUrl)}
  chainId: ${o.chain.chainId}
  payments: ${JSON.stringify(o.chain.contracts.payments)}
  registry: ${JSON.stringify(o.chain.contracts.registry)}
  marketplace: ${JSON.stringify(o.chain.contracts.marketplace)}
  accountKeyFile: account.key
  # anvil mines each transaction at once and never reorganizes: decide on the latest block.
  confirmations: 0
pricing:
  token: ${JSON.stringify(p.token)}
  symbol: ${p.symbol}
  decimals: ${p.decimals}
  prices:
${Object.entries(p.prices)
  .map(([k, v]) => `    ${k}: ${v}`)
  .join("\n")}
billing:
  minNoticeSeconds: ${DEVNET_BILLING.minNoticeSeconds}
  minDepositSeconds: ${DEVNET_BILLING.minDepositSeconds}
  minClaimIntervalSeconds: ${DEVNET_BILLING.minClaimIntervalSeconds}
engine:
  owner: ${o.owner}
  publishHostIp: 127.0.0.1
  publicHost: 127.0.0.1
gateway:
  listen: 127.0.0.1:${o.gatewayPort}
  baseDomain: ${DEVNET_BASE_DOMAIN}
attester: insecure-dev
ipfs:
  helia:
    dataDir: ipfs
    listen: ["/ip4/127.0.0.1/tcp/0"]
    peers: ${JSON.stringify(o.ipfsPeers)}
    network: devnet
metrics:
  listen: 127.0.0.1:0
limits:
  provisionTimeoutSeconds: 120
log:
  level: ${o.logLevel}
`;
}

async function timed<T>(timings: Record<string, number>, name: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await fn();
  } finally {
    timings[name] = Math.round(performance.now() - t);
  }
}

function portInUse(err: unknown): boolean {
  const text = String((err as Error)?.message ?? err);
  return /EADDRINUSE|address already in use/i.test(text);
}

/**
 * Starts the devnet and writes the state file. Independent parts start at the same time: the chain (anvil plus
 * contract deployment), the devnet's IPFS node and the Podman service; the daemon needs all three.
 */
export async function startDevnet(o: DevnetOptions): Promise<Devnet> {
  if (o.providerVm)
    throw new DevnetError(
      "START_FAILED",
      "startDevnet runs its provider in process: use startVmDevnet for a VM",
    );
  return (await startDevnetWith(o)) as Devnet;
}

/** The devnet with its provider in a VM: no in-process daemon (daemon is undefined), vm is set. */
export type VmDevnet = Omit<Devnet, "daemon" | "vm"> & { vm: ProviderVm };

/**
 * The devnet whose provider runs in a QEMU VM booted from a provider image: the chain, the IPFS node and the
 * registration are the same; the daemon (and its Podman, nginx, pods) live in the guest and are reached
 * through host-loopback port forwards.
 */
export async function startVmDevnet(o: DevnetOptions & { providerVm: VmProviderOptions }): Promise<VmDevnet> {
  const d = await startDevnetWith(o);
  return d as unknown as VmDevnet;
}

async function startDevnetWith(o: DevnetOptions): Promise<Omit<Devnet, "daemon"> & { daemon?: Daemon }> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const progress = o.progress ?? (() => {});
  const home = o.home;
  const dir = path.resolve(o.dir ?? path.join(home, "devnet"));
  const gatewayPort = o.gatewayPort ?? DEFAULT_GATEWAY_PORT;
  const chainPort = o.chainPort ?? DEFAULT_CHAIN_PORT;
  const owner = o.engineOwner ?? "devnet";
  const unlock = await takeLock(home);
  const undo: (() => Promise<unknown>)[] = [unlock];
  const rollback = async () => {
    for (const u of undo.reverse()) await u().catch(() => undefined);
  };
  let prepared = false;
  try {
    await prepareDir(dir);
    prepared = true;
    const providerDir = path.join(dir, "provider");
    const dataDir = path.join(providerDir, "data");
    await ensurePrivateDir(dataDir);

    progress(
      o.providerVm
        ? "starting the dev chain and the IPFS node..."
        : "starting the dev chain, the IPFS node and the Podman service...",
    );
    const [chainR, ipfsR, engineR] = await Promise.allSettled([
      // The publisher account signs releases too, so `tpod release publish|revoke` can be tried on the devnet.
      timed(timings, "chain", () =>
        startDevChain({
          port: chainPort,
          blockTimeSeconds: DEVNET_BLOCK_SECONDS,
          releaseSigners: [0, PUBLISHER_ACCOUNT],
          // A provider VM runs an image: the devnet publishes that image's release instead (below).
          ...(o.providerVm ? { devnetRelease: false } : {}),
        }),
      ),
      timed(timings, "ipfs", () =>
        createIpfsNode({
          dataDir: path.join(dir, "ipfs"),
          listen: ["/ip4/127.0.0.1/tcp/0"],
          network: "devnet",
        }),
      ),
      // A provider VM brings its own Podman.
      o.providerVm
        ? Promise.resolve(undefined)
        : timed(timings, "engine", () =>
            PodmanEngine.open({ runDir: path.join(dataDir, "engine"), owner, publishHostIp: "127.0.0.1" }),
          ),
    ]);
    if (chainR.status === "fulfilled") undo.push(() => chainR.value.stop());
    if (ipfsR.status === "fulfilled") undo.push(() => ipfsR.value.stop());
    if (engineR.status === "fulfilled" && engineR.value) {
      const e = engineR.value;
      undo.push(() => e.close());
    }
    if (chainR.status === "rejected") {
      if (portInUse(chainR.reason))
        throw new DevnetError(
          "PORT_IN_USE",
          `chain port ${chainPort} is in use: stop what listens there or pass --chain-port (0 = any free port)`,
          { cause: chainR.reason },
        );
      throw new DevnetError("START_FAILED", `dev chain: ${(chainR.reason as Error).message}`, {
        cause: chainR.reason,
      });
    }
    if (ipfsR.status === "rejected")
      throw new DevnetError("START_FAILED", `IPFS node: ${(ipfsR.reason as Error).message}`, {
        cause: ipfsR.reason,
      });
    if (engineR.status === "rejected")
      throw new DevnetError(
        "START_FAILED",
        `Podman: ${(engineR.reason as Error).message} (is podman installed? tpod doctor checks)`,
        { cause: engineR.reason },
      );
    const chain = chainR.value;
    const ipfs = ipfsR.value;
    const engine = engineR.value;

    const providerAccount = chain.accounts[PROVIDER_ACCOUNT]!;
    const publisher = chain.accounts[PUBLISHER_ACCOUNT]!;
    // The in-process provider runs no image: the dev chain published the devnet release (it lists the
    // insecure-dev label). A provider VM runs a built image: account 0 (a release signer, threshold 1)
    // publishes that image's release, so the devnet's default policy checks the VM's release exactly as a real
    // network's does, and `tpod release revoke` withdraws it.
    let releaseInput: ReleaseInput = devnetReleaseInput();
    let releaseId = chain.devnetRelease;
    if (o.providerVm) {
      releaseInput = await vmReleaseInput(o.providerVm.imageDir);
      releaseId = (await publishRelease(chain.context(0), releaseInput)).id;
    }
    const release = { id: releaseId!, version: releaseInput.version };
    let provider: StartedProvider;
    if (o.providerVm) {
      progress("booting the provider VM (TCG: a few minutes)...");
      const vm = await timed(timings, "daemon", () =>
        startVmProvider({
          ...o.providerVm!,
          dir: providerDir,
          chain,
          accountKey: providerAccount.privateKey,
          ipfsPeers: ipfs.multiaddrs(),
          pricing: devnetPricing(chain.contracts.token),
          billing: DEVNET_BILLING,
          gatewayPort,
          logLevel: o.logLevel ?? "warn",
        }),
      );
      provider = { ...vm, stop: () => vm.vm.stop() };
    } else {
      await writeFile(path.join(dataDir, "account.key"), `${providerAccount.privateKey}\n`, { mode: 0o600 });
      const configFile = path.join(providerDir, "provider.yaml");
      await writeFile(
        configFile,
        providerYaml({
          dataDir,
          chain,
          gatewayPort,
          ipfsPeers: ipfs.multiaddrs(),
          owner,
          logLevel: o.logLevel ?? "warn",
        }),
        { mode: 0o600 },
      );
      const config = loadConfig(configFile);
      progress("starting the provider daemon...");
      let daemon: Daemon;
      try {
        daemon = await timed(timings, "daemon", () => Daemon.start(config, { engine: engine! }));
      } catch (err) {
        if (portInUse(err))
          throw new DevnetError(
            "PORT_IN_USE",
            `gateway port ${gatewayPort} is in use: stop what listens there or pass --gateway-port (0 = any free port)`,
            { cause: err },
          );
        throw new DevnetError("START_FAILED", `provider daemon: ${(err as Error).message}`, { cause: err });
      }
      const gw = daemon.routes as unknown as Gateway;
      provider = {
        config,
        configFile,
        info: daemon.info(),
        gatewayPort: gw.address.port,
        daemon,
        stop: async () => {
          await daemon.stop().catch(() => undefined);
          // Pods go with the devnet: their channels are on a chain that is about to vanish.
          const pods = await engine!.listPods().catch(() => []);
          await Promise.all(
            pods.map((p) => engine!.remove(p.podId, { images: true }).catch(() => undefined)),
          );
          await engine!.close().catch(() => undefined);
        },
      };
    }
    undo.push(() => provider.stop());
    const { config, configFile } = provider;
    const d = provider.info;
    const gatewayUrl = `http://${DEVNET_BASE_DOMAIN}:${provider.gatewayPort}/`;

    progress("registering the provider...");
    const entry = await registrationFromConfig(config, {
      name: "devnet-provider",
      regions: ["local"],
      multiaddrs: d.multiaddrs,
      peerId: d.peerId,
      release: release.id,
    });
    await timed(timings, "register", () => registerProvider(chain.context(PROVIDER_ACCOUNT), entry));

    // Listing metadata outlives the developer's process: the devnet's node fetches and pins each listing's
    // document, and serves it over HTTP to browsers (which cannot dial its TCP libp2p).
    const listingPins = new ListingMetadataPinner({ chain: chain.context(0), store: ipfs });
    listingPins.start();
    undo.push(() => listingPins.stop());
    const blocks: BlockHttpServer = await serveBlocksOverHttp(ipfs, { host: "127.0.0.1", port: 0 });
    undo.push(() => blocks.close());

    const stateFile = tpodPaths(home).devnet;
    const uploadPeers = [...d.ipfs, ...ipfs.multiaddrs()];
    const state: DevnetState = {
      version: 1,
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      contracts: chain.contracts,
      publisherKey: publisher.privateKey,
      publisher: publisher.address,
      providers: [
        {
          address: d.provider,
          peerId: d.peerId,
          multiaddrs: d.multiaddrs,
          ipfs: d.ipfs,
          gateway: { url: gatewayUrl, baseDomain: DEVNET_BASE_DOMAIN },
        },
      ],
      // Publishers connect their upload node to these: the provider's own node first (its bitswap asks the peers
      // connected to it, so it finds the blocks on the upload node), then the devnet's node.
      ipfs: { multiaddrs: uploadPeers, gatewayUrl: blocks.url },
      gateway: { url: gatewayUrl, baseDomain: DEVNET_BASE_DOMAIN },
      pid: process.pid,
      startedAt: new Date().toISOString(),
    };
    await writeDevnetState(home, state);
    undo.push(() => removeDevnetState(home));

    const pricing = devnetPricing(chain.contracts.token);
    const info: DevnetInfo = {
      ready: true,
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      contracts: chain.contracts,
      release,
      provider: {
        address: d.provider,
        peerId: d.peerId,
        multiaddrs: d.multiaddrs,
        ipfs: d.ipfs,
        config: configFile,
        pricing: {
          token: chain.contracts.token,
          symbol: pricing.symbol,
          decimals: pricing.decimals,
          prices: Object.fromEntries(registryPricesByName(pricing)),
        },
        minNoticeSeconds: DEVNET_BILLING.minNoticeSeconds,
        minDepositSeconds: DEVNET_BILLING.minDepositSeconds,
        metricsUrl: d.metricsUrl,
        ...(config.engine.hostPortRange ? { hostPortRange: config.engine.hostPortRange } : {}),
      },
      gateway: { url: gatewayUrl, baseDomain: DEVNET_BASE_DOMAIN, port: provider.gatewayPort },
      ipfs: { multiaddrs: uploadPeers, gatewayUrl: blocks.url },
      publisher: { address: publisher.address, privateKey: publisher.privateKey, label: publisher.label },
      stateFile,
      pid: process.pid,
      startupMs: Math.round(performance.now() - t0),
      timings,
    };

    const failed = new Promise<string>((resolve) => {
      chain.anvil.process.once("exit", (code) => resolve(`anvil exited unexpectedly (code ${code})`));
      void provider.vm?.exited.then((code) => resolve(`the provider VM stopped (qemu exit ${code})`));
    });

    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        await removeDevnetState(home).catch(() => undefined);
        await listingPins.stop().catch(() => undefined);
        await blocks.close().catch(() => undefined);
        await provider.stop().catch(() => undefined);
        await ipfs.stop().catch(() => undefined);
        await chain.stop().catch(() => undefined);
        // The working directory stays for inspection (provider state, config); the next start empties it.
        await unlock().catch(() => undefined);
      })();
      return stopping;
    };
    return {
      info,
      ...(provider.daemon ? { daemon: provider.daemon } : {}),
      ...(provider.vm ? { vm: provider.vm } : {}),
      chain,
      ipfs,
      listingPins,
      failed,
      stop,
    };
  } catch (err) {
    await rollback();
    if (prepared) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** The provider a devnet runs: in process (daemon) or in a VM (vm). */
interface StartedProvider {
  config: ProviderConfig;
  configFile: string;
  info: { peerId: string; multiaddrs: string[]; ipfs: string[]; provider: Address; metricsUrl: string };
  gatewayPort: number;
  daemon?: Daemon;
  vm?: ProviderVm;
  /** Stops the provider and removes its pods. */
  stop(): Promise<void>;
}

function registryPricesByName(p: PricingFile): [string, string][] {
  const names = ["cpu", "memory", "storage", "gpu"];
  return registryPrices(p).map((x) => [names[x.resource]!, x.pricePerUnitSecond.toString()]);
}
