// My pods: the channels this account opened (from chain events), with the money left, the time it buys at the
// current rate, top up and close; status, endpoints, logs and delete straight from the provider over libp2p.
import {
  closePodChannel,
  deletePodOnProvider,
  describeClose,
  explainError,
  formatDuration,
  loadPodChannels,
  type PodChannel,
  type PodStatus,
  podConnectionFor,
  podLogs,
  podStatus,
  providerCalls,
  topUpPod,
  webPodSigner,
} from "@trustedpods/publisher";
import { useEffect, useRef, useState } from "preact/hooks";
import type { PageProps } from "./page.js";
import { ActionButton, Show, short, useLoad } from "./ui.js";

export function PodsPage({ conn, getNode }: PageProps) {
  const account = conn.account;
  const [pods, reload] = useLoad(
    async () => (account ? loadPodChannels(conn.context, account) : []),
    [conn, account],
  );
  if (!account)
    return <p class="empty">Connect a wallet (or use the dev key on the devnet) to see your pods.</p>;
  return (
    <section>
      <p class="lead">
        Pods paid from {short(account)}. Money and time come from the payment channel on chain; status,
        endpoints and logs come straight from the provider over libp2p, in requests signed by your key.
      </p>
      <button type="button" onClick={reload}>
        Refresh
      </button>
      <Show loaded={pods} what="your pods">
        {(list) =>
          list.length === 0 ? (
            <p class="empty">
              No pod yet. <a href="#/deploy">Deploy one</a>.
            </p>
          ) : (
            <ul class="cards">
              {list.map((p) => (
                <PodItem key={p.channelId} pod={p} conn={conn} getNode={getNode} reload={reload} />
              ))}
            </ul>
          )
        }
      </Show>
    </section>
  );
}

function PodItem({
  pod,
  conn,
  getNode,
  reload,
}: {
  pod: PodChannel;
  conn: PageProps["conn"];
  getNode: PageProps["getNode"];
  reload: () => void;
}) {
  const [amount, setAmount] = useState("1");
  const canSign = Boolean(conn.walletClient);
  const provider = async () =>
    podConnectionFor(conn.context, await getNode(), pod, conn.chainId, webPodSigner(conn.walletClient));
  return (
    <li class="card" data-testid="pod" data-pod={pod.podId}>
      <div class="card-head">
        <h2 class="mono">{short(pod.podId, 8)}</h2>
        <span class={`badge ${pod.state === "open" ? "good" : "warn"}`} data-testid="pod-state">
          {pod.state}
        </span>
      </div>
      <dl>
        <dt>Provider</dt>
        <dd class="mono">{short(pod.provider)}</dd>
        {pod.settlement ? (
          // Settled: the contract deleted the channel; its events say what the provider got and what came back.
          <>
            <dt>Deposit</dt>
            <dd data-testid="deposit">{pod.formatted.deposit}</dd>
            <dt>Paid to the provider</dt>
            <dd data-testid="paid">{pod.formatted.accrued}</dd>
            <dt>Refunded</dt>
            <dd data-testid="refunded">{pod.formatted.refunded}</dd>
          </>
        ) : (
          <>
            <dt>Rate</dt>
            <dd>{pod.formatted.perHour} per hour</dd>
            <dt>Deposit</dt>
            <dd data-testid="deposit">{pod.formatted.deposit}</dd>
            <dt>Used</dt>
            <dd>{pod.formatted.accrued}</dd>
            <dt>Remaining</dt>
            <dd data-testid="remaining">
              {pod.formatted.remaining}
              {pod.secondsLeft !== undefined && pod.state === "open"
                ? ` (about ${formatDuration(pod.secondsLeft)})`
                : ""}
            </dd>
          </>
        )}
        {pod.channel && pod.channel.closeAt !== 0n ? (
          <>
            <dt>Closes at</dt>
            <dd>{new Date(Number(pod.channel.closeAt) * 1000).toLocaleString()}</dd>
          </>
        ) : null}
      </dl>
      {pod.state !== "closed" && canSign ? <PodLive podId={pod.podId} provider={provider} /> : null}
      {pod.state === "closing" ? (
        <div class="row">
          <CloseStep pod={pod} conn={conn} reload={reload} disabled={!canSign} />
        </div>
      ) : null}
      {pod.state === "open" ? (
        <div class="row">
          <label class="inline">
            Top up by{" "}
            <input
              data-testid="topup-amount"
              inputMode="decimal"
              size={8}
              value={amount}
              onInput={(e) => setAmount((e.target as HTMLInputElement).value)}
            />{" "}
            {pod.token.symbol}
          </label>
          <ActionButton
            label="Top up"
            busyLabel="Approving and sending the top-up…"
            testid="topup"
            disabled={!canSign}
            run={async () => {
              await topUpPod(conn.context, pod, amount);
              reload();
              return "Topped up.";
            }}
          />
          <CloseStep pod={pod} conn={conn} reload={reload} disabled={!canSign} />
          <ActionButton
            label="Delete"
            busyLabel="Asking the provider to remove the pod…"
            testid="delete"
            disabled={!canSign}
            run={async () => {
              await deletePodOnProvider(await provider(), pod.podId);
              reload();
              return "Deleted on the provider. Close the channel to get the rest of the deposit back.";
            }}
          />
        </div>
      ) : null}
    </li>
  );
}

