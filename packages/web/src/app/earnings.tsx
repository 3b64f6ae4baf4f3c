// Earnings: developer royalties and provider claims both land in the account's Payments balance, withdrawn per
// token. The page says which role(s) the account has (listings it created, its Registry entry).
import { loadEarnings, loadListings, loadProviderCards, withdrawEarnings } from "@trustedpods/publisher";
import type { Address } from "viem";
import type { PageProps } from "./page.js";
import { ActionButton, Show, useLoad } from "./ui.js";

export function EarningsPage({ config, conn }: PageProps) {
  const account = conn.account;
  const [data, reload] = useLoad(async () => {
    if (!account) return undefined;
    const [cards, listings] = await Promise.all([
      loadProviderCards(conn.context),
      loadListings(conn.context),
    ]);
    const me = account.toLowerCase();
    const asProvider = cards.find((c) => c.offer.address.toLowerCase() === me);
    const myListings = listings.filter((l) => l.developer.toLowerCase() === me);
    const tokens: Address[] = [
      ...(config.contracts.token ? [config.contracts.token] : []),
      ...cards.map((c) => c.offer.pricing.token),
      ...listings.map((l) => l.feeToken).filter((t) => !/^0x0{40}$/i.test(t)),
    ];
    const earnings = await loadEarnings(conn.context, account, tokens);
    return { asProvider, myListings, earnings };
  }, [conn, account]);
  if (!account)
    return <p class="empty">Connect a wallet (or use the dev key on the devnet) to see earnings.</p>;
  return (
    <section>
      <p class="lead">
        Developer royalties and provider payments are credited to your balance in the Payments contract;
        withdraw them to your account per token.
      </p>
      <Show loaded={data} what="earnings">
        {(d) =>
          d ? (
            <>
              <div class="cards two">
                <div class="card" data-testid="developer-earnings">
                  <h2>As a developer</h2>
                  <p>
                    {d.myListings.length
                      ? `You created ${d.myListings.length} listing(s): ${d.myListings.map((l) => `#${l.id}`).join(", ")}.`
                      : "You have no marketplace listing."}
                  </p>
                </div>
                <div class="card" data-testid="provider-earnings">
                  <h2>As a provider</h2>
                  <p>
                    {d.asProvider
                      ? `Registered as "${d.asProvider.offer.name}"; your claims are credited here.`
                      : "This account is not a registered provider."}
                  </p>
                </div>
              </div>
              <div class="table-wrap">
                <table class="stack">
                  <thead>
                    <tr>
                      <th>Token</th>
                      <th>Balance</th>
                      <th />
                    </tr>
                  </thead>
                  <tbody>
                    {d.earnings.map((e) => (
                      <tr key={e.token.address} data-testid="earning">
                        <td data-label="Token">{e.token.symbol}</td>
                        <td data-label="Balance" data-testid="balance">
                          {e.formatted}
                        </td>
                        <td>
                          <ActionButton
                            label="Withdraw"
                            busyLabel="Withdrawing…"
                            disabled={e.amount === 0n || !conn.walletClient}
                            run={async () => {
                              await withdrawEarnings(conn.context, e.token.address);
                              reload();
                              return "Withdrawn to your account.";
                            }}
                          />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          ) : null
        }
      </Show>
    </section>
  );
}
