/**
 * The provider daemon's configuration file (YAML). Every value is checked, unknown keys are errors, and every
 * error is reported at once as `FILE:LINE:COL: message`, so an operator fixes the file in one pass.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { didYouMean, ManifestError, type PricingFile, parsePricing } from "@trustedpods/protocol";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from "yaml";
import { registryProblem } from "./engine/kubernetes-registry.js";
import { MAX_RANGE_PORT, MIN_RANGE_PORT } from "./provision/port-range.js";

export type AttesterKind = "insecure-dev" | "configfs-tsm";

export interface ProviderConfig {
  /** Absolute path of the file the config was read from (relative paths in it are resolved against its dir). */
  file: string;
  /** State, keys, IPFS blocks and staging live here (created 0700). */
  dataDir: string;
  p2p: {
    listen: string[];
    announce: string[];
    peerKeyFile: string;
    /** New inbound connections per second per IP (libp2p default 5). */
    inboundConnectionsPerSecondPerHost?: number;
  };
  chain: {
    rpcUrl: string;
    /** When absent the daemon asks the RPC at start. */
    chainId?: number;
    payments: `0x${string}`;
    registry?: `0x${string}`;
    marketplace?: `0x${string}`;
    accountKeyFile: string;
    confirmations: number;
    /** Marketplace listing images are refused while the chain head is older than this (0: no bound). */
    maxHeadAgeSeconds: number;
  };
  pricing: PricingFile;
  billing: {
    minNoticeSeconds: number;
    /** A channel's deposit must pay at least this long at the quoted rate (the billing module checks it). */
    minDepositSeconds: number;
    quoteTtlSeconds: number;
    /**
     * Token base units one ether (10^18 wei of the chain's native currency) is worth: claims are weighed against
     * their gas with it (never more gas than a claim collects). Absent: gas is not priced (every due claim is sent).
     */
    tokenUnitsPerEther?: bigint;
    /** A channel is not claimed before it owes this many seconds of its rate (final claims excepted). */
    minClaimIntervalSeconds?: number;
  };
  engine: {
    kind: "podman" | "kubernetes";
    /** Podman only: Docker-compatible API socket; absent: the daemon starts `podman system service` itself. */
    socket?: string;
    /** Separates several daemons (or tests) on one Podman. */
    owner: string;
    /** Host address tcp ports are published on ("" = all addresses). */
    publishHostIp: string;
    /** Host name or address reported in tcp endpoints. */
    publicHost: string;
    /**
     * Podman only: the host ports tcp and udp endpoints get (each transport its own ports from the range);
     * absent: any free port the engine picks. A provision that needs more than the range has left is refused.
     */
    hostPortRange?: { from: number; to: number };
    /** Podman only: tmpfs directory for secret volumes (engine default when absent). */
    secretsDir?: string;
    /** Kubernetes only (required there): the kubeconfig file the provider reaches its cluster with. */
    kubeconfig?: string;
    /** Kubernetes only: a context of the kubeconfig (its current context when absent). */
    context?: string;
    /** Kubernetes only: each pod lives in namespace PREFIX + pod id (default "tpod-"). */
    namespacePrefix?: string;
    /** Kubernetes only: RuntimeClass of the pods, e.g. kata-qemu-snp (Confidential Containers). */
    runtimeClassName?: string;
    /** Kubernetes only: StorageClass of persistent volumes (the cluster's default when absent). */
    storageClassName?: string;
    /**
     * Kubernetes only: the registry pod images are pushed to by digest and the cluster pulls from. It receives
     * decrypted images, so the operator must declare it inside the provider's TEE boundary (`insideTee: true`).
     */
    registry?: { repository: string; authFile?: string; tlsVerify: boolean };
  };
  gateway: {
    listen: string;
    baseDomain: string;
    publicUrl?: string;
    /**
     * Who holds the public port: nginx in front of the Node gateway (requests for awake, always-on pods go
     * straight to their containers), or the Node gateway alone. auto = nginx when it is installed.
     */
    dataPlane: "auto" | "nginx" | "node";
    /** The nginx binary (default: found in /usr/sbin, /usr/local/sbin, /usr/bin). */
    nginx?: string;
    /** nginx worker processes (default: one per core). */
    workers?: number;
  };
  attester: AttesterKind;
  ipfs:
    | { kind: "helia"; dataDir: string; listen: string[]; peers: string[]; network: "devnet" | "private" }
    | { kind: "kubo"; url: string };
  metrics: { listen: string };
  limits: {
    maxPods: number;
    maxRequestBytes: number;
    provisionTimeoutSeconds: number;
    maxConcurrentProvisions: number;
  };
  log: { level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent" };
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "INVALID_CONFIG";
  constructor(readonly issues: string[]) {
    super(issues.join("\n"));
  }
}

