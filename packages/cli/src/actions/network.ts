import { resolve } from "node:path";
import { PublisherError, type ResolvedNetwork } from "@trustedpods/publisher";
import {
  type KeyRef,
  type ResolvedAccount,
  readNetworkFile,
  resolveKeyRef,
  resolveNetwork,
  tpodHome,
  unlockKey,
  writeNetworkFile,
} from "@trustedpods/publisher/node";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { KeyFlags, NetworkAddOpts, NetworkFlags } from "../options/network.js";
import { printJson } from "../output.js";

/** Which key a command would use, without unlocking it. */
export async function keyRefFromFlags(
  network: ResolvedNetwork | undefined,
  flags: KeyFlags,
): Promise<KeyRef> {
  try {
    return await resolveKeyRef(network, flags.key === undefined ? {} : { key: flags.key });
  } catch (err) {
    throw cliError(err);
  }
}

/** The unlocked account for a command that signs (asks for the passphrase where the key is encrypted). */
export async function accountFromFlags(
  network: ResolvedNetwork | undefined,
  flags: KeyFlags,
): Promise<ResolvedAccount> {
  const ref = await keyRefFromFlags(network, flags);
  try {
    return await unlockKey(
      ref,
      network,
      flags.passwordFile === undefined ? {} : { passwordFile: flags.passwordFile },
    );
  } catch (err) {
    throw cliError(err);
  }
}

/** Turns the SDK's typed errors into the CLI's: the message alone, exit 1. Anything else passes through. */
export function cliError(err: unknown): unknown {
  if (err instanceof PublisherError) return new CliError(err.message, ExitCode.failure);
  return err;
}

export async function networkFromFlags(flags: NetworkFlags): Promise<ResolvedNetwork> {
  try {
    return await resolveNetwork({
      ...(flags.rpc === undefined ? {} : { rpc: flags.rpc }),
      ...(flags.contracts === undefined ? {} : { contracts: flags.contracts }),
      ...(flags.network === undefined ? {} : { network: flags.network }),
    });
  } catch (err) {
    throw cliError(err);
  }
}

export function networkSummary(n: ResolvedNetwork): Record<string, unknown> {
  return {
    name: n.name,
    rpcUrl: n.rpcUrl,
    chainId: n.chainId ?? null,
    contracts: n.contracts,
    isDevnet: n.isDevnet,
    sources: n.sources,
    policyFile: n.policyFile ?? null,
    defaultKey: n.defaultKey ?? null,
  };
}

/** `tpod network show` */
export async function networkShow(
  { io }: CommandContext,
  opts: NetworkFlags & KeyFlags & { json?: boolean },
): Promise<void> {
  const n = await networkFromFlags(opts);
  // The key is informative here: a network without one is still a network.
  const key = await keyRefFromFlags(n, opts).then(
    (ref) => ({ address: "address" in ref ? (ref.address ?? null) : null, source: ref.source }),
    (err: Error) => ({ address: null, source: null, problem: err.message }),
  );
  if (opts.json) return printJson(io, { ...networkSummary(n), key });
  io.out(`network   ${n.name}${n.isDevnet ? " (local devnet: insecure-dev providers are accepted)" : ""}`);
  io.out(`rpc       ${n.rpcUrl}  (from ${n.sources.rpcUrl})`);
  if (n.chainId !== undefined) io.out(`chain id  ${n.chainId}`);
  io.out(`contracts (from ${n.sources.contracts})`);
  for (const [k, v] of Object.entries(n.contracts)) io.out(`  ${k.padEnd(12)}${v}`);
  if (n.policyFile) io.out(`policy    ${n.policyFile}`);
  io.out(
    `key       ${"problem" in key ? `none (${key.problem})` : `${key.address ?? "?"}  (from ${key.source})`}`,
  );
}

/** `tpod network add NAME` */
export async function networkAdd({ io }: CommandContext, name: string, opts: NetworkAddOpts): Promise<void> {
  let chainId: number | undefined;
  if (opts.chainId !== undefined) {
    chainId = Number(opts.chainId);
    if (!Number.isSafeInteger(chainId) || chainId <= 0)
      throw new CliError(`--chain-id must be a positive integer, got ${opts.chainId}`, ExitCode.usage);
  }
  try {
    const resolved = await resolveNetwork({ rpc: opts.rpc, contracts: opts.contracts, env: {} });
    const home = tpodHome();
    const path = await writeNetworkFile(home, name, {
      rpcUrl: resolved.rpcUrl,
      ...((chainId ?? resolved.chainId) ? { chainId: chainId ?? resolved.chainId } : {}),
      contracts: resolved.contracts,
      ...(opts.policy ? { policy: resolve(opts.policy) } : {}),
    });
    const { file } = await readNetworkFile(home, name, "network add");
    if (opts.json) printJson(io, { name, path, ...file });
    else io.out(`saved network ${name} to ${path}`);
  } catch (err) {
    throw cliError(err);
  }
}
