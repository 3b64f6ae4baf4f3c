// Marketplace listings from the Marketplace contract: terms and a sample manifest for each.
import { formatAmount, type ListingRow, loadListings, tokenInfo } from "@trustedpods/publisher";
import type { PageProps } from "./app.js";
import { Show, short, useLoad } from "./ui.js";

export const DRAFT_KEY = "tpod.deploy.draft";

export function sampleManifest(id: bigint): string {
  return `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: listing-${id}
spec:
  containers:
    - name: app
      image:
        listing: "${id}"
      resources:
        cpu: 250m
        memory: 128Mi
`;
}

export function MarketPage({ conn }: PageProps) {
  const [rows] = useLoad(async () => {
    const list = await loadListings(conn.context);
    return Promise.all(
      list.map(async (l) => ({
        l,
        fee:
          l.fixedFee > 0n
            ? formatAmount(l.fixedFee, await tokenInfo(conn.publicClient, l.feeToken))
            : undefined,
      })),
    );
  }, [conn]);
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
              {list.map(({ l, fee }) => (
                <Listing key={String(l.id)} l={l} fee={fee} />
              ))}
            </ul>
          )
        }
      </Show>
    </section>
  );
}

function Listing({ l, fee }: { l: ListingRow; fee: string | undefined }) {
  const use = () => {
    sessionStorage.setItem(DRAFT_KEY, sampleManifest(l.id));
    location.hash = "#/deploy";
  };
  return (
    <li class="card" data-testid="listing">
      <div class="card-head">
        <h2>Listing #{String(l.id)}</h2>
        <span class={`badge ${l.active ? "good" : "bad"}`}>{l.active ? "active" : "inactive"}</span>
      </div>
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
        <dd class="mono">{l.metadataCid || "—"}</dd>
      </dl>
      <details>
        <summary>Sample manifest</summary>
        <pre>{sampleManifest(l.id)}</pre>
      </details>
      <button type="button" onClick={use} disabled={!l.active}>
        Deploy this
      </button>
    </li>
  );
}
