// My pods: the channels this account opened (from chain events), with the money left, the time it buys at the
// current rate, top up and close.
import {
  closePodChannel,
  formatDuration,
  loadPodChannels,
  type PodChannel,
  topUpPod,
} from "@trustedpods/publisher";
import { useState } from "preact/hooks";
import type { PageProps } from "./app.js";
import { ActionButton, Show, short, useLoad } from "./ui.js";

export function PodsPage({ conn }: PageProps) {
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
        Pods paid from {short(account)}. Money and time come from the payment channel on chain. Status,
        endpoints and logs come from the provider over libp2p with the SDK's deploy flow (not in this build
        yet: use <code>tpod status</code> and <code>tpod logs</code>).
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
                <PodItem key={p.channel.id} pod={p} conn={conn} reload={reload} />
              ))}
            </ul>
          )
        }
      </Show>
    </section>
  );
}

function PodItem({ pod, conn, reload }: { pod: PodChannel; conn: PageProps["conn"]; reload: () => void }) {
  const [amount, setAmount] = useState("1");
  const canSign = Boolean(conn.walletClient);
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
        {pod.channel.closeAt !== 0n ? (
          <>
            <dt>Closes at</dt>
            <dd>{new Date(Number(pod.channel.closeAt) * 1000).toLocaleString()}</dd>
          </>
        ) : null}
      </dl>
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
          <ActionButton
            label="Close"
            busyLabel="Requesting close on chain…"
            testid="close"
            disabled={!canSign}
            run={async () => {
              await closePodChannel(conn.context, pod);
              reload();
              return "Close requested: the notice period runs, then the rest is refunded.";
            }}
          />
        </div>
      ) : null}
    </li>
  );
}
