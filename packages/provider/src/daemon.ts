/**
 * The provider daemon: wires config, keys, state, engine, IPFS, p2p handlers, metrics and recovery together.
 * `Daemon.start(config)` returns once recovery finished and the node listens; `stop()` undoes it in reverse.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Ed25519PrivateKey } from "@libp2p/interface";
import { type Attester, insecureDevAttester } from "@trustedpods/attestation";
import { detectTeeGuestInterface, teeGuestAttester } from "@trustedpods/attestation/node";
import type { ChainContext } from "@trustedpods/chain";
import { type ContentStore, createIpfsNode, createKuboStore } from "@trustedpods/ipfs";
import { createP2PNode, loadOrCreatePeerKey, type P2PNode, ReplayCache } from "@trustedpods/p2p";
import type { PodBilling } from "@trustedpods/protocol";
import { type Address, createPublicClient, http, type LocalAccount } from "viem";
import type { Billing } from "./billing/billing.js";
import { billingToWire, createDaemonBilling, providerChainContext } from "./billing/daemon-wiring.js";
import type { BillingConfig } from "./billing/types.js";
import type { AllowAllPaymentGate, PaymentGate } from "./billing-seam.js";
import { chainClock } from "./chain-clock.js";
import type { ProviderConfig } from "./config.js";
import { createEngine } from "./engine/factory.js";
import type { Engine } from "./engine/types.js";
import { startGateway } from "./gateway/start.js";
import type { Gateway } from "./gateway/types.js";
import type { RouteRegistry } from "./gateway-seam.js";
import type { AdmissionDeps } from "./handlers/admission.js";
import { attestProtocol } from "./handlers/attest.js";
import { deleteProtocol } from "./handlers/delete.js";
import { logsProtocol } from "./handlers/logs.js";
import { provisionProtocol } from "./handlers/provision.js";
import { quoteProtocol } from "./handlers/quote.js";
import type { Protocol, ServeContext } from "./handlers/serve.js";
import { statusProtocol } from "./handlers/status.js";
import { updateProtocol } from "./handlers/update.js";
import { type EncryptionKey, loadAccountKey, loadOrCreateEncryptionKey } from "./keys.js";
import { createLogger, type Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import { PodManager } from "./pods.js";
import { type ContentFetcher, IpfsContentFetcher } from "./provision/content.js";
import { ListingImages } from "./provision/listing.js";
import { ListingMetadataPinner } from "./provision/listing-pins.js";
import { SqliteNonceStore, StateDb } from "./state/db.js";

export interface DaemonDeps {
  /**
   * The payment check. Absent: the billing module (channel checks against the Payments contract, claims loop,
   * metering) is built from the config. AllowAllPaymentGate only in tests.
   */
  gate?: PaymentGate | AllowAllPaymentGate;
  /** Test hook: billing loop timing and thresholds (the config file sets the payment terms). */
  billing?: Partial<BillingConfig>;
  routes?: RouteRegistry;
  engine?: Engine;
  fetcher?: ContentFetcher;
  attester?: Attester;
  logger?: Logger;
  /** Test hook, see PodManagerOptions.holdProvisionMs. */
  holdProvisionMs?: number;
  /** Marketplace listing images; absent: built from the config when the daemon runs its own IPFS store. */
  listings?: ListingImages;
}

export interface DaemonInfo {
  peerId: string;
  multiaddrs: string[];
  metricsUrl: string;
  provider: Address;
  chainId: number;
  /** SPKI DER, hex: what AttestResponse carries and attestation binds. */
  encryptionPublicKey: string;
  encryptionPublicJwk: Record<string, unknown>;
  /** The key id publishers put in a secret's keyRef. */
  encryptionKeyId: string;
  ipfs: string[];
}

export { podHash } from "./handlers/quote.js";

