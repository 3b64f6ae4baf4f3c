/**
 * The provider daemon: wires config, keys, state, engine, IPFS, p2p handlers, metrics and recovery together.
 * `Daemon.start(config)` returns once recovery finished and the node listens; `stop()` undoes it in reverse.
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { publicKeyToProtobuf } from "@libp2p/crypto/keys";
import type { Ed25519PrivateKey } from "@libp2p/interface";
import {
  type Attester,
  computeReportData,
  envelopeToProto,
  insecureDevAttester,
  MAX_NONCE_BYTES,
  MIN_NONCE_BYTES,
} from "@trustedpods/attestation";
import { configfsTsmAttester } from "@trustedpods/attestation/node";
import { type ChainContext, paymentsDomain } from "@trustedpods/chain";
import { type ContentStore, createIpfsNode, createKuboStore } from "@trustedpods/ipfs";
import {
  createP2PNode,
  loadOrCreatePeerKey,
  type P2PNode,
  ReplayCache,
  RpcError,
  type SignedCallContext,
} from "@trustedpods/p2p";
import {
  AttestRequestSchema,
  AttestResponseSchema,
  ContainerState,
  DeleteRequestSchema,
  DeleteResponseSchema,
  type Endpoint,
  ErrorCode,
  LogEntrySchema,
  LogStream,
  LogsRequestSchema,
  type PodBilling,
  PodPhase,
  PricingError,
  ProvisionRequestSchema,
  ProvisionResponseSchema,
  podPrice,
  podToWire,
  pricingToWire,
  QuoteRequestSchema,
  QuoteResponseSchema,
  StatusRequestSchema,
  StatusResponseSchema,
  UpdateRequestSchema,
  UpdateResponseSchema,
  wire,
} from "@trustedpods/protocol";
import { Counter, Gauge } from "prom-client";
import {
  type Address,
  bytesToHex,
  createPublicClient,
  getAddress,
  type Hex,
  hexToBytes,
  http,
  type LocalAccount,
} from "viem";
import type { Billing } from "./billing/billing.js";
import { billingToWire, createDaemonBilling, providerChainContext } from "./billing/daemon-wiring.js";
import { listingsOf, quoteTerms, royaltiesForPod, signPodQuote } from "./billing/quote.js";
import type { BillingConfig } from "./billing/types.js";
import type { AllowAllPaymentGate, PaymentGate } from "./billing-seam.js";
import type { ProviderConfig } from "./config.js";
import { PodmanEngine } from "./engine/podman.js";
import type { Engine } from "./engine/types.js";
import { createGateway } from "./gateway/gateway.js";
import { nginxDirFor } from "./gateway/nginx/front-door.js";
import { findNginx } from "./gateway/nginx/process.js";
import type { Gateway } from "./gateway/types.js";
import type { RouteRegistry } from "./gateway-seam.js";
import { type ServeContext, serveSignedStream, serveSignedUnary, serveUnary } from "./handlers/serve.js";
import { type EncryptionKey, loadAccountKey, loadOrCreateEncryptionKey } from "./keys.js";
import { createLogger, type Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import { decodePod, PodManager } from "./pods.js";
import { type ContentFetcher, IpfsContentFetcher } from "./provision/content.js";
import { ListingImages } from "./provision/listing.js";
import { ListingMetadataPinner } from "./provision/listing-pins.js";
import { checkRunnable, enginePodId } from "./provision/translate.js";
import { type EndpointRecord, type PodPhaseName, SqliteNonceStore, StateDb } from "./state/db.js";

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

const PHASE: Record<PodPhaseName, PodPhase> = {
  pending: PodPhase.PENDING,
  running: PodPhase.RUNNING,
  stopped: PodPhase.STOPPED,
  failed: PodPhase.FAILED,
  deleted: PodPhase.DELETED,
};

function bytes32(b: Uint8Array, field: string): Hex {
  if (b.length !== 32)
    throw new RpcError(ErrorCode.INVALID_ARGUMENT, `${field} must be 32 bytes`, { details: { field } });
  return bytesToHex(b);
}

function endpointToWire(e: EndpointRecord): Endpoint {
  return {
    container: e.container,
    containerPort: e.containerPort,
    target: e.url
      ? { case: "httpUrl", value: e.url }
      : e.tcpAddress
        ? { case: "tcpAddress", value: e.tcpAddress }
        : e.udpAddress
          ? { case: "udpAddress", value: e.udpAddress }
          : { case: undefined },
  } as Endpoint;
}

/** SHA-256 of the pod's canonical wire encoding (re-encoded from the validated typed pod). */
export function podHash(pod: wire.Pod): Uint8Array {
  return createHash("sha256").update(toBinary(wire.PodSchema, pod)).digest();
}

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
        deps.attester ?? (config.attester === "insecure-dev" ? insecureDevAttester() : configfsTsmAttester());
      if (config.attester === "insecure-dev")
        log.warn("attester is insecure-dev: verifiers refuse it unless their policy allows it");

      let engine = deps.engine;
      const ownEngine = !engine;
      if (!engine) {
        if (!config.engine.socket)
          await reapStalePodmanService(path.join(config.dataDir, "engine", "podman.sock"), log);
        engine = await PodmanEngine.open({
          runDir: path.join(config.dataDir, "engine"),
          owner: config.engine.owner,
          publishHostIp: config.engine.publishHostIp,
          ...(config.engine.socket ? { socketPath: config.engine.socket } : {}),
          ...(config.engine.secretsDir ? { secretsDir: config.engine.secretsDir } : {}),
        });
        const e = engine;
        cleanup.push(() => e.close());
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
    const max = { maxMessageBytes: this.config.limits.maxRequestBytes };
    const long = { ...max, timeoutMs: this.config.limits.provisionTimeoutSeconds * 1000 + 30_000 };
    this.unregister.push(
      await serveUnary(
        s,
        "attest",
        AttestRequestSchema,
        AttestResponseSchema,
        (r) => this.attest(r.nonce),
        max,
      ),
      await serveUnary(s, "quote", QuoteRequestSchema, QuoteResponseSchema, (r) => this.quote(r), max),
      await serveSignedUnary(
        s,
        "provision",
        ProvisionRequestSchema,
        ProvisionResponseSchema,
        (r, c) => this.provision(r, c),
        long,
      ),
      await serveSignedUnary(
        s,
        "update",
        UpdateRequestSchema,
        UpdateResponseSchema,
        (r, c) => this.update(r, c),
        long,
      ),
      await serveSignedUnary(
        s,
        "delete",
        DeleteRequestSchema,
        DeleteResponseSchema,
        (r, c) => this.delete(r, c),
        max,
      ),
      await serveSignedUnary(
        s,
        "status",
        StatusRequestSchema,
        StatusResponseSchema,
        (r, c) => this.status(r, c),
        max,
      ),
      await serveSignedStream(s, "logs", LogsRequestSchema, LogEntrySchema, (r, c) => this.logs(r, c), max),
    );
  }

  private async attest(nonce: Uint8Array) {
    if (nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES)
      throw new RpcError(
        ErrorCode.INVALID_ARGUMENT,
        `nonce must be ${MIN_NONCE_BYTES} to ${MAX_NONCE_BYTES} bytes`,
        {
          details: { field: "nonce" },
        },
      );
    const libp2pPublicKey = publicKeyToProtobuf(this.peerKey.publicKey);
    const encryptionPublicKey = this.encryptionKey.publicKeyDer;
    let evidence: Awaited<ReturnType<Attester["attest"]>>;
    try {
      evidence = await this.attester.attest(
        await computeReportData({ nonce, libp2pPublicKey, encryptionPublicKey }),
      );
    } catch (err) {
      this.log.error({ err: (err as Error).message }, "attester failed");
      throw new RpcError(
        ErrorCode.ATTESTATION_FAILED,
        `the ${this.attester.kind} attester could not produce evidence`,
      );
    }
    return { evidence: envelopeToProto(evidence), libp2pPublicKey, encryptionPublicKey };
  }

  private async quote(r: { pod?: wire.Pod; nonce: Uint8Array; publisher: Uint8Array; podId: Uint8Array }) {
    if (r.nonce.length < 16 || r.nonce.length > 32)
      throw new RpcError(ErrorCode.INVALID_ARGUMENT, "nonce must be 16 to 32 bytes", {
        details: { field: "nonce" },
      });
    // A quote for "any" publisher or pod could be replayed onto a pod it did not price: both are required.
    if (r.publisher.length !== 20 || r.publisher.every((b) => b === 0))
      throw new RpcError(ErrorCode.INVALID_ARGUMENT, "publisher must be a non-zero 20-byte address", {
        details: { field: "publisher" },
      });
    if (r.podId.length !== 32 || r.podId.every((b) => b === 0))
      throw new RpcError(ErrorCode.INVALID_ARGUMENT, "pod_id must be a non-zero 32-byte id", {
        details: { field: "pod_id" },
      });
    const pod = decodePod(r.pod);
    checkRunnable(pod);
    let price: ReturnType<typeof podPrice>;
    try {
      price = podPrice(pod, this.config.pricing);
    } catch (err) {
      if (err instanceof PricingError)
        throw new RpcError(ErrorCode.FAILED_PRECONDITION, err.message, {
          details: { field: "resources", reason: err.code },
        });
      throw err;
    }
    // The channel must pay royalties for exactly the listings this pod runs, at their terms: the quote signs
    // that list, so a channel with any other cannot open with it.
    const royalties = listingsOf(pod).length
      ? await royaltiesForPod(await this.chain(), pod, this.account.address)
      : [];
    const signed = await signPodQuote(
      this.account,
      paymentsDomain(this.chainId, this.config.chain.payments),
      {
        pod,
        price,
        royalties,
        provider: this.account.address,
        publisher: getAddress(bytesToHex(r.publisher)),
        podId: bytesToHex(r.podId),
        token: getAddress(this.config.pricing.token),
        minNoticeSeconds: this.config.billing.minNoticeSeconds,
        expiry: BigInt(Math.floor(Date.now() / 1000) + this.config.billing.quoteTtlSeconds),
      },
    );
    const q = signed.quote;
    const billed = Object.fromEntries(price.lines.map((l) => [l.resource, l.units]));
    return {
      quote: {
        provider: this.account.address,
        chainId: BigInt(this.chainId),
        pricing: pricingToWire(this.config.pricing),
        billed: {
          cpuMillis: billed.cpu ?? 0n,
          memoryBytes: (billed.memory ?? 0n) << 20n,
          storageBytes: (billed.storage ?? 0n) << 30n,
          gpuCount: billed.gpu ?? 0n,
        },
        pricePerSecond: q.ratePerSecond.toString(),
        minNoticeSeconds: BigInt(q.minNoticeSeconds),
        expiresAt: q.expiry,
        podHash: podHash(podToWire(pod)),
        nonce: r.nonce,
        signature: hexToBytes(signed.signature),
        publisher: r.publisher,
        podId: r.podId,
        paymentsContract: this.config.chain.payments,
        // Unsigned terms (see pricing.proto): what this daemon's payment gate will check at provision.
        ...quoteTerms(this.billing?.config, this.config),
        specHash: hexToBytes(q.specHash),
        royalties: royalties.map((x) => ({ recipient: x.recipient, bps: x.bps, listingId: x.listingId })),
        royaltiesHash: hexToBytes(q.royaltiesHash),
      },
    };
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

  /** The body's pod id must be the one signed in the envelope; the pod is the signer's own. */
  private podKey(bodyPodId: Uint8Array, c: SignedCallContext): { id: string; podId: Hex } {
    const podId = bytes32(bodyPodId, "pod_id");
    if (podId.toLowerCase() !== c.request.podId.toLowerCase())
      throw new RpcError(ErrorCode.INVALID_ARGUMENT, "pod_id differs from the signed request's pod id", {
        details: { field: "pod_id" },
      });
    return { id: enginePodId(c.request.publisher, podId), podId };
  }

  private owned(id: string) {
    const rec = this.state.getPod(id);
    // Pods are looked up by (signer, pod id): another publisher's pod is simply not found.
    if (!rec) throw new RpcError(ErrorCode.NOT_FOUND, "no such pod", { details: { field: "pod_id" } });
    return rec;
  }

  /**
   * Requested hostnames must be one label under the gateway's base domain (a pod cannot claim someone else's
   * domain on this provider) and not used by another pod.
   */
  private checkHostnames(id: string, pod: ReturnType<typeof decodePod>): void {
    const used = this.state.hostnamesInUse(id);
    const suffix = `.${this.config.gateway.baseDomain}`;
    for (const c of pod.containers)
      for (const p of c.ports) {
        if (p.hostname && (!p.hostname.endsWith(suffix) || p.hostname.slice(0, -suffix.length).includes(".")))
          throw new RpcError(
            ErrorCode.INVALID_ARGUMENT,
            `hostname ${p.hostname} must be NAME${suffix} on this provider`,
            {
              details: { field: "hostname" },
            },
          );
        if (p.hostname && used.has(p.hostname))
          throw new RpcError(ErrorCode.ALREADY_EXISTS, `hostname ${p.hostname} is used by another pod`, {
            details: { field: "hostname" },
          });
      }
  }

  private async provision(
    r: { podId: Uint8Array; pod?: wire.Pod; channel?: { chainId: bigint; paymentsContract: string } },
    c: SignedCallContext,
  ) {
    const { id, podId } = this.podKey(r.podId, c);
    const pod = decodePod(r.pod);
    checkRunnable(pod);
    if (r.channel && r.channel.chainId !== BigInt(this.chainId))
      throw new RpcError(
        ErrorCode.INVALID_ARGUMENT,
        `channel is on chain ${r.channel.chainId}, not ${this.chainId}`,
        {
          details: { field: "channel.chain_id" },
        },
      );
    if (this.state.countActivePods() >= this.config.limits.maxPods)
      throw new RpcError(ErrorCode.RESOURCE_EXHAUSTED, "this provider runs as many pods as it accepts", {
        details: { reason: "max-pods" },
      });
    this.checkHostnames(id, pod);
    const channel = r.channel
      ? { chainId: r.channel.chainId, paymentsContract: r.channel.paymentsContract }
      : undefined;
    // Payment first: nothing is pulled, decrypted or started for a pod nobody pays for.
    await this.gate.checkProvision({ id, publisher: c.request.publisher, podId, pod, channel });
    const endpoints = await this.pods.provision(
      {
        id,
        publisher: c.request.publisher,
        podId,
        manifest: toBinary(wire.PodSchema, r.pod!),
        pod,
        channel: channel
          ? { chainId: channel.chainId.toString(), paymentsContract: channel.paymentsContract }
          : null,
      },
      c.signal,
    );
    return { podId: r.podId, endpoints: endpoints.map(endpointToWire) };
  }

  private async update(r: { podId: Uint8Array; pod?: wire.Pod }, c: SignedCallContext) {
    const { id, podId } = this.podKey(r.podId, c);
    const pod = decodePod(r.pod);
    checkRunnable(pod);
    this.owned(id);
    this.checkHostnames(id, pod);
    const req = { id, publisher: c.request.publisher, podId, pod, channel: undefined };
    await this.gate.checkUpdate?.(req);
    const endpoints = await this.pods.update(id, toBinary(wire.PodSchema, r.pod!), pod, c.signal);
    // From now on the channel must pay the updated spec's price (the billing loop checks it every tick).
    await this.gate.onUpdated?.(req);
    return { endpoints: endpoints.map(endpointToWire) };
  }

  private async delete(r: { podId: Uint8Array }, c: SignedCallContext) {
    const { id } = this.podKey(r.podId, c);
    this.owned(id);
    await this.pods.delete(id);
    return { volumesKeptUntil: 0n };
  }

  private async status(r: { podId: Uint8Array }, c: SignedCallContext) {
    const { id } = this.podKey(r.podId, c);
    const rec = this.owned(id);
    let phase = PHASE[rec.phase];
    const containers: {
      name: string;
      state: ContainerState;
      healthy: boolean;
      restartCount: number;
      exitCode: number;
      startedAtMs: bigint;
      message: string;
    }[] = [];
    let replicas = 0;
    if (rec.phase === "running" || rec.phase === "stopped") {
      const st = await this.engine.status(id).catch(() => undefined);
      for (const ct of st?.containers ?? []) {
        const state =
          ct.state === "running"
            ? ContainerState.RUNNING
            : ct.state === "exited" || ct.state === "dead"
              ? ContainerState.EXITED
              : ContainerState.WAITING;
        containers.push({
          name: ct.name,
          state,
          healthy: ct.health !== "unhealthy" && ct.state === "running",
          restartCount: ct.restarts,
          exitCode: ct.exitCode ?? 0,
          startedAtMs: BigInt(ct.startedAt?.getTime() ?? 0),
          message: ct.health === "none" ? "" : `health: ${ct.health}`,
        });
      }
      replicas = st?.running ? 1 : 0;
      if (rec.phase === "running" && !st?.running) {
        const pod = decodePod(fromWireBytes(rec.manifest));
        if (pod.replicas.min === 0) phase = PodPhase.SCALED_TO_ZERO;
      }
    }
    return {
      podId: r.podId,
      phase,
      message: rec.message,
      containers,
      endpoints: rec.endpoints.map(endpointToWire),
      replicas,
      billing: this.billingOf(id),
    };
  }

  /** The pod's billing summary for status (none with a test gate, or before billing knew the pod). */
  private billingOf(id: string): PodBilling | undefined {
    const billing = this.billing;
    if (!billing?.store.getPod(id)) return undefined;
    return billingToWire(billing.billingStatus(id));
  }

  private async *logs(
    r: { podId: Uint8Array; container: string; follow: boolean; sinceMs: bigint; tail: number },
    c: SignedCallContext,
  ) {
    const { id } = this.podKey(r.podId, c);
    const rec = this.owned(id);
    if (rec.phase !== "running" && rec.phase !== "stopped")
      throw new RpcError(ErrorCode.FAILED_PRECONDITION, `the pod is ${rec.phase}: no logs`, {
        details: { field: "pod_id" },
      });
    const pod = decodePod(fromWireBytes(rec.manifest));
    if (r.container && !pod.containers.some((x) => x.name === r.container))
      throw new RpcError(ErrorCode.NOT_FOUND, `no container ${r.container} in this pod`, {
        details: { field: "container" },
      });
    const lines = this.engine.logs(id, {
      follow: r.follow,
      signal: c.signal,
      ...(r.container ? { containers: [r.container] } : {}),
      ...(r.sinceMs > 0n ? { since: new Date(Number(r.sinceMs)) } : {}),
      ...(r.tail > 0 ? { tail: r.tail } : {}),
    });
    for await (const l of lines) {
      yield {
        container: l.container,
        replica: 0,
        timestampMs: BigInt(l.time.getTime()),
        stream: l.stream === "stderr" ? LogStream.STDERR : LogStream.STDOUT,
        line: l.line,
      };
    }
  }
}

