// How every tpod command finds its chain. Precedence, per part (RPC URL, contracts):
//   1. flags:        --rpc URL, --contracts FILE, --network NAME ($TPOD_HOME/networks/NAME.json)
//   2. environment:  TPOD_RPC_URL, TPOD_CONTRACTS (a file), TPOD_NETWORK (a name)
//   3. the running devnet's state file, $TPOD_HOME/devnet.json
// Within one level --rpc beats the contracts file's rpcUrl, which beats the network file's.
import { rm } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import type { Policy } from "@trustedpods/attestation";
import { loadPolicy } from "@trustedpods/attestation/node";
import { PublisherError } from "../errors.js";
import {
  type DevnetState,
  isHttpUrl,
  type NetworkContracts,
  type NetworkFile,
  parseContractsFile,
  parseDevnetState,
  parseNetworkFile,
  type ResolvedNetwork,
  type SelectedPolicy,
  selectPolicy,
} from "../network.js";
import { type Env, parseJson, readTextBounded, tpodHome, tpodPaths, writeFileAtomic } from "./files.js";

export interface NetworkOptions {
  /** --rpc URL */
  rpc?: string;
  /** --contracts FILE */
  contracts?: string;
  /** --network NAME */
  network?: string;
  /** $TPOD_HOME; default from env. */
  home?: string;
  env?: Env;
}

const MAX_STATE_BYTES = 256 * 1024;

interface Level {
  name: string;
  rpcUrl?: { value: string; source: string; chainId?: number };
  contracts?: { value: NetworkContracts; source: string; chainId?: number };
  networkName?: string;
  networkFile?: NetworkFile;
  networkFilePath?: string;
}

function checkName(name: string, from: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name))
    throw new PublisherError(
      "NETWORK_MALFORMED",
      `${from}: network name "${name}" must be letters, digits, ".", "_" or "-"`,
    );
  return name;
}

async function readJsonFile(path: string, what: string): Promise<unknown | undefined> {
  const text = await readTextBounded(path, MAX_STATE_BYTES, what);
  return text === undefined ? undefined : parseJson(text, `${what} ${path}`);
}

/** Reads `$TPOD_HOME/networks/NAME.json`; NETWORK_MALFORMED when it is missing or invalid. */
export async function readNetworkFile(
  home: string,
  name: string,
  from: string,
): Promise<{ file: NetworkFile; path: string }> {
  const path = join(tpodPaths(home).networks, `${checkName(name, from)}.json`);
  const doc = await readJsonFile(path, "network file");
  if (doc === undefined)
    throw new PublisherError(
      "NETWORK_MALFORMED",
      `${from} names network "${name}", but ${path} does not exist`,
    );
  return { file: parseNetworkFile(doc, path), path };
}

/** Saves a named network file (atomic, 0600). */
export async function writeNetworkFile(home: string, name: string, file: NetworkFile): Promise<string> {
  const path = join(tpodPaths(home).networks, `${checkName(name, "network name")}.json`);
  parseNetworkFile(file, path);
  await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}

async function readContractsFile(path: string, from: string) {
  const doc = await readJsonFile(path, "contracts file");
  if (doc === undefined)
    throw new PublisherError("NETWORK_MALFORMED", `${from}: contracts file ${path} does not exist`);
  return parseContractsFile(doc, path);
}

