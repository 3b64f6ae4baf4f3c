// Providers from the Registry: regions, TEE types, prices, and attestation verified right here in the browser
// (fresh nonce over libp2p WebSockets, evidence checked by @trustedpods/attestation against the app's policy).

import type { ChainContext } from "@trustedpods/chain";
import {
  type AttestationStatus,
  attestOffer,
  loadProviderCards,
  type ProviderCard,
  webPolicy,
} from "@trustedpods/publisher";
import { useEffect, useState } from "preact/hooks";
import type { PageProps } from "./page.js";
import { Show, short, useLoad } from "./ui.js";

export function ProvidersPage({ config, conn, getNode }: PageProps) {
  const ctx = conn.context;
  const [cards, reload] = useLoad(() => loadProviderCards(conn.context), [conn]);
  return (
    <section>
      <p class="lead">
        Every provider registered on chain. Each one is asked to prove, from this browser, that it runs inside
        a Trusted Execution Environment, and that what it runs is a published, non-revoked provider release.{" "}
        {config.devnet
          ? "On the devnet, providers without a TEE (insecure-dev) are accepted and labeled."
          : ""}
      </p>
      <button type="button" onClick={reload}>
        Refresh
      </button>
      <Show loaded={cards} what="providers">
        {(list) =>
          list.length === 0 ? (
            <p class="empty">No provider is registered on this chain yet.</p>
          ) : (
            <ul class="cards">
              {list.map((c) => (
                <ProviderItem key={c.offer.address} card={c} config={config} getNode={getNode} ctx={ctx} />
              ))}
            </ul>
          )
        }
      </Show>
    </section>
  );
}

function ProviderItem({
  card,
  config,
  getNode,
  ctx,
}: { card: ProviderCard; ctx: ChainContext } & Omit<PageProps, "conn">) {
  const { offer } = card;
  const [att, setAtt] = useState<AttestationStatus | "checking">("checking");
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setAtt("checking");
    getNode()
      .then((node) => attestOffer(node, offer, webPolicy(config), ctx))
      .then(
        (r) => live && setAtt(r),
        (err) => live && setAtt({ state: "unreachable", message: String(err?.message ?? err) }),
      );
    return () => {
      live = false;
    };
  }, [offer, config, getNode, ctx, n]);
  return (
    <li class="card" data-testid="provider" data-address={offer.address}>
      <div class="card-head">
        <h2>{offer.name || "(unnamed)"}</h2>
        <AttestationBadge att={att} />
      </div>
      <dl>
        <dt>Address</dt>
        <dd class="mono" title={offer.address}>
          {short(offer.address)}
        </dd>
        <dt>Regions</dt>
        <dd>{offer.regions.join(", ") || "—"}</dd>
        <dt>TEE types</dt>
        <dd>{offer.teeTypes.join(", ") || "—"}</dd>
        <dt>Prices</dt>
        <dd data-testid="prices">
          {card.priceLines.length ? card.priceLines.map((l) => <div key={l}>{l}</div>) : "no prices"}
        </dd>
        <dt>Notice</dt>
        <dd>at least {offer.minNoticeSeconds} s before closing</dd>
        <dt>Release</dt>
        <dd data-testid="release">
          {att !== "checking" && att.state === "verified" && att.release
            ? `${att.release.version} (image sha256 ${short(att.release.imageDigest)})`
            : /^0x0+$/.test(offer.release)
              ? "none declared"
              : `declares ${short(offer.release)}`}
        </dd>
      </dl>
      {att !== "checking" && att.state === "verified" ? (
        <details class="verified" data-testid="verified-lines">
          <summary>What this browser verified</summary>
          <ul>
            {att.lines.map((l) => (
              <li key={l}>{l}</li>
            ))}
          </ul>
        </details>
      ) : null}
      {att !== "checking" && att.state !== "verified" ? (
        <p class="error" role="alert">
          {att.message}{" "}
          <button type="button" onClick={() => setN((x) => x + 1)}>
            Check again
          </button>
        </p>
      ) : null}
    </li>
  );
}

function AttestationBadge({ att }: { att: AttestationStatus | "checking" }) {
  if (att === "checking")
    return (
      <span class="badge checking" data-testid="attestation" data-state="checking">
        verifying attestation…
      </span>
    );
  if (att.state === "verified")
    return (
      <span
        class={`badge ${att.insecure ? "warn" : "good"}`}
        data-testid="attestation"
        data-state="verified"
        title={`peer ${att.peerId}`}
      >
        {att.insecure ? "verified: insecure-dev (no TEE, devnet only)" : `verified: ${att.tee}`}
        {att.release ? `, release ${att.release.version}` : ""}
      </span>
    );
  return (
    <span class="badge bad" data-testid="attestation" data-state={att.state}>
      {att.state === "refused" ? "attestation refused" : "unreachable"}
    </span>
  );
}
