/**
 * The devnet's provider as a second host: a QEMU VM booted from a built provider image. The host writes the
 * daemon's config and account key onto the VM's state disk, forwards host-loopback ports to the daemon's
 * libp2p, IPFS and gateway ports, and points the daemon at the devnet's chain and IPFS node on the host's
 * loopback (10.0.2.2 from inside the guest). Nothing listens on any other address.
 */
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { INSECURE_DEV_RELEASE_VALUE, type ReleaseInput, ReleaseTee } from "@trustedpods/chain";
import type { DevChain } from "@trustedpods/chain/node";
import type { PricingFile } from "@trustedpods/protocol";
import { loadConfig, type ProviderConfig } from "@trustedpods/provider";
import {
  freePort,
  freePortRange,
  GUEST_HOST_ADDRESS,
  GUEST_PORTS,
  type GuestPort,
  hostMultiaddr,
  imageReleaseVersion,
  MAX_RELEASE_MEASUREMENTS,
  makeStateDisk,
  POD_PORT_COUNT,
  type PodPortRange,
  type ProviderVm,
  RELEASE_FILE,
  readManifest,
  startProviderVm,
} from "@trustedpods/provider-image";
import { parseReleaseFile } from "@trustedpods/publisher";
import { type Address, type Hex, zeroHash } from "viem";

/** Podman owner label of the VM daemon's pods (the guest's Podman holds only its own). */
export const VM_ENGINE_OWNER = "devnet-vm";
/** Podman's API socket in the provider image (started by its boot script). */
export const VM_PODMAN_SOCKET = "/run/podman/podman.sock";

export interface VmProviderOptions {
  /** A directory tpod provider image build wrote. */
  imageDir: string;
  memoryMiB?: number;
  cpus?: number;
  /** How long to wait for the daemon's ready line (default 15 minutes: TCG is slow on a busy machine). */
  readyTimeoutMs?: number;
  /** The guest's serial console is appended here (default provider/console.log in the devnet's dir). */
  consoleLog?: string;
}

