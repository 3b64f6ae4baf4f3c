import { readFile } from "node:fs/promises";
import {
  ChainError,
  listReleases,
  NoReleasesContractError,
  publishRelease,
  type Release,
  ReleaseStatus,
  releaseSigners,
  releaseTeeName,
  revokeRelease,
} from "@trustedpods/chain";
import {
  connectNetwork,
  type NetworkClients,
  PublisherError,
  parseReleaseFile,
} from "@trustedpods/publisher";
import type { Hex } from "viem";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { ReleaseFlags, ReleaseRevokeOpts } from "../options/release.js";
import { printJson } from "../output.js";
import { accountFromFlags, cliError, networkFromFlags } from "./network.js";

const MAX_RELEASE_FILE = 64 * 1024;

function failure(err: unknown): unknown {
  if (err instanceof ChainError || err instanceof NoReleasesContractError)
    return new CliError(err.message, ExitCode.failure);
  return cliError(err);
}

/** Network, signing account and clients for a command that sends a transaction to Releases. */
async function signerClients(opts: ReleaseFlags): Promise<NetworkClients> {
  const network = await networkFromFlags(opts);
  const acct = await accountFromFlags(network, opts);
  const clients = await connectNetwork(network, { account: acct.account }).catch((err) => {
    throw failure(err);
  });
  if (!clients.context.addresses.releases)
    throw new CliError(
      `network ${network.name} names no Releases contract (contracts.releases in ${network.sources.contracts})`,
    );
  return clients;
}

async function readReleaseFile(file: string) {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`, ExitCode.usage);
  }
  if (text.length > MAX_RELEASE_FILE) throw new CliError(`${file} is larger than 64 KiB`, ExitCode.usage);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${file} is not JSON: ${(err as Error).message}`, ExitCode.usage);
  }
  try {
    return parseReleaseFile(doc, file);
  } catch (err) {
    if (err instanceof PublisherError) throw new CliError(err.message, ExitCode.usage);
    throw err;
  }
}

/** `tpod release publish FILE` */
export async function releasePublish({ io }: CommandContext, file: string, opts: ReleaseFlags) {
  const input = await readReleaseFile(file);
  const clients = await signerClients(opts);
  try {
    const r = await publishRelease(clients.context, input);
    const result = {
      id: r.id,
      version: input.version,
      published: r.published,
      approvals: r.approvals,
      threshold: r.threshold,
      txHash: r.hash,
    };
    if (opts.json) return printJson(io, result);
    io.out(
      r.published
        ? `published release ${input.version}: ${r.id} (approval ${r.approvals} of ${r.threshold})`
        : `approved release ${input.version} (${r.id}): ${r.approvals} of ${r.threshold} approvals; ` +
            `${r.threshold - r.approvals} more signer(s) must run \`tpod release publish\` on the same file`,
    );
  } catch (err) {
    throw failure(err);
  }
}

/** `tpod release revoke ID --reason TEXT` */
export async function releaseRevoke({ io }: CommandContext, id: string, opts: ReleaseRevokeOpts) {
  if (!/^0x[0-9a-fA-F]{64}$/.test(id))
    throw new CliError(`ID must be a release id (0x and 64 hex digits), got "${id}"`, ExitCode.usage);
  if (new TextEncoder().encode(opts.reason).length > 256)
    throw new CliError("--reason must be at most 256 bytes", ExitCode.usage);
  const clients = await signerClients(opts);
  try {
    const sent = await revokeRelease(clients.context, id as Hex, opts.reason);
    if (opts.json) return printJson(io, { id, revoked: true, txHash: sent.hash });
    io.out(`revoked release ${id}: publishers refuse providers running it from now on`);
  } catch (err) {
    throw failure(err);
  }
}

const STATUS = ["none", "published", "revoked"] as const;

function releaseJson(r: Release) {
  return {
    id: r.id,
    version: r.version,
    status: STATUS[r.status] ?? String(r.status),
    imageDigest: r.imageDigest,
    source: r.source,
    publishedAt: new Date(Number(r.publishedAt) * 1000).toISOString(),
    ...(r.status === ReleaseStatus.revoked
      ? {
          revokedAt: new Date(Number(r.revokedAt) * 1000).toISOString(),
          revokedBy: r.revokedBy,
          revokeReason: r.revokeReason,
        }
      : {}),
    measurements: r.measurements.map((m) => ({
      tee: releaseTeeName(Number(m.tee)) ?? String(m.tee),
      config: m.config,
      value: m.value,
      firmware: m.firmware,
    })),
  };
}

/** `tpod release list` */
export async function releaseList({ io }: CommandContext, opts: ReleaseFlags) {
  const network = await networkFromFlags(opts);
  try {
    const { context } = await connectNetwork(network);
    const [releases, signers] = await Promise.all([listReleases(context), releaseSigners(context)]);
    if (opts.json)
      return printJson(io, {
        releases: context.addresses.releases,
        signers: signers.signers,
        threshold: signers.threshold,
        list: releases.map(releaseJson),
      });
    io.out(
      `release registry ${context.addresses.releases}: ${signers.threshold} of ${signers.signers.length} signers publish, any one revokes`,
    );
    io.out(`  signers ${signers.signers.join(", ")}`);
    if (releases.length === 0) io.out("no releases");
    for (const r of releases.map(releaseJson)) {
      io.out(`${r.status === "revoked" ? "REVOKED  " : "published"} ${r.version}  ${r.id}`);
      io.out(`  image sha256 ${r.imageDigest.slice(2)}${r.source ? `  source ${r.source}` : ""}`);
      if (r.revokeReason !== undefined)
        io.out(`  revoked ${r.revokedAt} by ${r.revokedBy}: ${r.revokeReason || "(no reason given)"}`);
      for (const m of r.measurements) io.out(`  ${m.tee.padEnd(12)} ${m.value.slice(2, 26)}…  ${m.config}`);
    }
  } catch (err) {
    throw failure(err);
  }
}
