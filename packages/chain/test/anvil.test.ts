// The dev chain's clock: with blockTimeSeconds, an idle chain still mines blocks (its head timestamp advances
// with no transaction), and a transaction is still mined at once (automine stays on beside interval mining).
import { createPublicClient, createWalletClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterEach, describe, expect, it } from "vitest";
import { type Anvil, AnvilError, devAccounts, startAnvil } from "../src/node.js";

let anvil: Anvil | undefined;
afterEach(async () => {
  await anvil?.stop();
  anvil = undefined;
});

function clients(a: Anvil) {
  const chain = { ...foundry, id: a.chainId, rpcUrls: { default: { http: [a.rpcUrl] } } };
  const transport = http(a.rpcUrl, { retryCount: 0 });
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 100 });
  const wallet = createWalletClient({
    chain,
    transport,
    account: privateKeyToAccount(devAccounts(1)[0]!.privateKey),
  });
  return { publicClient, wallet };
}

/** Polls the head until `done` holds (up to 15 s): no assertion on how long it took. */
async function headUntil(
  read: () => Promise<{ number: bigint; timestamp: bigint }>,
  done: (b: { number: bigint; timestamp: bigint }) => boolean,
): Promise<{ number: bigint; timestamp: bigint }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const b = await read();
    if (done(b) || Date.now() > deadline) return b;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("startAnvil blockTimeSeconds", () => {
  it("advances the head's timestamp with no transaction", async () => {
    anvil = await startAnvil({ blockTimeSeconds: 1 });
    const { publicClient } = clients(anvil);
    const first = await publicClient.getBlock();
    const later = await headUntil(
      () => publicClient.getBlock(),
      (b) => b.timestamp > first.timestamp,
    );
    expect(later.timestamp).toBeGreaterThan(first.timestamp);
    expect(later.number).toBeGreaterThan(first.number);
  });

  it("still mines a transaction at once, not at the next interval block", async () => {
    // A long interval, so "at once" and "at the next block" cannot be confused. (Reading the receipt right
    // after the send raced anvil's own mining task: once in a CI run it was not there yet.)
    anvil = await startAnvil({ blockTimeSeconds: 60 });
    const { publicClient, wallet } = clients(anvil);
    const hash = await wallet.sendTransaction({ to: devAccounts(2)[1]!.address, value: 1n });
    // Interval mining alone (--block-time) would leave it pending for up to a minute.
    const receipt = await publicClient.waitForTransactionReceipt({
      hash,
      timeout: 15_000,
      pollingInterval: 100,
    });
    expect(receipt.status).toBe("success");
  }, 30_000);

  it("without it, an idle chain mines nothing (the default every other test relies on)", async () => {
    anvil = await startAnvil();
    const { publicClient } = clients(anvil);
    const first = await publicClient.getBlockNumber();
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await publicClient.getBlockNumber()).toBe(first);
  });

  it("refuses a block time that is not a whole number of seconds", async () => {
    await expect(startAnvil({ blockTimeSeconds: 0.5 })).rejects.toBeInstanceOf(AnvilError);
  });
});
