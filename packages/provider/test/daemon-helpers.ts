// Shared setup for the daemon tests: a busybox image built with buildah and pushed to a publisher-side Helia
// node, a provider config pointing at real anvil, and a publisher libp2p client that signs requests.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { type Quote as ChainQuote, ensureAllowance, type Royalty } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import type { IpfsNode } from "@trustedpods/ipfs";
import {
  callSignedServerStream,
  callSignedUnary,
  callUnary,
  createP2PNode,
  type P2PNode,
  RpcError,
} from "@trustedpods/p2p";
import {
  type Container,
  DEFAULTS,
  type Pod,
  ProvisionRequestSchema,
  ProvisionResponseSchema,
  podToWire,
  QuoteRequestSchema,
  QuoteResponseSchema,
  StatusRequestSchema,
  StatusResponseSchema,
} from "@trustedpods/protocol";
import { bytesToHex, getAddress, type Hex, type LocalAccount, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { expect } from "vitest";
import {
  buildBusyboxLayout,
  type PushedImage,
  providerConfigYaml,
  pushLayout,
  startPublisherIpfs,
} from "../../../test-support/provider-world.js";
import { loadConfig } from "../src/config.js";
import { Daemon, type DaemonDeps } from "../src/daemon.js";
import { mine } from "./billing-helpers.js";

const _run = promisify(execFile);

// Shared with other packages' tests through test-support/ (re-exported so this package's tests read as before).
export {
  buildBusyboxLayout,
  haveTools,
  type PushedImage,
  providerConfigYaml,
  pushLayout,
  startPublisherIpfs,
  waitFor,
} from "../../../test-support/provider-world.js";

/** What a daemon test starts from: a dev chain, the publisher's IPFS node and a provider config for both. */
export interface DaemonTestWorld {
  tmp: string;
  chain: DevChain;
  pubIpfs: IpfsNode;
  /** provider.yaml: chain account 1, engine owner `owner`, the publisher's IPFS node as a peer. */
  cfgFile: string;
  owner: string;
}

/**
 * Starts the chain and the publisher's IPFS node and writes the provider's key and config (`editConfig` may
 * change the YAML). What started is stopped again if a later step fails.
 */
export async function startDaemonTestWorld(
  prefix: string,
  owner: string,
  editConfig: (yaml: string) => string = (yaml) => yaml,
): Promise<DaemonTestWorld> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), prefix));
  const started = await Promise.allSettled([startDevChain(), startPublisherIpfs(path.join(tmp, "pub-ipfs"))]);
  const [chainR, ipfsR] = started;
  try {
    if (chainR.status === "rejected") throw chainR.reason;
    if (ipfsR.status === "rejected") throw ipfsR.reason;
    const chain = chainR.value;
    const pubIpfs = ipfsR.value;
    const keyFile = path.join(tmp, "account.key");
    await writeFile(keyFile, `${chain.accounts[1]!.privateKey}\n`, { mode: 0o600 });
    const cfgFile = path.join(tmp, "provider.yaml");
    const yaml = providerConfigYaml({
      dataDir: path.join(tmp, "data"),
      chain,
      accountKeyFile: keyFile,
      owner,
      ipfsPeers: pubIpfs.multiaddrs(),
    });
    await writeFile(cfgFile, editConfig(yaml));
    return { tmp, chain, pubIpfs, cfgFile, owner };
  } catch (err) {
    if (ipfsR.status === "fulfilled") await ipfsR.value.stop();
    if (chainR.status === "fulfilled") await chainR.value.stop();
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Stops the publishers, removes every pod the daemon made (images too), stops the daemon, the IPFS node and the
 * chain, and deletes the world's files and the engine's tmpfs secrets root.
 */
export async function stopDaemonTestWorld(
  world: DaemonTestWorld | undefined,
  daemon: Daemon | undefined,
  publishers: (Publisher | undefined)[] = [],
): Promise<void> {
  for (const p of publishers) await p?.stop();
  if (daemon) {
    for (const m of await daemon.engine.listPods()) await daemon.engine.remove(m.podId, { images: true });
    await daemon.stop();
  }
  if (!world) return;
  await world.pubIpfs.stop();
  await world.chain.stop();
  await rm(world.tmp, { recursive: true, force: true });
  await rm(`/dev/shm/tpod-secrets-${world.owner}`, { recursive: true, force: true });
}

export function container(name: string, img: PushedImage, extra: Partial<Container> = {}): Container {
  return {
    name,
    image: { kind: "ipfs", cid: img.cid, digest: img.digest },
    command: [],
    args: [],
    env: [],
    ports: [],
    volumeMounts: [],
    resources: { cpuMillis: 200n, memoryBytes: 32n << 20n, storageBytes: 0n, gpu: 0n },
    ...extra,
  };
}

export function pod(name: string, containers: Container[], volumes: Pod["volumes"] = []): Pod {
  return { name, containers, volumes, replicas: { min: 1, max: 1, idleSeconds: 0n } };
}

export { DEFAULTS, podToWire };

export const randomPodId = (): Hex => `0x${randomBytes(32).toString("hex")}`;

/** A publisher: a dial-only libp2p node and an Ethereum key that signs its requests. */
export class Publisher {
  private constructor(
    readonly node: P2PNode,
    readonly account: LocalAccount,
    readonly target: Multiaddr[],
    readonly provider: `0x${string}`,
    readonly chainId: number,
  ) {}

  static async create(account: LocalAccount, target: Multiaddr[], provider: `0x${string}`, chainId: number) {
    return new Publisher(await createP2PNode({ transports: ["tcp"] }), account, target, provider, chainId);
  }

  /** Chain account `accountIndex` as a publisher of `daemon`. */
  static forDaemon(chain: DevChain, daemon: Daemon, accountIndex: number) {
    return Publisher.create(
      privateKeyToAccount(chain.accounts[accountIndex]!.privateKey),
      daemon.info().multiaddrs.map((a) => multiaddr(a)),
      daemon.info().provider,
      chain.chainId,
    );
  }

  call<I extends DescMessage, O extends DescMessage>(
    name: string,
    req: I,
    body: MessageInitShape<I>,
    res: O,
    podId: Hex,
    timeoutMs = 120_000,
  ): Promise<MessageShape<O>> {
    return callSignedUnary(
      this.node,
      this.target,
      name,
      req,
      body,
      res,
      { signer: this.account, chainId: this.chainId, provider: this.provider, podId },
      { timeoutMs },
    );
  }

  stream<I extends DescMessage, O extends DescMessage>(
    name: string,
    req: I,
    body: MessageInitShape<I>,
    res: O,
    podId: Hex,
  ): AsyncGenerator<MessageShape<O>> {
    return callSignedServerStream(this.node, this.target, name, req, body, res, {
      signer: this.account,
      chainId: this.chainId,
      provider: this.provider,
      podId,
    });
  }

  /**
   * The provider's signed quote for `pod`, bound to this publisher and `podId` (quotes are unsigned requests:
   * anyone may ask for a price). Throws when the answer carries no quote.
   */
  async quote(pod: Pod, podId: Hex, nonce: Uint8Array = randomBytes(16)) {
    const { quote } = await callUnary(
      this.node,
      this.target,
      "quote",
      QuoteRequestSchema,
      {
        pod: podToWire(pod),
        nonce,
        publisher: Buffer.from(this.account.address.slice(2), "hex"),
        podId: Buffer.from(podId.slice(2), "hex"),
      },
      QuoteResponseSchema,
    );
    if (!quote) throw new Error("the provider answered without a quote");
    return quote;
  }

  stop() {
    return this.node.stop();
  }
}

/** GET through the gateway at 127.0.0.1:PORT with a Host header (fetch cannot set Host). */
export function gatewayGet(
  port: number,
  host: string,
  path = "/",
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, headers: { host }, timeout: 30_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.text() };
}