/**
 * The next step of closing the pod's channel: Close on an open channel (starts the notice period), Refund on a
 * closing one (settles it once the notice passed; before that it says how long is left).
 */
function CloseStep({
  pod,
  conn,
  reload,
  disabled,
}: {
  pod: PodChannel;
  conn: PageProps["conn"];
  reload: () => void;
  disabled: boolean;
}) {
  const open = pod.state === "open";
  return (
    <ActionButton
      label={open ? "Close" : "Refund"}
      busyLabel={open ? "Requesting close on chain…" : "Settling the channel and refunding the rest…"}
      testid={open ? "close" : "refund"}
      disabled={disabled}
      run={async () => {
        const r = await closePodChannel(conn.context, pod);
        // Still in the notice period: nothing changed on chain, and the message must stay on screen.
        if (r.state !== "waiting") reload();
        return describeClose(r, pod.token);
      }}
    />
  );
}

type Provider = () => ReturnType<typeof podConnectionFor>;

/** Status and endpoints from the provider (loaded on open), and a log pane that follows while shown. */
function PodLive({ podId, provider }: { podId: PodChannel["podId"]; provider: Provider }) {
  const [status, setStatus] = useState<PodStatus | { error: string } | "loading">("loading");
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setStatus("loading");
    // At most CALLS_PER_PROVIDER at once per provider: My pods opens every pod's status together, and a
    // provider refuses more than 8 concurrent calls from one peer.
    provider()
      .then((c) => providerCalls.run(c.provider, () => podStatus(c, podId)))
      .then(
        (s) => live && setStatus(s),
        (err) => live && setStatus({ error: explainError(err) }),
      );
    return () => {
      live = false;
    };
  }, [podId, n]);
  return (
    <div class="live">
      {status === "loading" ? (
        <p class="progress">Asking the provider for the pod's status…</p>
      ) : "error" in status ? (
        <p class="error" role="alert">
          {status.error}{" "}
          <button type="button" onClick={() => setN((x) => x + 1)}>
            Retry
          </button>
        </p>
      ) : (
        <dl data-testid="pod-status">
          <dt>Status</dt>
          <dd data-testid="phase">
            {status.phase}
            {status.message ? ` (${status.message})` : ""}
          </dd>
          <dt>Endpoints</dt>
          <dd data-testid="endpoints">
            {status.endpoints.http.map((u) => (
              <div key={u}>
                <a href={u} target="_blank" rel="noreferrer">
                  {u}
                </a>
              </div>
            ))}
            {status.endpoints.tcp.map((t) => (
              <div key={`tcp ${t.address}`} class="mono">
                tcp {t.container}:{t.port} → {t.address}
              </div>
            ))}
            {status.endpoints.udp.map((u) => (
              <div key={`udp ${u.address}`} class="mono">
                udp {u.container}:{u.port} → {u.address}
              </div>
            ))}
            {status.endpoints.http.length + status.endpoints.tcp.length + status.endpoints.udp.length === 0
              ? "none"
              : null}
          </dd>
        </dl>
      )}
      <Logs podId={podId} provider={provider} />
    </div>
  );
}

const MAX_LOG_LINES = 500;

function Logs({ podId, provider }: { podId: PodChannel["podId"]; provider: Provider }) {
  const [open, setOpen] = useState(false);
  const [lines, setLines] = useState<string[]>([]);
  const [error, setError] = useState<string>();
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    if (!open) return;
    const abort = new AbortController();
    setLines([]);
    setError(undefined);
    (async () => {
      try {
        const c = await provider();
        for await (const l of podLogs(c, podId, { follow: true, tail: 100, signal: abort.signal })) {
          setLines((prev) => [...prev.slice(-(MAX_LOG_LINES - 1)), `${l.container}: ${l.line}`]);
        }
      } catch (err) {
        if (!abort.signal.aborted) setError(explainError(err));
      }
    })();
    return () => abort.abort();
  }, [open, podId]);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [lines]);
  return (
    <div class="logs">
      <button type="button" data-testid="logs-toggle" onClick={() => setOpen((o) => !o)}>
        {open ? "Stop logs" : "Show logs"}
      </button>
      {open ? (
        <pre ref={pre} data-testid="logs" class="log-pane">
          {lines.length ? lines.join("\n") : "Waiting for log lines…"}
        </pre>
      ) : null}
      {error ? (
        <p class="error" role="alert">
          Logs stopped: {error}
        </p>
      ) : null}
    </div>
  );
}