const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;
const HOSTPORT_RE = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const DOMAIN_RE =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const OWNER_RE = /^[a-z0-9][a-z0-9-]{0,30}$/;
// A namespace name is at most 63 characters and a pod id at most 40: the prefix gets the other 23.
const NAMESPACE_PREFIX_RE = /^[a-z]([a-z0-9-]{0,22})?$/;
const DNS_SUBDOMAIN_RE = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const PODMAN_ONLY = ["socket", "secretsDir", "hostPortRange"] as const;
const KUBERNETES_ONLY = [
  "kubeconfig",
  "context",
  "namespacePrefix",
  "runtimeClassName",
  "storageClassName",
  "registry",
] as const;
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** The keys that belong to one engine kind: refused under the other, required ones reported when missing. */
function readEngineKindKeys(
  r: Reader,
  m: Map<string, Node | null>,
  engine: ProviderConfig["engine"],
  configDir: string,
): void {
  const foreign = engine.kind === "kubernetes" ? PODMAN_ONLY : KUBERNETES_ONLY;
  const other = engine.kind === "kubernetes" ? "podman" : "kubernetes";
  for (const k of foreign)
    if (m.has(k))
      r.report(m.get(k), `engine.${k} applies to engine.kind ${other} only (kind is ${engine.kind})`);
  if (engine.kind !== "kubernetes") return;
  if (!m.has("kubeconfig"))
    r.report(m.get("kind"), 'engine.kind kubernetes needs "kubeconfig" (the path of a kubeconfig file)');
  else {
    const f = r.string(m.get("kubeconfig"), "engine.kubeconfig");
    if (f !== undefined) engine.kubeconfig = resolveIn(configDir, f);
  }
  if (m.has("context")) {
    const c = r.string(m.get("context"), "engine.context");
    if (c !== undefined) engine.context = c;
  }
  if (m.has("namespacePrefix")) {
    const p = r.string(m.get("namespacePrefix"), "engine.namespacePrefix");
    if (p !== undefined && !NAMESPACE_PREFIX_RE.test(p))
      r.report(
        m.get("namespacePrefix"),
        `engine.namespacePrefix "${p}" must start with a lowercase letter and be lowercase letters, digits and '-' (at most 23: namespace names stop at 63 and pod ids take 40)`,
      );
    else if (p !== undefined) engine.namespacePrefix = p;
  }
  for (const k of ["runtimeClassName", "storageClassName"] as const) {
    if (!m.has(k)) continue;
    const v = r.string(m.get(k), `engine.${k}`);
    if (v !== undefined && !DNS_SUBDOMAIN_RE.test(v))
      r.report(m.get(k), `engine.${k} "${v}" is not a Kubernetes object name (lowercase DNS subdomain)`);
    else if (v !== undefined) engine[k] = v;
  }
  if (m.has("registry")) readEngineRegistry(r, m.get("registry"), engine, configDir);
}

/**
 * engine.hostPortRange: {from, to}, both unprivileged ports (1024 to 65535), from <= to. (The Kubernetes engine
 * publishes through NodePorts, whose range is the cluster's own: refused there with the other podman keys.)
 */
function readPortRange(r: Reader, node: Node | null | undefined): { from: number; to: number } | undefined {
  const m = r.map(node, "engine.hostPortRange", ["from", "to"]);
  if (!m) return undefined;
  for (const k of ["from", "to"])
    if (!m.has(k))
      r.report(
        node,
        `engine.hostPortRange needs "${k}" (a port from ${MIN_RANGE_PORT} to ${MAX_RANGE_PORT})`,
      );
  if (!m.has("from") || !m.has("to")) return undefined;
  const from = r.int(m.get("from"), "engine.hostPortRange.from", MIN_RANGE_PORT, MAX_RANGE_PORT);
  const to = r.int(m.get("to"), "engine.hostPortRange.to", MIN_RANGE_PORT, MAX_RANGE_PORT);
  if (from === undefined || to === undefined) return undefined;
  if (from > to) {
    r.report(node, `engine.hostPortRange: from (${from}) must not be above to (${to})`);
    return undefined;
  }
  return { from, to };
}