export class Daemon {
  private unregister: (() => Promise<void>)[] = [];
  private stopped = false;
  /** Pins the metadata of the listings this provider is authorized for (absent with an injected fetcher). */
  listingPins: ListingMetadataPinner | undefined;

  private constructor(
    readonly config: ProviderConfig,
    readonly log: Logger,
    readonly state: StateDb,
    readonly engine: Engine,
    private readonly ownEngine: boolean,
    readonly node: P2PNode,
    readonly metrics: Metrics,
    readonly pods: PodManager,
    readonly encryptionKey: EncryptionKey,
    readonly peerKey: Ed25519PrivateKey,
    readonly account: LocalAccount,
    readonly chainId: number,
    private readonly ipfs:
      | (ContentStore & { multiaddrs?: () => string[]; stop?: () => Promise<void> })
      | undefined,
    readonly routes: RouteRegistry,
    readonly attester: Attester,
    readonly gate: PaymentGate,
    private metricsUrl: string,
    /** The billing module when the daemon built it (no gate passed in). */
    readonly billing: Billing | undefined,
  ) {}

  static async start(config: ProviderConfig, deps: DaemonDeps): Promise<Daemon> {
    const log = deps.logger ?? createLogger(config.log.level);
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    const state = StateDb.open(config.dataDir);
    const cleanup: (() => Promise<void> | void)[] = [() => state.close()];
    try {
      const peerKey = await loadOrCreatePeerKey(config.p2p.peerKeyFile);
      const encryptionKey = await loadOrCreateEncryptionKey(path.join(config.dataDir, "encryption.jwk"));
      const account = await loadAccountKey(config.chain.accountKeyFile);
      const chainId = config.chain.chainId ?? (await askChainId(config.chain.rpcUrl));
      const attester =
        deps.attester ?? (config.attester === "insecure-dev" ? insecureDevAttester() : teeGuestAttester());
      if (config.attester === "insecure-dev")
        log.warn("attester is insecure-dev: verifiers refuse it unless their policy allows it");
      // Said at start rather than only at the first verification: which kernel feature is missing.
      else if (!deps.attester)
        await detectTeeGuestInterface().catch((err: Error) => log.warn(`attester: ${err.message}`));

      let engine = deps.engine;
      const ownEngine = !engine;
      if (!engine) {
        const e = await createEngine(config, log);
        cleanup.push(() => e.close());
        engine = e;
      }

      let ipfs: (ContentStore & { multiaddrs?: () => string[]; stop?: () => Promise<void> }) | undefined;
      let fetcher = deps.fetcher;
      if (!fetcher) {
        let store: ContentStore;
        if (config.ipfs.kind === "kubo") store = createKuboStore({ url: config.ipfs.url });
        else {
          const node = await createIpfsNode({
            dataDir: config.ipfs.dataDir,
            listen: config.ipfs.listen,
            peers: config.ipfs.peers,
            network: config.ipfs.network,
            // Rare, and the first sign of a peer that dropped a block it was asked for: worth a warning.
            onRewant: (cid, attempt) =>
              log.warn({ cid: cid.toString(), attempt }, "IPFS block not received yet; asking peers again"),
          });
          store = node;
          cleanup.push(() => node.stop());
        }
        ipfs = store;
        const peers = config.ipfs.kind === "helia" ? config.ipfs.peers : [];
        fetcher = new IpfsContentFetcher(store, encryptionKey, () => peers);
      }
      let listingPins: ListingMetadataPinner | undefined;
      if (ipfs && !deps.fetcher) {
        // The metadata of listings this provider may run stays fetchable from its node after the developer's
        // node is gone: publishers browsing the Marketplace read names and descriptions from it.
        const pinner = new ListingMetadataPinner({
          chain: () => providerChainContext(config, chainId, account),
          provider: account.address,
          store: ipfs,
          pollMs: 2000,
          log,
        });
        pinner.start();
        cleanup.push(() => pinner.stop());
        listingPins = pinner;
      }
      let listings = deps.listings;
      if (!listings && ipfs) {
        const store = ipfs;
        const peers = config.ipfs.kind === "helia" ? config.ipfs.peers : [];
        listings = new ListingImages({
          // Lazy: a daemon that never sees a listing image never needs the Marketplace address.
          chain: () => providerChainContext(config, chainId, account),
          provider: account.address,
          store,
          key: encryptionKey,
          confirmations: config.chain.confirmations,
          maxHeadAgeSeconds: config.chain.maxHeadAgeSeconds,
          peers: () => peers,
        });
      }

      const metrics = new Metrics(() => state.podCountsByPhase());
      let routes: RouteRegistry;
      if (deps.routes) routes = deps.routes;
      else {
        const gw = await startGateway(config, { engine, state, metrics, log });
        log.info({ address: gw.address, dataPlane: gw.dataPlane }, "gateway listening");
        routes = gw;
        cleanup.push(() => gw.close());
      }
      // Billing (unless a test gate is given) drives pods through the PodManager built just below.
      let pods: PodManager | undefined;
      let billing: Billing | undefined;
      let gate = deps.gate;
      if (!gate) {
        const b = await createDaemonBilling({
          config,
          chainId,
          account,
          db: state.db,
          engine,
          registry: metrics.registry,
          logger: log,
          pods: () => pods!,
          ...(deps.billing ? { overrides: deps.billing } : {}),
        });
        cleanup.push(() => b.stop());
        billing = b;
        gate = b.gate;
      }
      pods = new PodManager({
        state,
        engine,
        fetcher,
        gate,
        routes,
        log,
        metrics,
        stagingDir: path.join(config.dataDir, "staging"),
        hostPaths: [
          config.dataDir,
          ...(config.ipfs.kind === "helia" ? [config.ipfs.dataDir] : []),
          ...(config.engine.secretsDir ? [config.engine.secretsDir] : []),
        ],
        baseDomain: config.gateway.baseDomain,
        publishHostIp: config.engine.publishHostIp,
        publicHost: config.engine.publicHost,
        ...(config.engine.hostPortRange ? { hostPortRange: config.engine.hostPortRange } : {}),
        provisionTimeoutMs: config.limits.provisionTimeoutSeconds * 1000,
        maxConcurrentProvisions: config.limits.maxConcurrentProvisions,
        ...(deps.holdProvisionMs ? { holdProvisionMs: deps.holdProvisionMs } : {}),
        ...(listings ? { listings } : {}),
      });
      await pods.recover();
      // After recovery: the loop acts on the pods as the daemon knows them.
      billing?.start();

      const node = await createP2PNode({
        privateKey: peerKey,
        listen: config.p2p.listen,
        ...(config.p2p.announce.length ? { announce: config.p2p.announce } : {}),
        ...(config.p2p.inboundConnectionsPerSecondPerHost
          ? { inboundConnectionsPerSecondPerHost: config.p2p.inboundConnectionsPerSecondPerHost }
          : {}),
      });
      cleanup.push(() => node.stop());
      const metricsUrl = await metrics.listen(config.metrics.listen);
      cleanup.push(() => metrics.close());

      const daemon = new Daemon(
        config,
        log,
        state,
        engine,
        ownEngine,
        node,
        metrics,
        pods,
        encryptionKey,
        peerKey,
        account,
        chainId,
        ipfs,
        routes,
        attester,
        gate,
        metricsUrl,
        billing,
      );
      daemon.listingPins = listingPins;
      await daemon.register();
      log.info(
        { peerId: node.peerId.toString(), provider: account.address, chainId },
        "provider daemon ready",
      );
      return daemon;
    } catch (err) {
      for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
      throw err;
    }
  }

