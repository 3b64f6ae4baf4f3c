import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { withdraw } from "@trustedpods/chain";
import {
  type ContentStore,
  createIpfsNode,
  createKuboStore,
  IpfsError,
  type IpfsNode,
  peersHoldBlock,
} from "@trustedpods/ipfs";
import { OciError } from "@trustedpods/oci";
import { createP2PNode } from "@trustedpods/p2p";
import {
  chainReleaseCheck,
  connectNetwork,
  DEVELOPER_ARGS_WARNING,
  developerEarnings,
  formatAmount,
  getOffer,
  listListings,
  MarketError,
  PublisherError,
  parseTokenAmount,
  tokenInfo,
  verifyProvider,
} from "@trustedpods/publisher";
import {
  authorizeListingProvider,
  defaultDeveloperKeyFile,
  loadOrCreateDeveloperKey,
  loadPolicyFor,
  publishListing,
  revokeListingProvider,
  tpodHome,
} from "@trustedpods/publisher/node";
import { type Address, getAddress, isAddress } from "viem";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { DevFlags, DevPublishOpts } from "../options/dev.js";
import { printJson } from "../output.js";
import { accountFromFlags, cliError, networkFromFlags } from "./network.js";

/**
 * Runs `fn` with the developer's IPFS store, its embedded node connected to the --peer nodes (default the
 * network's IPFS nodes, e.g. the devnet's). `handOff` names a document the network's nodes should hold before
 * this node stops (the listing's metadata: the devnet's node pins it); the command waits for them and says
 * whether they do. With `serve`, the node then stays up until SIGINT/SIGTERM, so providers can fetch the
 * listing's image and envelopes: the blocks are pinned in --ipfs-repo, but only a running node serves them.
 */