/** engine.registry: where the kubernetes engine pushes (decrypted) pod images; see docs/engines.md. */
function readEngineRegistry(
  r: Reader,
  node: Node | null | undefined,
  engine: ProviderConfig["engine"],
  configDir: string,
): void {
  const m = r.map(node, "engine.registry", ["repository", "authFile", "tlsVerify", "insideTee"]);
  if (!m) return;
  if (!m.has("repository"))
    r.report(node, 'engine.registry needs "repository" (host[:port]/path the cluster pulls from)');
  const repository = m.has("repository")
    ? r.string(m.get("repository"), "engine.registry.repository")
    : undefined;
  const flag = (k: string): boolean | undefined => {
    const v = m.get(k);
    if (isScalar(v) && typeof v.value === "boolean") return v.value;
    r.report(v, `engine.registry.${k} must be true or false`);
    return undefined;
  };
  const tlsVerify = m.has("tlsVerify") ? flag("tlsVerify") : true;
  // The engine pushes DECRYPTED images there: by the trust model they may exist only inside the TEE.
  const insideTee = m.has("insideTee") ? flag("insideTee") : false;
  if (insideTee === false)
    r.report(
      m.get("insideTee") ?? node,
      "engine.registry.insideTee must be true: the provider pushes decrypted images to this registry, and decrypted images may exist only inside the provider's TEE boundary (run the registry and its storage in it; docs/engines.md)",
    );
  const authFile = m.has("authFile") ? r.string(m.get("authFile"), "engine.registry.authFile") : undefined;
  if (repository === undefined || tlsVerify === undefined) return;
  const problem = registryProblem({ repository, tlsVerify });
  if (problem) {
    r.report(m.get("repository"), `engine.registry: ${problem}`);
    return;
  }
  engine.registry = {
    repository,
    tlsVerify,
    ...(authFile !== undefined ? { authFile: resolveIn(configDir, authFile) } : {}),
  };
}

/** Walks the YAML tree collecting located errors; getters return undefined after reporting. */
class Reader {
  readonly issues: string[] = [];
  constructor(
    readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  report(node: Node | null | undefined, message: string): void {
    const offset = node?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    this.issues.push(`${this.file}:${line}:${col}: ${message}`);
  }

  map(
    node: Node | null | undefined,
    what: string,
    keys: readonly string[],
  ): Map<string, Node | null> | undefined {
    if (!isMap(node)) {
      this.report(node, `${what} must be a mapping`);
      return undefined;
    }
    const out = new Map<string, Node | null>();
    for (const pair of (node as YAMLMap<Node, Node | null>).items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : "";
      if (!keys.includes(key)) {
        const near = didYouMean(key, keys);
        this.report(pair.key, `unknown key "${key}" in ${what}${near ? ` (did you mean "${near}"?)` : ""}`);
        continue;
      }
      out.set(key, pair.value ?? null);
    }
    return out;
  }

  string(node: Node | null | undefined, what: string): string | undefined {
    if (!isScalar(node) || typeof node.value !== "string" || node.value === "") {
      this.report(node, `${what} must be a non-empty string`);
      return undefined;
    }
    return node.value;
  }

  int(node: Node | null | undefined, what: string, min: number, max: number): number | undefined {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.report(node, `${what} must be an integer from ${min} to ${max}`);
      return undefined;
    }
    return v;
  }

  strings(node: Node | null | undefined, what: string): string[] | undefined {
    if (!isSeq(node)) {
      this.report(node, `${what} must be a list of strings`);
      return undefined;
    }
    const out: string[] = [];
    for (const item of node.items as Node[]) {
      const s = this.string(item, `each entry of ${what}`);
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  oneOf<T extends string>(node: Node | null | undefined, what: string, values: readonly T[]): T | undefined {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== "string" || !values.includes(v as T)) {
      this.report(node, `${what} must be one of ${values.join(", ")}`);
      return undefined;
    }
    return v as T;
  }
}

function sortIssues(issues: string[]): string[] {
  const pos = (s: string) => {
    const m = /:(\d+):(\d+): /.exec(s);
    return m ? Number(m[1]) * 100_000 + Number(m[2]) : 0;
  };
  return [...issues].sort((a, b) => pos(a) - pos(b));
}

function resolveIn(base: string, p: string): string {
  return path.isAbsolute(p) ? p : path.resolve(base, p);
}

/**
 * Parses and validates a provider config. Relative paths resolve against the config file's directory
 * (dataDir) or against dataDir (key files, IPFS repo).
 */
export function parseConfig(text: string, file: string): ProviderConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const r = new Reader(file, lines);
  for (const e of doc.errors) {
    const { line, col } = lines.linePos(e.pos[0]);
    r.issues.push(`${file}:${line}:${col}: ${e.message.split("\n")[0]}`);
  }
  if (r.issues.length) throw new ConfigError(r.issues);
  const root = doc.contents as Node | null;
  const top = r.map(root, "the config", [
    "dataDir",
    "p2p",
    "chain",
    "pricing",
    "pricingFile",
    "billing",
    "engine",
    "gateway",
    "attester",
    "ipfs",
    "metrics",
    "limits",
    "log",
  ]);
  if (!top) throw new ConfigError(r.issues);
  const configDir = path.dirname(path.resolve(file));
  const need = (m: Map<string, Node | null>, key: string, where: string, at: Node | null | undefined) => {
    if (!m.has(key)) r.report(at, `${where} needs "${key}"`);
    return m.get(key);
  };