function fromWireBytes(b: Uint8Array): wire.Pod {
  return fromBinary(wire.PodSchema, b);
}

/**
 * The HTTP gateway on `gateway.listen`. Its waker starts a scaled-to-zero pod only while the daemon's state says
 * the pod runs, so a pod stopped for non-payment or being deleted is never woken by a request.
 */
async function startGateway(
  config: ProviderConfig,
  d: { engine: Engine; state: StateDb; metrics: Metrics; log: Logger },
): Promise<Gateway> {
  const i = config.gateway.listen.lastIndexOf(":");
  const host = config.gateway.listen.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(config.gateway.listen.slice(i + 1));
  const requests = new Counter({
    name: "tpod_provider_gateway_requests_total",
    help: "HTTP requests through the gateway, by status class and gateway error",
    labelNames: ["status", "error"],
    registers: [d.metrics.registry],
  });
  const nginx = nginxFor(config, d.log);
  const gw = await createGateway({
    ...(nginx ? { nginx } : {}),
    engine: d.engine,
    waker: {
      async wake(id) {
        const phase = d.state.getPod(id)?.phase;
        if (phase !== "running") throw new Error(`pod ${id} is ${phase ?? "unknown"}: not woken`);
        await d.engine.start(id);
      },
      sleep: (id) => d.engine.stop(id),
    },
    listen: { host, port },
    baseDomain: config.gateway.baseDomain,
    ...(config.gateway.publicUrl ? { publicUrl: config.gateway.publicUrl } : {}),
    log: d.log.child({ module: "gateway" }),
    onRequest: (e) => requests.inc({ status: `${Math.floor(e.status / 100)}xx`, error: e.error ?? "" }),
  });
  new Gauge({
    name: "tpod_provider_gateway_info",
    help: "The gateway's data plane (nginx in front of the Node gateway, or the Node gateway alone)",
    labelNames: ["data_plane"],
    registers: [d.metrics.registry],
  }).set({ data_plane: gw.dataPlane }, 1);
  return gw;
}