/** The EIP-712 Quote (and royalty list) a wire quote signs, bound to `publisher` and `podId`. */
export function chainQuoteOf(
  quote: NonNullable<Awaited<ReturnType<Publisher["quote"]>>>,
  publisher: `0x${string}`,
  podId: Hex,
): { quote: ChainQuote; signature: Hex; royalties: Royalty[] } {
  return {
    quote: {
      provider: getAddress(quote.provider),
      publisher,
      podId,
      token: getAddress(quote.pricing!.token),
      ratePerSecond: BigInt(quote.pricePerSecond),
      minNoticeSeconds: Number(quote.minNoticeSeconds),
      expiry: quote.expiresAt,
      specHash: bytesToHex(quote.specHash),
      royaltiesHash: bytesToHex(quote.royaltiesHash),
    },
    signature: bytesToHex(quote.signature),
    royalties: quote.royalties.map((r) => ({
      recipient: getAddress(r.recipient),
      bps: r.bps,
      listingId: r.listingId,
    })),
  };
}

// ------------------------------------------------------------------------------------ what the paid tests share

/** Mines `blocks` blocks on the dev chain (billing-helpers' `mine`, under the name the paid tests use). */
export { mine as mineBlocks } from "./billing-helpers.js";

/** Moves chain time on and mines two blocks: the daemon reads at latest - 1 confirmation. */
export async function advanceChainTime(chain: DevChain, seconds: bigint): Promise<void> {
  await chain.publicClient.request({
    method: "evm_increaseTime" as never,
    params: [toHex(seconds)] as never,
  });
  await mine(chain, 2);
}

