import { multiaddr } from "@multiformats/multiaddr";
import { createP2PNode } from "@trustedpods/p2p";
import {
  chainReleaseCheck,
  connectNetwork,
  describeAttestation,
  getOffer,
  PublisherError,
  type ReleaseCheck,
  type ResolvedNetwork,
  verifyProvider,
} from "@trustedpods/publisher";
import { loadPolicyFor } from "@trustedpods/publisher/node";
import { bytesToHex, getAddress } from "viem";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { NetworkFlags } from "../options/network.js";
import type { VerifyOpts } from "../options/verify.js";
import { printJson } from "../output.js";
import { cliError, networkFromFlags } from "./network.js";

function parseTimeout(s: string | undefined): number {
  if (s === undefined) return 15_000;
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0 || n > 600)
    throw new CliError(`--timeout must be a number of seconds from 0 to 600, got ${s}`, ExitCode.usage);
  return Math.round(n * 1000);
}

/** A multiaddr target needs no chain; the network only decides the default policy then, when one is found. */
async function optionalNetwork(flags: NetworkFlags): Promise<ResolvedNetwork | undefined> {
  const explicit = flags.rpc !== undefined || flags.contracts !== undefined || flags.network !== undefined;
  try {
    return await networkFromFlags(flags);
  } catch (err) {
    if (explicit) throw err;
    return undefined;
  }
}

/** `tpod verify PROVIDER` */
export async function verifyAction({ io, setExitCode }: CommandContext, target: string, opts: VerifyOpts) {
  const timeoutMs = parseTimeout(opts.timeout);
  const isAddress = /^0x[0-9a-fA-F]{40}$/.test(target);
  if (!isAddress && !target.startsWith("/"))
    throw new CliError(
      `PROVIDER must be a provider address (0x and 40 hex digits) or a multiaddr, got "${target}"`,
      ExitCode.usage,
    );
  if (!isAddress) {
    try {
      multiaddr(target);
    } catch {
      throw new CliError(`"${target}" is not a valid multiaddr`, ExitCode.usage);
    }
  }
  const network = isAddress ? await networkFromFlags(opts) : await optionalNetwork(opts);
  let policy: Awaited<ReturnType<typeof loadPolicyFor>>;
  try {
    policy = await loadPolicyFor(network, opts.policy);
  } catch (err) {
    throw new CliError(`cannot load the policy: ${(err as Error).message}`);
  }
  let multiaddrs: string[] = [target];
  let provider: string | null = null;
  let releases: ReleaseCheck | undefined;
  if (network) {
    try {
      const { context } = await connectNetwork(network);
      let declared: `0x${string}` | undefined;
      if (isAddress) {
        const offer = await getOffer(context, getAddress(target));
        provider = offer.address;
        multiaddrs = offer.multiaddrs;
        declared = offer.release;
      }
      releases = chainReleaseCheck(context, network.name, declared);
    } catch (err) {
      // A multiaddr needs no chain: without one the release requirement refuses with its own message.
      if (isAddress) throw cliError(err);
    }
  }
  if (!opts.json) io.err(`attesting ${provider ?? target} (policy: ${policy.source})...`);
  const node = await createP2PNode();
  try {
    const r = await verifyProvider({
      node,
      multiaddrs,
      policy: policy.policy,
      policySource: policy.source,
      timeoutMs,
      ...(releases ? { releases } : {}),
    });
    const lines = describeAttestation(r);
    const result = {
      accepted: true,
      provider,
      peerId: r.peerId,
      remoteAddr: r.remoteAddr,
      tee: r.evidence.tee,
      insecure: r.insecure,
      encryptionPublicKey: bytesToHex(r.encryptionPublicKey),
      policy: policy.source,
      release: r.release
        ? {
            id: r.release.release.id,
            version: r.release.release.version,
            imageDigest: r.release.release.imageDigest,
            source: r.release.release.source,
            configuration: r.release.measurement.config,
            required: r.releaseRequired,
            ...(r.release.declaredMismatch ? { declared: r.release.declaredMismatch } : {}),
          }
        : null,
      verified: lines,
      evidence: r.summary,
    };
    if (opts.json) printJson(io, result);
    else {
      io.out(
        `accepted ${provider ?? r.peerId}: ${r.evidence.tee} evidence${r.release ? `, release ${r.release.release.version}` : ""}, peer ${r.peerId} at ${r.remoteAddr}`,
      );
      for (const line of lines) io.out(`  ${line}`);
      io.out(`encryption key ${result.encryptionPublicKey}`);
      for (const w of r.evidence.warnings) io.err(`warning: ${w}`);
    }
  } catch (err) {
    if (!(err instanceof PublisherError)) throw err;
    io.err(`refused: ${err.message}`);
    if (opts.json)
      printJson(io, {
        accepted: false,
        provider,
        code: err.code,
        field: err.field ?? null,
        reason: err.message,
        ...(err.details ? { details: err.details } : {}),
      });
    setExitCode(ExitCode.failure);
  } finally {
    await node.stop();
  }
}