  const dataDirText = top.has("dataDir") ? r.string(top.get("dataDir"), "dataDir") : "data";
  const dataDir = resolveIn(configDir, dataDirText ?? "data");

  // p2p
  const p2pNode = top.get("p2p");
  const p2p: ProviderConfig["p2p"] = {
    listen: ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/tcp/4002/ws"],
    announce: [],
    peerKeyFile: path.join(dataDir, "peer.key"),
  };
  if (p2pNode !== undefined) {
    const m = r.map(p2pNode, "p2p", [
      "listen",
      "announce",
      "peerKeyFile",
      "inboundConnectionsPerSecondPerHost",
    ]);
    if (m?.has("listen")) p2p.listen = r.strings(m.get("listen"), "p2p.listen") ?? [];
    if (m?.has("announce")) p2p.announce = r.strings(m.get("announce"), "p2p.announce") ?? [];
    if (m?.has("peerKeyFile"))
      p2p.peerKeyFile = resolveIn(dataDir, r.string(m.get("peerKeyFile"), "p2p.peerKeyFile") ?? "");
    if (m?.has("inboundConnectionsPerSecondPerHost"))
      p2p.inboundConnectionsPerSecondPerHost = r.int(
        m.get("inboundConnectionsPerSecondPerHost"),
        "p2p.inboundConnectionsPerSecondPerHost",
        1,
        100_000,
      );
    for (const a of p2p.listen)
      if (!a.startsWith("/ip4/") && !a.startsWith("/ip6/") && !a.startsWith("/dns"))
        r.report(m?.get("listen"), `p2p.listen entry "${a}" is not a multiaddr`);
  }

  // chain
  const chainNode = need(top, "chain", "the config", root);
  const chain = {
    rpcUrl: "",
    payments: "0x" as `0x${string}`,
    accountKeyFile: path.join(dataDir, "account.key"),
    confirmations: 1,
    maxHeadAgeSeconds: 900,
  } as ProviderConfig["chain"];
  if (chainNode !== undefined) {
    const m = r.map(chainNode, "chain", [
      "rpcUrl",
      "chainId",
      "payments",
      "registry",
      "marketplace",
      "accountKeyFile",
      "confirmations",
      "maxHeadAgeSeconds",
    ]);
    if (m) {
      const url = r.string(need(m, "rpcUrl", "chain", chainNode), "chain.rpcUrl");
      if (url !== undefined) {
        if (!/^(https?|wss?):\/\/[^\s]+$/.test(url))
          r.report(m.get("rpcUrl"), `chain.rpcUrl "${url}" is not an http(s) or ws(s) URL`);
        chain.rpcUrl = url;
      }
      if (m.has("chainId"))
        chain.chainId = r.int(m.get("chainId"), "chain.chainId", 1, Number.MAX_SAFE_INTEGER);
      for (const key of ["payments", "registry", "marketplace"] as const) {
        if (key !== "payments" && !m.has(key)) continue;
        const node = key === "payments" ? need(m, key, "chain", chainNode) : m.get(key);
        const v = r.string(node, `chain.${key}`);
        if (v === undefined) continue;
        if (!ADDRESS_RE.test(v))
          r.report(node, `chain.${key} "${v}" is not an address (0x and 40 hex digits; quote it)`);
        else chain[key] = v as `0x${string}`;
      }
      if (m.has("accountKeyFile"))
        chain.accountKeyFile = resolveIn(
          dataDir,
          r.string(m.get("accountKeyFile"), "chain.accountKeyFile") ?? "",
        );
      if (m.has("confirmations"))
        chain.confirmations = r.int(m.get("confirmations"), "chain.confirmations", 0, 1000) ?? 1;
      if (m.has("maxHeadAgeSeconds"))
        chain.maxHeadAgeSeconds =
          r.int(m.get("maxHeadAgeSeconds"), "chain.maxHeadAgeSeconds", 0, 30 * 86400) ?? 900;
    }
  }

