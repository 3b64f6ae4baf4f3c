// Marketplace listings from the Marketplace contract: terms and a sample manifest for each.
import {
  fetchRawBlockOverHttp,
  formatAmount,
  type ListingMetadataDoc,
  type ListingRow,
  loadListings,
  manifestForListing,
  parseListingMetadataDoc,
  tokenInfo,
  type WebAppConfig,
} from "@trustedpods/publisher";
import { DRAFT_KEY, type PageProps } from "./page.js";
import { Show, short, useLoad } from "./ui.js";

/** A listing's name and description from the network's IPFS gateways (each block checked against its CID). */
async function metadataOf(
  config: WebAppConfig,
  l: ListingRow,
): Promise<{ metadata?: ListingMetadataDoc; metadataError?: string }> {
  if (!l.metadataCid) return { metadataError: "the listing names no metadata" };
  if (!config.ipfsGateways?.length) return { metadataError: "this network names no IPFS gateway" };
  try {
    const bytes = await fetchRawBlockOverHttp(config.ipfsGateways, l.metadataCid, {
      signal: AbortSignal.timeout(10_000),
    });
    return { metadata: parseListingMetadataDoc(bytes) };
  } catch (err) {
    return { metadataError: (err as Error).message };
  }
}

export function MarketPage({ config, conn }: PageProps) {
  const [rows] = useLoad(async () => {
    const list = await loadListings(conn.context);
    return Promise.all(
      list.map(async (l) => ({
        l,
        fee:
          l.fixedFee > 0n
            ? formatAmount(l.fixedFee, await tokenInfo(conn.publicClient, l.feeToken))
            : undefined,
        ...(await metadataOf(config, l)),
      })),
    );
  }, [conn, config]);
  return (
    <section>
      <p class="lead">
        Software sold by developers. A listed image is encrypted: only providers the developer authorized can
        run it, and every payment for a pod using it pays the developer its royalty.
      </p>
      <Show loaded={rows} what="listings">
        {(list) =>
          list.length === 0 ? (
            <p class="empty">No listing on this chain yet. Developers create them with `tpod market list`.</p>
          ) : (
            <ul class="cards">
              {list.map((row) => (
                <Listing key={String(row.l.id)} {...row} />
              ))}
            </ul>
          )
        }
      </Show>
    </section>
  );
}

function Listing({
  l,
  fee,
  metadata,
  metadataError,
}: {
  l: ListingRow;
  fee: string | undefined;
  metadata?: ListingMetadataDoc;
  metadataError?: string;
}) {
  // The developer's sample pointed at this listing's id (which the developer did not know when writing it).
  const sample = manifestForListing(l.id, metadata?.sampleManifest);
  const use = () => {
    sessionStorage.setItem(DRAFT_KEY, sample.text);
    location.hash = "#/deploy";
  };
  return (
    <li class="card" data-testid="listing">
      <div class="card-head">
        <h2>
          {metadata ? metadata.name : `Listing #${l.id}`}
          {metadata ? <span class="muted"> #{String(l.id)}</span> : null}
        </h2>
        <span class={`badge ${l.active ? "good" : "bad"}`}>{l.active ? "active" : "inactive"}</span>
      </div>
      {metadata?.description ? <p class="about">{metadata.description}</p> : null}
      <dl>
        <dt>Developer</dt>
        <dd class="mono" title={l.developer}>
          {short(l.developer)}
        </dd>
        <dt>Royalty</dt>
        <dd>{(l.royaltyBps / 100).toFixed(2)}% of every payment</dd>
        <dt>Fixed fee</dt>
        <dd>{fee ?? "none"}</dd>
        <dt>Entrypoint</dt>
        <dd>{l.allowEntrypointOverride ? "may be overridden" : "fixed (cannot be overridden)"}</dd>
        <dt>Image digest</dt>
        <dd class="mono" title={l.manifestDigest}>
          {short(l.manifestDigest, 8)}
        </dd>
        <dt>Metadata</dt>
        <dd class="mono" title={metadataError ?? ""}>
          {l.metadataCid || "—"}
          {metadataError ? <span class="muted"> (not readable: {metadataError})</span> : null}
        </dd>
      </dl>
      <details>
        <summary>
          Sample manifest
          {sample.source === "developer" ? " (the developer's)" : " (generic: the developer gave none)"}
        </summary>
        <pre data-testid="listing-sample">{sample.text}</pre>
      </details>
      <button type="button" onClick={use} disabled={!l.active}>
        Deploy this
      </button>
    </li>
  );
}