async function withStore<T>(
  flags: DevFlags,
  network: { devnet?: { ipfs?: { multiaddrs?: string[] } } },
  fn: (store: ContentStore) => Promise<T>,
  opts: { io: CommandContext["io"]; serve?: boolean; handOff?: (result: T) => string | undefined },
): Promise<T> {
  const kubo = flags.kuboApi ?? process.env.TPOD_KUBO_API;
  if (opts.serve && kubo)
    throw new CliError("--serve needs the embedded node, not --kubo-api", ExitCode.usage);
  const serve = opts.serve ? { io: opts.io } : undefined;
  let node: IpfsNode | undefined;
  try {
    const peers = flags.peer ?? network.devnet?.ipfs?.multiaddrs ?? [];
    if (!kubo)
      node = await createIpfsNode({
        dataDir: flags.ipfsRepo ?? process.env.TPOD_IPFS_REPO ?? join(homedir(), ".tpod", "ipfs"),
        network: "devnet",
        ...(peers.length ? { peers } : {}),
      });
    const store: ContentStore = node ?? createKuboStore({ url: kubo ?? "" });
    const result = await fn(store);
    const doc = opts.handOff?.(result);
    if (doc && node) await handOff(opts.io, doc, peers);
    if (serve && node) {
      serve.io.err(`serving on ${node.multiaddrs().join(" ")} (Ctrl-C to stop)`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
    }
    return result;
  } catch (err) {
    throw devError(err);
  } finally {
    await node?.stop().catch(() => undefined);
  }
}

/** Waits until one of the network's nodes holds `cid` (fetched from this node), and says whether one does. */
async function handOff(io: CommandContext["io"], cid: string, peers: string[]): Promise<void> {
  if (peers.length === 0) {
    io.err(
      "warning: no IPFS node of the network is known: the listing's metadata is readable only while your node serves it (--serve)",
    );
    return;
  }
  io.err("waiting for the network's IPFS node to pin the listing's metadata...");
  if (await peersHoldBlock(peers, cid, { timeoutMs: 30_000 }))
    io.err(
      "the listing's metadata is pinned by the network's IPFS node: publishers can read it without your node",
    );
  else
    io.err(
      "warning: no IPFS node of the network holds the listing's metadata yet: publishers see the listing without its name until one does; run with --serve to keep serving it",
    );
}

function devError(err: unknown): unknown {
  if (err instanceof MarketError) return new CliError(`${err.message} [${err.code}]`, ExitCode.failure);
  if (err instanceof IpfsError || err instanceof OciError)
    return new CliError(`${err.message} [${err.code}]`, ExitCode.failure);
  return cliError(err);
}

function parseListingId(text: string): bigint {
  if (!/^[1-9][0-9]{0,19}$/.test(text))
    throw new CliError(`LISTING must be a listing id (1, 2, ...), got "${text}"`, ExitCode.usage);
  return BigInt(text);
}

function parseProvider(text: string): Address {
  if (!isAddress(text))
    throw new CliError(`PROVIDER must be an address (0x and 40 hex digits), got "${text}"`, ExitCode.usage);
  return getAddress(text);
}

async function developerContext(flags: DevFlags) {
  const network = await networkFromFlags(flags);
  const acct = await accountFromFlags(network, flags);
  try {
    const clients = await connectNetwork(network, { account: acct.account });
    return { network, acct, clients };
  } catch (err) {
    throw cliError(err);
  }
}

function tokenOf(flags: { token?: string }, fallback: Address | undefined): Address {
  const t = flags.token ?? fallback;
  if (!t) throw new CliError("no token: pass --token ADDRESS (the network names none)", ExitCode.usage);
  if (!isAddress(t)) throw new CliError(`--token must be an address, got "${t}"`, ExitCode.usage);
  return getAddress(t);
}

/** `tpod dev publish IMAGE` */
export async function devPublish({ io }: CommandContext, image: string, opts: DevPublishOpts) {
  const royaltyBps = Number(opts.royalty);
  if (!Number.isInteger(royaltyBps) || royaltyBps < 0 || royaltyBps > 10000)
    throw new CliError(
      `--royalty must be an integer from 0 to 10000 bps, got ${opts.royalty}`,
      ExitCode.usage,
    );
  const sampleManifest = opts.manifest ? await readFile(opts.manifest, "utf8") : undefined;
  if (sampleManifest && sampleManifest.length > 64 * 1024)
    throw new CliError("--manifest is larger than 64 KiB", ExitCode.usage);
  const { network, clients } = await developerContext(opts);
  let feeToken: Address | undefined;
  let fixedFee: bigint | undefined;
  if (opts.fee !== undefined) {
    feeToken = tokenOf(opts, network.contracts.token);
    const info = await tokenInfo(clients.publicClient, feeToken);
    try {
      fixedFee = parseTokenAmount(opts.fee, info.decimals);
    } catch (err) {
      throw new CliError(`--fee: ${(err as Error).message}`, ExitCode.usage);
    }
  }
  const key = await loadOrCreateDeveloperKey(opts.imageKey ?? defaultDeveloperKeyFile(tpodHome()));
  if (key.created) io.err(`created your image key (keep it: you need it to authorize providers)`);
  io.err(`warning: ${DEVELOPER_ARGS_WARNING}`);
  if (opts.allowEntrypointOverride)
    io.err(
      "warning: --allow-entrypoint-override: publishers can run any program inside your decrypted image",
    );
  const report = (published: Awaited<ReturnType<typeof publishListing>>) => {
    if (opts.json) printJson(io, published);
    else {
      io.out(`listing ${published.listingId}`);
      io.err(
        `image ${published.imageCid} (manifest ${published.manifestDigest}), metadata ${published.metadataCid}`,
      );
      io.err(`next: tpod dev authorize ${published.listingId} PROVIDER`);
    }
    return published;
  };
  await withStore(
    opts,
    network,
    (store) =>
      publishListing({
        chain: clients.context,
        store,
        image,
        key,
        name: opts.name ?? image,
        ...(opts.description ? { description: opts.description } : {}),
        ...(sampleManifest !== undefined ? { sampleManifest } : {}),
        royaltyBps,
        ...(feeToken ? { feeToken } : {}),
        ...(fixedFee !== undefined ? { fixedFee } : {}),
        allowEntrypointOverride: opts.allowEntrypointOverride ?? false,
        onProgress: (line) => io.err(line),
      }).then(report),
    { io, ...(opts.serve ? { serve: true } : {}), handOff: (published) => published.metadataCid },
  );
}

/** `tpod dev authorize LISTING PROVIDER` */
export async function devAuthorize(
  { io }: CommandContext,
  listingText: string,
  providerText: string,
  opts: DevFlags & { policy?: string; serve?: boolean },
) {
  const listingId = parseListingId(listingText);
  const provider = parseProvider(providerText);
  const { network, clients } = await developerContext(opts);
  let policy: Awaited<ReturnType<typeof loadPolicyFor>>;
  try {
    policy = await loadPolicyFor(network, opts.policy);
  } catch (err) {
    throw new CliError(`cannot load the policy: ${(err as Error).message}`);
  }
  const offer = await getOffer(clients.context, provider).catch((err) => {
    throw cliError(err);
  });
  io.err(`attesting ${provider} (policy: ${policy.source})...`);
  const node = await createP2PNode();
  let encryptionKey: Uint8Array;
  try {
    const releases = chainReleaseCheck(clients.context, network.name, offer.release);
    const att = await verifyProvider({
      node,
      multiaddrs: offer.multiaddrs,
      policy: policy.policy,
      policySource: policy.source,
      ...(releases ? { releases } : {}),
    });
    encryptionKey = att.encryptionPublicKey;
  } catch (err) {
    if (err instanceof PublisherError) throw new CliError(`refused: ${err.message}`);
    throw err;
  } finally {
    await node.stop();
  }
  const key = await loadOrCreateDeveloperKey(opts.imageKey ?? defaultDeveloperKeyFile(tpodHome()));
  await withStore(
    opts,
    network,
    async (store) => {
      const out = await authorizeListingProvider({
        chain: clients.context,
        store,
        listingId,
        provider,
        providerEncryptionKey: encryptionKey,
        key: key.privateKey,
        ...(opts.peer ? { peers: opts.peer } : {}),
      });
      if (opts.json) printJson(io, { listingId, provider, ...out });
      else io.out(`authorized ${provider} for listing ${listingId} (key envelope ${out.envelopeCid})`);
      return out;
    },
    { io, ...(opts.serve ? { serve: true } : {}) },
  );
}

/** `tpod dev revoke LISTING PROVIDER` */
export async function devRevoke(
  { io }: CommandContext,
  listingText: string,
  providerText: string,
  opts: DevFlags,
) {
  const listingId = parseListingId(listingText);
  const provider = parseProvider(providerText);
  const { clients } = await developerContext(opts);
  await revokeListingProvider(clients.context, listingId, provider).catch((err) => {
    throw devError(err);
  });
  io.out(`revoked ${provider} for listing ${listingId}`);
}

/** `tpod dev listings` */
export async function devListings({ io }: CommandContext, opts: DevFlags) {
  const { acct, clients } = await developerContext(opts);
  const listings = await listListings(clients.context, { developer: acct.address, includeInactive: true });
  if (opts.json) printJson(io, listings);
  else if (listings.length === 0) io.out("no listings");
  else
    for (const l of listings) {
      const fee =
        l.fixedFee === 0n
          ? "none"
          : formatAmount(l.fixedFee, await tokenInfo(clients.publicClient, l.feeToken));
      io.out(
        `${l.listingId}\t${l.active ? "active" : "inactive"}\troyalty ${l.royaltyBps} bps\tfee ${fee}\tentrypoint ${l.allowEntrypointOverride ? "overridable" : "fixed"}\tproviders ${l.authorizedProviders.join(",") || "none"}`,
      );
    }
}

/** `tpod dev earnings` */
export async function devEarnings({ io }: CommandContext, opts: DevFlags & { token?: string }) {
  const { network, acct, clients } = await developerContext(opts);
  const token = tokenOf(opts, network.contracts.token);
  const e = await developerEarnings(clients.context, acct.address, token);
  if (opts.json) return printJson(io, e);
  const t = await tokenInfo(clients.publicClient, token);
  io.out(
    `royalties ${formatAmount(e.royalties, t)}, fees ${formatAmount(e.fees, t)}, withdrawn ${formatAmount(e.withdrawn, t)}, withdrawable ${formatAmount(e.balance, t)} (token ${token})`,
  );
}

/** `tpod dev withdraw` */
export async function devWithdraw({ io }: CommandContext, opts: DevFlags & { token?: string }) {
  const { network, clients } = await developerContext(opts);
  const token = tokenOf(opts, network.contracts.token);
  const sent = await withdraw(clients.context, token).catch((err) => {
    throw devError(err);
  });
  if (opts.json) return printJson(io, { token, amount: sent.result, txHash: sent.hash });
  io.out(
    `withdrew ${formatAmount(sent.result, await tokenInfo(clients.publicClient, token))} (token ${token})`,
  );
}