  // pricing: inline (same format as a pricing file) or a separate file
  let pricing: PricingFile | undefined;
  if (top.has("pricing") && top.has("pricingFile"))
    r.report(top.get("pricingFile"), `give "pricing" or "pricingFile", not both`);
  if (top.has("pricing")) {
    const node = top.get("pricing");
    // Blank everything outside the pricing block so parsePricing's positions are those of this file.
    const [start, , end] = node?.range ?? [0, 0, 0];
    const blanked = text.slice(0, start).replace(/[^\n]/g, " ") + text.slice(start, end);
    try {
      pricing = parsePricing(blanked, file);
    } catch (err) {
      if (err instanceof ManifestError)
        for (const d of err.diagnostics) r.issues.push(`${d.file}:${d.line}:${d.col}: pricing: ${d.message}`);
      else throw err;
    }
  } else if (top.has("pricingFile")) {
    const p = r.string(top.get("pricingFile"), "pricingFile");
    if (p !== undefined) {
      const full = resolveIn(configDir, p);
      try {
        pricing = parsePricing(readFileSync(full, "utf8"), full);
      } catch (err) {
        if (err instanceof ManifestError)
          for (const d of err.diagnostics) r.issues.push(`${d.file}:${d.line}:${d.col}: ${d.message}`);
        else r.report(top.get("pricingFile"), `cannot read pricing file ${full}: ${(err as Error).message}`);
      }
    }
  } else {
    r.report(root, `the config needs "pricing" (or "pricingFile")`);
  }

  // billing
  const billing: ProviderConfig["billing"] = {
    minNoticeSeconds: 3600,
    minDepositSeconds: 3600,
    quoteTtlSeconds: 300,
  };
  if (top.has("billing")) {
    const m = r.map(top.get("billing"), "billing", [
      "minNoticeSeconds",
      "minDepositSeconds",
      "quoteTtlSeconds",
      "tokenUnitsPerEther",
      "minClaimIntervalSeconds",
    ]);
    if (m?.has("minNoticeSeconds"))
      billing.minNoticeSeconds =
        r.int(m.get("minNoticeSeconds"), "billing.minNoticeSeconds", 0, 0xffffffff) ?? 0;
    if (m?.has("minDepositSeconds"))
      billing.minDepositSeconds =
        r.int(m.get("minDepositSeconds"), "billing.minDepositSeconds", 0, 10 * 365 * 86400) ?? 0;
    if (m?.has("quoteTtlSeconds"))
      billing.quoteTtlSeconds = r.int(m.get("quoteTtlSeconds"), "billing.quoteTtlSeconds", 10, 86400) ?? 300;
    if (m?.has("minClaimIntervalSeconds"))
      billing.minClaimIntervalSeconds =
        r.int(m.get("minClaimIntervalSeconds"), "billing.minClaimIntervalSeconds", 0, 30 * 86400) ?? 0;
    if (m?.has("tokenUnitsPerEther")) {
      const node = m.get("tokenUnitsPerEther");
      const v = isScalar(node) ? node.value : undefined;
      // A string keeps amounts above 2^53 exact (YAML numbers are floats).
      const text = typeof v === "string" ? v : Number.isSafeInteger(v) ? String(v) : "";
      if (/^[1-9][0-9]{0,76}$/.test(text)) billing.tokenUnitsPerEther = BigInt(text);
      else
        r.report(
          node,
          'billing.tokenUnitsPerEther must be a positive integer of token base units per ether, e.g. "3000000000" (a quoted string above 2^53)',
        );
    }
  }