/** `who` provisions `p` under `podId`, paid through the dev chain's Payments channel. */
export function provisionPod(who: Publisher, chain: DevChain, podId: Hex, p: Pod) {
  return who.call(
    "provision",
    ProvisionRequestSchema,
    {
      podId: Buffer.from(podId.slice(2), "hex"),
      pod: podToWire(p),
      channel: { chainId: BigInt(chain.chainId), paymentsContract: chain.contracts.payments },
    },
    ProvisionResponseSchema,
    podId,
  );
}

/** `who`'s status request for `podId`. */
export function podStatus(who: Publisher, podId: Hex) {
  return who.call(
    "status",
    StatusRequestSchema,
    { podId: Buffer.from(podId.slice(2), "hex") },
    StatusResponseSchema,
    podId,
  );
}

/** The RpcError `p` rejects with (fails the test when it resolves or rejects with anything else). */
export async function rpcRefusal(p: Promise<unknown>): Promise<RpcError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RpcError);
  return err as RpcError;
}

/** A daemon test world with the daemon running and alice (chain account 2) as its publisher. */
export interface PaidDaemon {
  world: DaemonTestWorld;
  daemon: Daemon;
  alice: Publisher;
  /** busybox serving `index` from /www, pushed to the publisher's IPFS node. */
  image: PushedImage;
}

/**
 * Starts a daemon test world (`prefix`, engine owner `owner`, `editConfig` as in startDaemonTestWorld), builds a
 * busybox image tagged `imageTag` meanwhile, starts the daemon with `deps` (its own billing when none is given),
 * and makes alice its publisher; with `approve`, alice lets Payments take her tokens. What started is stopped
 * again if a later step fails.
 */
export async function startPaidDaemon(opts: {
  prefix: string;
  owner: string;
  imageTag: string;
  index?: string;
  deps?: DaemonDeps;
  editConfig?: (yaml: string) => string;
  approve?: boolean;
}): Promise<PaidDaemon> {
  const world = await startDaemonTestWorld(opts.prefix, opts.owner, opts.editConfig);
  let daemon: Daemon | undefined;
  let alice: Publisher | undefined;
  try {
    const layout = buildBusyboxLayout(world.tmp, opts.imageTag, opts.index ?? "paid\n");
    daemon = await Daemon.start(loadConfig(world.cfgFile), opts.deps ?? {});
    const image = await pushLayout(world.pubIpfs, await layout);
    alice = await Publisher.forDaemon(world.chain, daemon, 2);
    if (opts.approve) await ensureAllowance(world.chain.context(2), world.chain.contracts.token, 2n ** 200n);
    return { world, daemon, alice, image };
  } catch (err) {
    await stopDaemonTestWorld(world, daemon, [alice]);
    throw err;
  }
}