  info(): DaemonInfo {
    return {
      peerId: this.node.peerId.toString(),
      multiaddrs: this.node.getMultiaddrs().map((a) => a.toString()),
      metricsUrl: this.metricsUrl,
      provider: this.account.address,
      chainId: this.chainId,
      encryptionPublicKey: Buffer.from(this.encryptionKey.publicKeyDer).toString("hex"),
      encryptionPublicJwk: this.encryptionKey.publicJwk as Record<string, unknown>,
      encryptionKeyId: this.encryptionKey.kid,
      ipfs: this.ipfs?.multiaddrs?.() ?? [],
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const u of this.unregister) await u().catch(() => undefined);
    await this.billing?.stop().catch(() => undefined);
    await this.listingPins?.stop().catch(() => undefined);
    const gw = this.routes as Partial<Gateway>;
    if (gw !== undefined && typeof gw.close === "function" && "address" in gw)
      await gw.close().catch(() => undefined);
    await Promise.resolve(this.node.stop()).catch(() => undefined);
    await this.metrics.close().catch(() => undefined);
    if (this.ipfs?.stop) await Promise.resolve(this.ipfs.stop()).catch(() => undefined);
    if (this.ownEngine) await this.engine.close().catch(() => undefined);
    this.state.close();
    this.log.info("provider daemon stopped");
  }