  // engine
  const engine: ProviderConfig["engine"] = {
    kind: "podman",
    owner: "default",
    publishHostIp: "",
    publicHost: "127.0.0.1",
  };
  if (top.has("engine")) {
    const m = r.map(top.get("engine"), "engine", [
      "kind",
      "socket",
      "owner",
      "publishHostIp",
      "publicHost",
      "secretsDir",
      "hostPortRange",
      ...KUBERNETES_ONLY,
    ]);
    if (m?.has("kind"))
      engine.kind = r.oneOf(m.get("kind"), "engine.kind", ["podman", "kubernetes"] as const) ?? "podman";
    if (m) readEngineKindKeys(r, m, engine, configDir);
    if (m?.has("socket")) engine.socket = r.string(m.get("socket"), "engine.socket");
    if (m?.has("owner")) {
      const o = r.string(m.get("owner"), "engine.owner");
      if (o !== undefined && !OWNER_RE.test(o))
        r.report(
          m.get("owner"),
          `engine.owner "${o}" must be lowercase letters, digits and '-' (at most 31)`,
        );
      else if (o !== undefined) engine.owner = o;
    }
    if (m?.has("publishHostIp")) {
      const v = m.get("publishHostIp");
      engine.publishHostIp = isScalar(v) && v.value === "" ? "" : (r.string(v, "engine.publishHostIp") ?? "");
    }
    if (m?.has("publicHost"))
      engine.publicHost = r.string(m.get("publicHost"), "engine.publicHost") ?? "127.0.0.1";
    if (m?.has("secretsDir")) engine.secretsDir = r.string(m.get("secretsDir"), "engine.secretsDir");
    if (m?.has("hostPortRange") && engine.kind === "podman") {
      const range = readPortRange(r, m.get("hostPortRange"));
      if (range) engine.hostPortRange = range;
    }
  }

  // gateway
  const gateway: ProviderConfig["gateway"] = {
    listen: "0.0.0.0:8080",
    baseDomain: "pods.localhost",
    dataPlane: "auto",
  };
  if (top.has("gateway")) {
    const m = r.map(top.get("gateway"), "gateway", [
      "listen",
      "baseDomain",
      "publicUrl",
      "dataPlane",
      "nginx",
      "workers",
    ]);
    if (m?.has("listen")) {
      const v = r.string(m.get("listen"), "gateway.listen");
      if (v !== undefined && !HOSTPORT_RE.test(v))
        r.report(m.get("listen"), `gateway.listen "${v}" must be HOST:PORT`);
      else if (v !== undefined) gateway.listen = v;
    }
    if (m?.has("baseDomain")) {
      const v = r.string(m.get("baseDomain"), "gateway.baseDomain");
      if (v !== undefined && !DOMAIN_RE.test(v))
        r.report(m.get("baseDomain"), `gateway.baseDomain "${v}" is not a lowercase DNS name`);
      else if (v !== undefined) gateway.baseDomain = v;
    }
    if (m?.has("publicUrl")) gateway.publicUrl = r.string(m.get("publicUrl"), "gateway.publicUrl");
    if (m?.has("dataPlane"))
      gateway.dataPlane =
        r.oneOf(m.get("dataPlane"), "gateway.dataPlane", ["auto", "nginx", "node"] as const) ?? "auto";
    if (m?.has("nginx")) {
      const v = r.string(m.get("nginx"), "gateway.nginx");
      if (v !== undefined && !path.isAbsolute(v))
        r.report(m.get("nginx"), `gateway.nginx "${v}" must be an absolute path to the nginx binary`);
      else if (v !== undefined) gateway.nginx = v;
    }
    if (m?.has("workers")) {
      const v = r.int(m.get("workers"), "gateway.workers", 1, 64);
      if (v !== undefined) gateway.workers = v;
    }
  }

  const attester = top.has("attester")
    ? (r.oneOf(top.get("attester"), "attester", ["insecure-dev", "configfs-tsm"] as const) ?? "insecure-dev")
    : "configfs-tsm";

  // ipfs
  let ipfs: ProviderConfig["ipfs"] = {
    kind: "helia",
    dataDir: path.join(dataDir, "ipfs"),
    listen: ["/ip4/127.0.0.1/tcp/0"],
    peers: [],
    network: "devnet",
  };
  if (top.has("ipfs")) {
    const m = r.map(top.get("ipfs"), "ipfs", ["helia", "kubo"]);
    if (m?.has("helia") && m.has("kubo")) r.report(top.get("ipfs"), `ipfs: give "helia" or "kubo", not both`);
    if (m?.has("kubo")) {
      const k = r.map(m.get("kubo"), "ipfs.kubo", ["url"]);
      const url = k && r.string(need(k, "url", "ipfs.kubo", m.get("kubo")), "ipfs.kubo.url");
      if (url !== undefined && url !== null && !/^https?:\/\/\S+$/.test(url))
        r.report(k?.get("url"), `ipfs.kubo.url "${url}" is not an http(s) URL`);
      ipfs = { kind: "kubo", url: url ?? "" };
    } else if (m?.has("helia")) {
      const h = r.map(m.get("helia"), "ipfs.helia", ["dataDir", "listen", "peers", "network"]);
      if (h?.has("dataDir") && ipfs.kind === "helia")
        ipfs.dataDir = resolveIn(dataDir, r.string(h.get("dataDir"), "ipfs.helia.dataDir") ?? "ipfs");
      if (h?.has("listen") && ipfs.kind === "helia")
        ipfs.listen = r.strings(h.get("listen"), "ipfs.helia.listen") ?? [];
      if (h?.has("peers") && ipfs.kind === "helia")
        ipfs.peers = r.strings(h.get("peers"), "ipfs.helia.peers") ?? [];
      if (h?.has("network") && ipfs.kind === "helia")
        ipfs.network =
          r.oneOf(h.get("network"), "ipfs.helia.network", ["devnet", "private"] as const) ?? "devnet";
    }
  }

