// The shell: header with navigation and the signer, hash routing, the chain connection and the browser's libp2p
// node (created on first use). Pages get what they need as props.
import { createP2PNode, type P2PNode } from "@trustedpods/p2p/browser";
import {
  connectWeb,
  explainError,
  type WebAppConfig,
  type WebConnection,
  type WebSigner,
} from "@trustedpods/publisher";
import { useEffect, useMemo, useState } from "preact/hooks";
import type { EIP1193Provider } from "viem";
import { DeployPage } from "./deploy.js";
import { EarningsPage } from "./earnings.js";
import { MarketPage } from "./market.js";
import { PodsPage } from "./pods.js";
import { ProvidersPage } from "./providers.js";

const ROUTES = [
  { path: "providers", label: "Providers", Page: ProvidersPage },
  { path: "market", label: "Marketplace", Page: MarketPage },
  { path: "deploy", label: "Deploy", Page: DeployPage },
  { path: "pods", label: "My pods", Page: PodsPage },
  { path: "earnings", label: "Earnings", Page: EarningsPage },
] as const;

function currentRoute(): string {
  const r = location.hash.replace(/^#\/?/, "").split("?")[0] ?? "";
  return ROUTES.some((x) => x.path === r) ? r : "providers";
}

function walletProvider(): EIP1193Provider | undefined {
  return (globalThis as { ethereum?: EIP1193Provider }).ethereum;
}

export function App({ config }: { config: WebAppConfig }) {
  const [route, setRoute] = useState(currentRoute());
  const [signer, setSigner] = useState<WebSigner>(
    config.devKey ? { kind: "dev-key", key: config.devKey } : { kind: "none" },
  );
  const [conn, setConn] = useState<WebConnection>();
  const [error, setError] = useState<string>();
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    let live = true;
    setConn(undefined);
    setError(undefined);
    connectWeb(config, signer).then(
      (c) => live && setConn(c),
      (err) => live && setError(explainError(err)),
    );
    return () => {
      live = false;
    };
  }, [config, signer, attempt]);

  // One libp2p node per page load, made on first use. Browsers refuse to dial loopback and private addresses
  // unless the gater allows it: only the devnet's providers live there.
  const getNode = useMemo(() => {
    let node: Promise<P2PNode> | undefined;
    return () => {
      node ??= createP2PNode({
        transports: ["ws"],
        ...(config.devnet ? { connectionGater: { denyDialMultiaddr: () => false } } : {}),
      });
      return node;
    };
  }, [config]);

  const wallet = walletProvider();
  const page = ROUTES.find((r) => r.path === route)!;
  return (
    <>
      <header class="top">
        <div class="brand">
          <a href="#/providers">Trusted Pods</a>
          <span class="network" title={config.rpcUrl}>
            {config.name}
          </span>
        </div>
        <nav aria-label="Main">
          {ROUTES.map((r) => (
            <a key={r.path} href={`#/${r.path}`} aria-current={r.path === route ? "page" : undefined}>
              {r.label}
            </a>
          ))}
        </nav>
        <div class="signer">
          {conn?.account ? (
            <span class="account" data-testid="account" title={conn.account}>
              {conn.signer === "dev-key" ? "dev key " : "wallet "}
              {conn.account.slice(0, 6)}…{conn.account.slice(-4)}
            </span>
          ) : (
            <span class="account muted">read-only</span>
          )}
          {wallet && signer.kind !== "wallet" ? (
            <button type="button" onClick={() => setSigner({ kind: "wallet", provider: wallet })}>
              Connect wallet
            </button>
          ) : null}
          {config.devKey && signer.kind !== "dev-key" ? (
            <button type="button" onClick={() => setSigner({ kind: "dev-key", key: config.devKey! })}>
              Use dev key
            </button>
          ) : null}
        </div>
      </header>
      <main class="page">
        <h1>{page.label}</h1>
        {error ? (
          <div class="error" role="alert">
            <p>{error}</p>
            <button type="button" onClick={() => setAttempt((a) => a + 1)}>
              Retry
            </button>
          </div>
        ) : !conn ? (
          <p class="progress">Connecting to the chain at {config.rpcUrl}…</p>
        ) : (
          <page.Page config={config} conn={conn} getNode={getNode} />
        )}
      </main>
    </>
  );
}
