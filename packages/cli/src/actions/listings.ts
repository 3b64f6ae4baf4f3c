import { homedir } from "node:os";
import { join } from "node:path";
import { createIpfsNode, createKuboStore, getSecret, type IpfsNode } from "@trustedpods/ipfs";
import {
  connectNetwork,
  describeListing,
  type ListingInfo,
  listListings,
  MAX_LISTING_DOC,
  MarketError,
} from "@trustedpods/publisher";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { ListingsFlags } from "../options/listings.js";
import { printJson } from "../output.js";
import { cliError, networkFromFlags } from "./network.js";

function show(io: CommandContext["io"], l: ListingInfo, full: boolean): void {
  const name = l.metadata?.name ?? "(metadata not read)";
  io.out(`listing ${l.listingId}: ${name}${l.active ? "" : " [inactive]"}`);
  io.out(`  developer   ${l.developer}`);
  io.out(
    `  terms       royalty ${l.royaltyBps} bps of provider claims${l.fixedFee > 0n ? `, fixed fee ${l.fixedFee} (token ${l.feeToken})` : ""}; entrypoint ${l.allowEntrypointOverride ? "may be overridden" : "fixed (args may change)"}`,
  );
  io.out(`  providers   ${l.authorizedProviders.join(", ") || "none authorized"}`);
  io.out(`  image       ${l.metadata?.image.cid ?? "?"} (manifest sha256:${l.manifestDigest.slice(2)})`);
  if (l.metadata?.description) io.out(`  about       ${l.metadata.description}`);
  if (l.metadataError) io.out(`  metadata    unreadable: ${l.metadataError}`);
  if (full && l.metadata?.sampleManifest) {
    io.out("  sample manifest:");
    for (const line of l.metadata.sampleManifest.split("\n")) io.out(`    ${line}`);
  }
}

/** `tpod listings [LISTING]` */
export async function listingsAction({ io }: CommandContext, one: string | undefined, opts: ListingsFlags) {
  if (one !== undefined && !/^[1-9][0-9]{0,19}$/.test(one))
    throw new CliError(`LISTING must be a listing id, got "${one}"`, ExitCode.usage);
  const timeoutMs = Math.round(Number(opts.timeout ?? "10") * 1000);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new CliError("--timeout must be positive", ExitCode.usage);
  const network = await networkFromFlags(opts);
  const { context } = await connectNetwork(network).catch((err) => {
    throw cliError(err);
  });
  let node: IpfsNode | undefined;
  try {
    let fetchDoc: ((cid: string) => Promise<Uint8Array>) | undefined;
    if (opts.metadata) {
      const kubo = opts.kuboApi ?? process.env.TPOD_KUBO_API;
      // The network's own IPFS nodes (the devnet's, which pins every listing's metadata) unless --peer says.
      const peers = opts.peer ?? network.devnet?.ipfs?.multiaddrs ?? [];
      if (!kubo)
        node = await createIpfsNode({
          dataDir: opts.ipfsRepo ?? process.env.TPOD_IPFS_REPO ?? join(homedir(), ".tpod", "ipfs"),
          network: "devnet",
          ...(peers.length ? { peers } : {}),
        });
      const store = node ?? createKuboStore({ url: kubo ?? "" });
      fetchDoc = (cid) =>
        getSecret(store, cid, { maxSize: MAX_LISTING_DOC, signal: AbortSignal.timeout(timeoutMs) });
    }
    const listings =
      one !== undefined
        ? [await describeListing(context, BigInt(one), fetchDoc)]
        : await listListings(context, {
            ...(fetchDoc ? { fetchDoc } : {}),
            includeInactive: opts.all ?? false,
          });
    if (opts.json) printJson(io, listings);
    else if (listings.length === 0) io.out("no listings");
    else for (const l of listings) show(io, l, one !== undefined);
  } catch (err) {
    if (err instanceof MarketError) throw new CliError(`${err.message} [${err.code}]`, ExitCode.failure);
    throw cliError(err);
  } finally {
    await node?.stop().catch(() => undefined);
  }
}