/** A loopback multiaddr of the host (127.0.0.1) as the guest reaches it (10.0.2.2). */
function guestView(addr: string): string {
  return addr.replace(/^\/ip4\/127\.0\.0\.1\//, `/ip4/${GUEST_HOST_ADDRESS}/`);
}

/** The provider.yaml the guest's daemon runs with: devnet prices and terms, guest ports, host addresses. */
export function vmProviderYaml(o: {
  rpcUrl: string;
  chainId: number;
  contracts: { payments: Address; registry: Address; marketplace: Address };
  pricing: PricingFile;
  billing: { minNoticeSeconds: number; minDepositSeconds: number };
  hostPorts: Record<GuestPort, number>;
  /** Forwarded from the host's loopback to the same numbers in the guest: the pods' tcp and udp host ports. */
  podPorts: PodPortRange;
  ipfsPeers: string[];
  logLevel: string;
}): string {
  const rpc = new URL(o.rpcUrl);
  rpc.hostname = GUEST_HOST_ADDRESS;
  return `# Written by tpod devnet up --provider-vm onto the provider VM's state disk.
dataDir: data
p2p:
  listen: ["/ip4/0.0.0.0/tcp/${GUEST_PORTS.p2p}", "/ip4/0.0.0.0/tcp/${GUEST_PORTS.p2pWs}/ws"]
  # What publishers on the host dial: QEMU forwards these host-loopback ports into the guest.
  announce: ["/ip4/127.0.0.1/tcp/${o.hostPorts.p2p}", "/ip4/127.0.0.1/tcp/${o.hostPorts.p2pWs}/ws"]
  inboundConnectionsPerSecondPerHost: 1000
chain:
  rpcUrl: ${JSON.stringify(rpc.toString().replace(/\/$/, ""))}
  chainId: ${o.chainId}
  payments: ${JSON.stringify(o.contracts.payments)}
  registry: ${JSON.stringify(o.contracts.registry)}
  marketplace: ${JSON.stringify(o.contracts.marketplace)}
  accountKeyFile: account.key
  confirmations: 0
pricing:
  token: ${JSON.stringify(o.pricing.token)}
  symbol: ${o.pricing.symbol}
  decimals: ${o.pricing.decimals}
  prices:
${Object.entries(o.pricing.prices)
  .map(([k, v]) => `    ${k}: ${v}`)
  .join("\n")}
billing:
  minNoticeSeconds: ${o.billing.minNoticeSeconds}
  minDepositSeconds: ${o.billing.minDepositSeconds}
engine:
  # The image's boot script runs Podman's API service here before the daemon starts.
  socket: ${VM_PODMAN_SOCKET}
  owner: ${VM_ENGINE_OWNER}
  # Pods' tcp and udp ports are published on the guest's address (QEMU's forwards arrive there, not on the
  # guest's loopback), only with a port from this range, which QEMU forwards from the same port on the host's
  # 127.0.0.1: the endpoint 127.0.0.1:PORT the daemon reports is what a publisher on the host connects to.
  publishHostIp: ""
  publicHost: 127.0.0.1
  hostPortRange: {from: ${o.podPorts.from}, to: ${o.podPorts.to}}
gateway:
  listen: 0.0.0.0:${GUEST_PORTS.gateway}
  baseDomain: localhost
  publicUrl: "http://{host}:${o.hostPorts.gateway}/"
attester: insecure-dev
ipfs:
  helia:
    dataDir: ipfs
    listen: ["/ip4/0.0.0.0/tcp/${GUEST_PORTS.ipfs}"]
    peers: ${JSON.stringify(o.ipfsPeers.map(guestView))}
    network: private
limits:
  provisionTimeoutSeconds: 300
log:
  level: ${o.logLevel}
`;
}

export interface StartedVmProvider {
  config: ProviderConfig;
  configFile: string;
  info: { peerId: string; multiaddrs: string[]; ipfs: string[]; provider: Address; metricsUrl: string };
  gatewayPort: number;
  /** The host ports pods' tcp and udp endpoints get (forwarded into the guest). */
  podPorts: PodPortRange;
  vm: ProviderVm;
}

/**
 * The release a devnet with a provider VM publishes for its image: the image's digest and its SEV-SNP
 * measurements (its release.json, when the build was given firmware), plus the insecure-dev label, because
 * the VM runs under TCG without a TEE and its daemon sends insecure-dev evidence. Publishers check the VM's
 * evidence against this release exactly as a real network checks a measured guest against its release, and a
 * release signer's revocation refuses it the same way.
 */
export async function vmReleaseInput(imageDir: string): Promise<ReleaseInput> {
  const manifest = await readManifest(imageDir);
  const file = path.join(imageDir, RELEASE_FILE);
  const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  const measured = text === undefined ? [] : parseReleaseFile(JSON.parse(text), file).measurements;
  return {
    // Not the image's own release version: this one also accepts evidence from no TEE.
    version: `${imageReleaseVersion(manifest)}-devnet`,
    imageDigest: `0x${manifest.digest}` as Hex,
    source: `tpod devnet up --provider-vm: image commit ${manifest.commit}`.slice(0, 256),
    measurements: [
      ...measured.slice(0, MAX_RELEASE_MEASUREMENTS - 1),
      {
        tee: ReleaseTee["insecure-dev"],
        config: "devnet provider VM, QEMU TCG, no TEE",
        value: INSECURE_DEV_RELEASE_VALUE,
        firmware: zeroHash,
      },
    ],
  };
}

/** Writes the state disk, boots the VM and waits for the daemon's ready line. */
export async function startVmProvider(
  o: VmProviderOptions & {
    dir: string;
    chain: DevChain;
    accountKey: string;
    ipfsPeers: string[];
    pricing: PricingFile;
    billing: { minNoticeSeconds: number; minDepositSeconds: number };
    /** 0: any free port. */
    gatewayPort: number;
    logLevel: string;
  },
): Promise<StartedVmProvider> {
  const hostPorts: Record<GuestPort, number> = {
    p2p: await freePort(),
    p2pWs: await freePort(),
    ipfs: await freePort(),
    gateway: o.gatewayPort || (await freePort()),
  };
  const podPorts = await freePortRange(POD_PORT_COUNT);
  const yaml = vmProviderYaml({
    rpcUrl: o.chain.rpcUrl,
    chainId: o.chain.chainId,
    contracts: o.chain.contracts,
    pricing: o.pricing,
    billing: o.billing,
    hostPorts,
    podPorts,
    ipfsPeers: o.ipfsPeers,
    logLevel: o.logLevel,
  });
  // A host copy, for the registration and for reading; the guest reads the one on its state disk.
  const configFile = path.join(o.dir, "provider.yaml");
  await writeFile(configFile, yaml, { mode: 0o600 });
  const stateDisk = path.join(o.dir, "state.img");
  await makeStateDisk(stateDisk, {
    "provider.yaml": { content: yaml },
    "data/account.key": { content: `${o.accountKey}\n` },
  });
  const vm = await startProviderVm({
    imageDir: o.imageDir,
    stateDisk,
    hostPorts,
    podPorts,
    consoleLog: o.consoleLog ?? path.join(o.dir, "console.log"),
    ...(o.memoryMiB ? { memoryMiB: o.memoryMiB } : {}),
    ...(o.cpus ? { cpus: o.cpus } : {}),
  });
  try {
    const timeoutMs = o.readyTimeoutMs ?? 15 * 60_000;
    let timer: NodeJS.Timeout | undefined;
    const ready = await Promise.race([
      vm.ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the provider VM's daemon was not ready within ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    const ipfs = ready.ipfs.length > 0 ? [hostMultiaddr(ready.ipfs[0]!, hostPorts.ipfs)] : [];
    return {
      config: loadConfig(configFile),
      configFile,
      info: {
        peerId: ready.peerId,
        multiaddrs: ready.multiaddrs,
        ipfs,
        provider: ready.provider as Address,
        // Metrics stay on the guest's loopback.
        metricsUrl: "",
      },
      gatewayPort: hostPorts.gateway,
      podPorts,
      vm,
    };
  } catch (err) {
    await vm.stop();
    throw err;
  }
}