async function level(
  name: string,
  home: string,
  rpc: { value?: string; label: string },
  contracts: { value?: string; label: string },
  network: { value?: string; label: string },
): Promise<Level> {
  const out: Level = { name };
  if (network.value) {
    const { file, path } = await readNetworkFile(home, network.value, network.label);
    out.networkName = network.value;
    out.networkFile = file;
    out.networkFilePath = path;
    out.rpcUrl = {
      value: file.rpcUrl,
      source: `network file ${path}`,
      ...(file.chainId ? { chainId: file.chainId } : {}),
    };
    out.contracts = {
      value: file.contracts,
      source: `network file ${path}`,
      ...(file.chainId ? { chainId: file.chainId } : {}),
    };
  }
  if (contracts.value) {
    const c = await readContractsFile(contracts.value, contracts.label);
    const source = `${contracts.label} ${contracts.value}`;
    out.contracts = { value: c.contracts, source, ...(c.chainId ? { chainId: c.chainId } : {}) };
    if (c.rpcUrl) out.rpcUrl = { value: c.rpcUrl, source, ...(c.chainId ? { chainId: c.chainId } : {}) };
  }
  if (rpc.value) {
    if (!isHttpUrl(rpc.value))
      throw new PublisherError("NETWORK_MALFORMED", `${rpc.label} "${rpc.value}" is not an http(s) URL`);
    out.rpcUrl = { value: rpc.value, source: rpc.label };
  }
  return out;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export type DevnetLookup =
  | { state: DevnetState; path: string }
  | { state: undefined; path: string; why: string };

/** The running devnet's state, or why there is none (missing file, or its process is gone). */
export async function readDevnetState(home: string): Promise<DevnetLookup> {
  const path = tpodPaths(home).devnet;
  const doc = await readJsonFile(path, "devnet state file");
  if (doc === undefined)
    return { state: undefined, path, why: `${path} not found (start one with \`tpod devnet up\`)` };
  const state = parseDevnetState(doc, path);
  if (state.pid !== undefined && !processAlive(state.pid))
    return { state: undefined, path, why: `${path} is stale: devnet process ${state.pid} is gone` };
  return { state, path };
}

/** Writes the devnet state file (atomic, 0600); the devnet calls this once it is ready. */
export async function writeDevnetState(home: string, state: DevnetState): Promise<string> {
  const path = tpodPaths(home).devnet;
  const checked = parseDevnetState(state, path);
  await writeFileAtomic(path, `${JSON.stringify(checked, null, 2)}\n`);
  return path;
}

/** Removes the devnet state file (when the devnet stops). */
export async function removeDevnetState(home: string): Promise<void> {
  await rm(tpodPaths(home).devnet, { force: true });
}

/**
 * Resolves the network per the precedence above. NO_NETWORK when the RPC URL or the contracts cannot be found,
 * naming every place that was tried.
 */
export async function resolveNetwork(o: NetworkOptions = {}): Promise<ResolvedNetwork> {
  const env = o.env ?? process.env;
  const home = o.home ?? tpodHome(env);
  const levels = [
    await level(
      "flags",
      home,
      { value: o.rpc, label: "--rpc" },
      { value: o.contracts, label: "--contracts" },
      { value: o.network, label: "--network" },
    ),
  ];
  // The environment is read only when the flags leave something open, so a stale TPOD_NETWORK cannot break a
  // command whose flags say everything.
  if (!levels[0]!.rpcUrl || !levels[0]!.contracts) {
    levels.push(
      await level(
        "environment",
        home,
        { value: env.TPOD_RPC_URL || undefined, label: "TPOD_RPC_URL" },
        { value: env.TPOD_CONTRACTS || undefined, label: "TPOD_CONTRACTS" },
        { value: env.TPOD_NETWORK || undefined, label: "TPOD_NETWORK" },
      ),
    );
  }
  let rpcUrl = levels.find((l) => l.rpcUrl)?.rpcUrl;
  let contracts = levels.find((l) => l.contracts)?.contracts;
  const named = levels.find((l) => l.networkFile);
  let devnet: DevnetState | undefined;
  let devnetWhy: string | undefined;
  if (!rpcUrl || !contracts) {
    const found = await readDevnetState(home);
    if (found.state) {
      devnet = found.state;
      const source = `devnet ${found.path}`;
      rpcUrl ??= { value: devnet.rpcUrl, source, chainId: devnet.chainId };
      contracts ??= { value: devnet.contracts, source, chainId: devnet.chainId };
    } else devnetWhy = found.why;
  }
  if (!rpcUrl || !contracts) {
    const missing = !rpcUrl && !contracts ? "no chain" : !rpcUrl ? "no RPC URL" : "no contract addresses";
    const tried = [
      "flags --rpc, --contracts, --network: " +
        (levels[0]!.rpcUrl || levels[0]!.contracts ? "partial" : "not given"),
      "environment TPOD_RPC_URL, TPOD_CONTRACTS, TPOD_NETWORK: " +
        (levels[1]?.rpcUrl || levels[1]?.contracts ? "partial" : "not set"),
      `devnet: ${devnetWhy ?? "not used"}`,
    ];
    throw new PublisherError("NO_NETWORK", `${missing} found. Tried:\n  - ${tried.join("\n  - ")}`);
  }
  const isDevnet =
    devnet !== undefined && rpcUrl.source.startsWith("devnet") && contracts.source.startsWith("devnet");
  const chainId = contracts.chainId ?? rpcUrl.chainId;
  const fromNetworkFile = named && contracts.source.startsWith("network file") ? named : undefined;
  const policy = fromNetworkFile?.networkFile?.policy;
  const policyFile =
    policy === undefined
      ? undefined
      : isAbsolute(policy)
        ? policy
        : resolve(tpodPaths(home).networks, policy);
  return {
    name: isDevnet ? "devnet" : (fromNetworkFile?.networkName ?? "custom"),
    rpcUrl: rpcUrl.value,
    ...(chainId === undefined ? {} : { chainId }),
    contracts: contracts.value,
    isDevnet,
    sources: { rpcUrl: rpcUrl.source, contracts: contracts.source },
    ...(devnet && isDevnet ? { devnet } : {}),
    ...(policyFile ? { policyFile } : {}),
    ...(fromNetworkFile?.networkFile?.key ? { defaultKey: fromNetworkFile.networkFile.key } : {}),
  };
}

/**
 * The attestation policy for a command: `--policy FILE` when given, else the network file's policy, else the
 * devnet default (allows insecure-dev) on the devnet, else the strict default.
 */
export async function loadPolicyFor(
  network: ResolvedNetwork | undefined,
  policyFile?: string,
): Promise<SelectedPolicy> {
  let explicit: { policy: Policy; source: string } | undefined;
  if (policyFile !== undefined)
    explicit = { policy: await loadPolicy(policyFile), source: `--policy ${policyFile}` };
  const fromNetwork = !explicit && network?.policyFile ? await loadPolicy(network.policyFile) : undefined;
  return selectPolicy(network, explicit, fromNetwork);
}