/** The native data plane's settings, or undefined for the Node gateway alone (dataPlane node, or auto without nginx). */
function nginxFor(
  config: ProviderConfig,
  log: Logger,
): { binary: string; dir: string; workers?: number } | undefined {
  const { dataPlane, nginx, workers } = config.gateway;
  if (dataPlane === "node") return undefined;
  const binary = findNginx(nginx);
  if (!binary) {
    if (dataPlane === "nginx")
      throw new Error(
        `gateway.dataPlane is nginx but ${nginx ? `${nginx} does not exist` : "no nginx binary was found"}: apt install nginx, or set gateway.nginx`,
      );
    log.warn(
      "gateway: nginx is not installed; the Node gateway serves the port alone (slower for busy pods)",
    );
    return undefined;
  }
  return { binary, dir: nginxDirFor(config.dataDir), ...(workers ? { workers } : {}) };
}

/**
 * A daemon killed with SIGKILL leaves the `podman system service` it started running on its socket. Before
 * starting a new one, end that process: found by its exact command line (our own socket path), ended by pid.
 */
async function reapStalePodmanService(socketPath: string, log: Logger): Promise<void> {
  const want = `unix://${socketPath}`;
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const argv = await readFile(`/proc/${e}/cmdline`, "utf8")
      .then((t) => t.split("\0"))
      .catch(() => [] as string[]);
    if (argv.includes("system") && argv.includes("service") && argv.includes(want)) {
      log.warn({ pid: Number(e) }, "stopping the podman service a previous daemon run left behind");
      try {
        process.kill(Number(e), "SIGTERM");
      } catch {
        continue;
      }
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          process.kill(Number(e), 0);
        } catch {
          break;
        }
      }
    }
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