  // metrics: loopback only, it is not meant for the outside
  const metrics = { listen: "127.0.0.1:9464" };
  if (top.has("metrics")) {
    const m = r.map(top.get("metrics"), "metrics", ["listen"]);
    if (m?.has("listen")) {
      const v = r.string(m.get("listen"), "metrics.listen");
      const hp = v === undefined ? null : HOSTPORT_RE.exec(v);
      if (v !== undefined && (!hp || !["127.0.0.1", "localhost", "[::1]"].includes(hp[1]!)))
        r.report(
          m.get("listen"),
          `metrics.listen "${v}" must be a loopback HOST:PORT (127.0.0.1, localhost or [::1])`,
        );
      else if (v !== undefined) metrics.listen = v;
    }
  }

  const limits = {
    maxPods: 100,
    maxRequestBytes: 1 << 20,
    provisionTimeoutSeconds: 600,
    maxConcurrentProvisions: 2,
  };
  if (top.has("limits")) {
    const m = r.map(top.get("limits"), "limits", [
      "maxPods",
      "maxRequestBytes",
      "provisionTimeoutSeconds",
      "maxConcurrentProvisions",
    ]);
    if (m?.has("maxPods")) limits.maxPods = r.int(m.get("maxPods"), "limits.maxPods", 1, 100_000) ?? 100;
    if (m?.has("maxRequestBytes"))
      limits.maxRequestBytes =
        r.int(m.get("maxRequestBytes"), "limits.maxRequestBytes", 1024, 4 << 20) ?? 1 << 20;
    if (m?.has("provisionTimeoutSeconds"))
      limits.provisionTimeoutSeconds =
        r.int(m.get("provisionTimeoutSeconds"), "limits.provisionTimeoutSeconds", 10, 86_400) ?? 600;
    if (m?.has("maxConcurrentProvisions"))
      limits.maxConcurrentProvisions =
        r.int(m.get("maxConcurrentProvisions"), "limits.maxConcurrentProvisions", 1, 64) ?? 2;
  }

  const log: ProviderConfig["log"] = { level: "info" };
  if (top.has("log")) {
    const m = r.map(top.get("log"), "log", ["level"]);
    if (m?.has("level")) log.level = r.oneOf(m.get("level"), "log.level", LOG_LEVELS) ?? "info";
  }

  if (r.issues.length || !pricing) throw new ConfigError(sortIssues(r.issues));
  return {
    file: path.resolve(file),
    dataDir,
    p2p,
    chain,
    pricing,
    billing,
    engine,
    gateway,
    attester,
    ipfs,
    metrics,
    limits,
    log,
  };
}

export function loadConfig(file: string): ProviderConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError([`${file}: cannot read: ${(err as Error).message}`]);
  }
  if (text.length > 1 << 20) throw new ConfigError([`${file}: larger than 1 MiB`]);
  return parseConfig(text, file);
}