  // -------------------------------------------------------------------------------------------- handlers

  private async register(): Promise<void> {
    const replay = await ReplayCache.open(new SqliteNonceStore(this.state));
    const s: ServeContext = {
      node: this.node,
      metrics: this.metrics,
      log: this.log,
      verifier: { provider: this.account.address, chainId: this.chainId, replay },
    };
    const limits = this.config.limits;
    const admission: AdmissionDeps = {
      state: this.state,
      gate: this.gate,
      chainId: this.chainId,
      baseDomain: this.config.gateway.baseDomain,
      maxPods: limits.maxPods,
      ...(this.config.engine.hostPortRange ? { hostPortRange: this.config.engine.hostPortRange } : {}),
    };
    const pods = { state: this.state, engine: this.engine };
    const serve = <D>(p: Protocol<D>, deps: D) => p.serve(s, deps, limits);
    this.unregister.push(
      await serve(attestProtocol, {
        attester: this.attester,
        peerKey: this.peerKey,
        encryptionPublicKeyDer: this.encryptionKey.publicKeyDer,
        log: this.log,
      }),
      await serve(quoteProtocol, {
        account: this.account,
        chainId: this.chainId,
        config: this.config,
        billing: () => this.billing?.config,
        chain: () => this.chain(),
        clock: chainClock(() => this.chain()),
        admission,
      }),
      await serve(provisionProtocol, { ...admission, pods: this.pods }),
      await serve(updateProtocol, { ...admission, pods: this.pods }),
      await serve(deleteProtocol, { state: this.state, pods: this.pods }),
      await serve(statusProtocol, { ...pods, billingOf: (id: string) => this.billingOf(id) }),
      await serve(logsProtocol, pods),
    );
  }

  /** The provider's chain context for reads outside billing (listing terms in quotes); built once. */
  private chainContext: Promise<ChainContext> | undefined;
  private chain(): Promise<ChainContext> {
    this.chainContext ??= providerChainContext(this.config, this.chainId, this.account).catch((err) => {
      this.chainContext = undefined;
      throw err;
    });
    return this.chainContext;
  }

  /** The pod's billing summary for status (none with a test gate, or before billing knew the pod). */
  private billingOf(id: string): PodBilling | undefined {
    const billing = this.billing;
    if (!billing?.store.getPod(id)) return undefined;
    return billingToWire(billing.billingStatus(id));
  }
}

async function askChainId(rpcUrl: string): Promise<number> {
  const client = createPublicClient({ transport: http(rpcUrl, { retryCount: 1, timeout: 10_000 }) });
  try {
    return await client.getChainId();
  } catch (err) {
    throw new Error(`cannot reach the chain RPC ${rpcUrl} to learn its chain id: ${(err as Error).message}`);
  }
}