/** The commented default `tpod provider init` writes. */
export function defaultConfigText(opts: { payments?: string; rpcUrl?: string; token?: string } = {}): string {
  return `# Trusted Pods provider daemon configuration (tpod provider serve --config THIS_FILE).
# Relative paths: dataDir is relative to this file; key files and the IPFS repo are relative to dataDir.

# State (SQLite), keys and staging. Inside a TEE put it on the sealed/encrypted disk.
dataDir: data

p2p:
  # Where publishers reach the daemon: TCP and WebSockets (browsers dial /ws; put TLS in front for wss).
  listen: ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/tcp/4002/ws"]
  # Addresses to announce instead (e.g. a public DNS name): [] announces the listen addresses.
  announce: []
  # The libp2p identity (Ed25519), created 0600 at first start; attestation binds its public key.
  peerKeyFile: peer.key

chain:
  rpcUrl: ${JSON.stringify(opts.rpcUrl ?? "http://127.0.0.1:8545")}
  # chainId: 31337         # optional; asked from the RPC when absent
  # Contract addresses (quote them: YAML reads 0x... as a number).
  payments: ${JSON.stringify(opts.payments ?? "0x0000000000000000000000000000000000000000")}
  # registry: "0x..."
  # marketplace: "0x..."
  # The provider's Ethereum account: a file holding one 0x-prefixed private key, mode 0600.
  accountKeyFile: account.key
  # Blocks to wait before trusting a transaction.
  confirmations: 1
  # Marketplace listing images are refused while the chain head is older than this many seconds (a stale
  # view must not let a developer's software run unpaid); 0 turns the bound off (an idle automine devnet).
  maxHeadAgeSeconds: 900

# Prices in one ERC-20 token, per unit per second (same format as a pricing file, docs/manifest.md).
# Or: pricingFile: pricing.yaml
pricing:
  token: ${JSON.stringify(opts.token ?? "0x0000000000000000000000000000000000000000")}
  symbol: TPOD
  decimals: 18
  prices:
    cpu: 10000000000        # per millicore-second
    memory: 1400000000      # per MiB-second
    storage: 28000000000    # per GiB-second

billing:
  minNoticeSeconds: 3600    # shortest close notice accepted (quotes carry it)
  minDepositSeconds: 3600   # a channel's deposit must pay at least this long at the quoted rate
  quoteTtlSeconds: 300      # quotes expire after this
  # tokenUnitsPerEther: "3000000000"  # token base units one ether buys (e.g. 6-decimal USD at 3000/ETH): claims
  #                                   # then never cost more gas than they collect; absent: gas is not priced
  # minClaimIntervalSeconds: 3600     # claim a channel only once it owes this long at its rate (set it when gas is
  #                                   # not priced: otherwise every tick claims every channel)

engine:
  kind: podman
  # socket: /run/podman/podman.sock   # absent: the daemon starts "podman system service" itself
  owner: default             # separates several daemons sharing one Podman
  publishHostIp: ""          # host address tcp ports are published on ("" = all)
  publicHost: 127.0.0.1      # host name reported in tcp endpoints
  # hostPortRange: {from: 20000, to: 20099}  # tcp and udp endpoints get host ports from here only (a firewall or
  #                                          # a VM's port forwards open exactly these); absent: any free port
  # Or run pods on a Kubernetes cluster (docs/engines.md; socket is then not used):
  # kind: kubernetes
  # kubeconfig: /etc/trustedpods/kubeconfig
  # context: provider          # absent: the kubeconfig's current context
  # namespacePrefix: tpod-     # each pod gets namespace PREFIX + pod id
  # runtimeClassName: kata-qemu-snp
  # registry:                  # where pod images are pushed by digest (the cluster pulls them from there)
  #   repository: registry.example:5000/tpod
  #   authFile: /etc/trustedpods/registry-auth.json   # optional push credentials (containers-auth.json)
  #   insideTee: true          # required: it holds decrypted images, so it must be inside the TEE boundary

gateway:
  listen: 0.0.0.0:8080       # the HTTP entry point (routes by Host header)
  baseDomain: pods.localhost # pods without a hostname get NAME.<baseDomain>
  dataPlane: auto            # nginx in front when installed (awake pods served natively), or: nginx | node
  # nginx: /usr/sbin/nginx   # the binary, when not in a usual place
  # workers: 2               # nginx worker processes (default: one per core)

# insecure-dev on machines without a TEE (refused by verifiers unless their policy allows it),
# configfs-tsm inside SEV-SNP or TDX guests.
attester: insecure-dev

ipfs:
  helia:                     # embedded node; or kubo: {url: http://127.0.0.1:5001}
    dataDir: ipfs
    listen: ["/ip4/127.0.0.1/tcp/0"]
    peers: []                # multiaddrs with /p2p/ID dialled at start
    network: devnet          # devnet = loopback only; private = any address, no discovery

metrics:
  listen: 127.0.0.1:9464     # Prometheus /metrics, loopback only

limits:
  maxPods: 100
  maxRequestBytes: 1048576   # largest request message (1 MiB)
  provisionTimeoutSeconds: 600
  maxConcurrentProvisions: 2

log:
  level: info
`;
}
