// A quote's expiry is compared by Payments.open with the chain's clock, so the provider must set it from that
// clock too: a chain whose time runs ahead of the provider's wall clock (an L2 sequencer, a devnet that was
// advanced) made every quote arrive already expired and no publisher could open a channel.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { type ChainContext, openChannel, type Quote } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { bytesToHex, getAddress, type Hex, hexToBytes, toHex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { chainClock } from "../src/chain-clock.js";
import { askQuote, quoteDeps } from "./quote-helpers.js";

const TWO_HOURS = 2 * 3600;
let chain: DevChain;
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-quote-clock-"));
  chain = await startDevChain({ devnetRelease: false });
}, 120_000);
afterAll(async () => {
  await chain?.stop();
  await rm(tmp, { recursive: true, force: true });
});

async function advanceChainClock(seconds: number): Promise<bigint> {
  await chain.publicClient.request({
    method: "evm_increaseTime" as never,
    params: [toHex(seconds)] as never,
  });
  await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
  return (await chain.publicClient.getBlock()).timestamp;
}

it("signs an expiry the chain has not passed when the chain's clock runs ahead of the wall clock", async () => {
  const chainNow = await advanceChainClock(TWO_HOURS);
  expect(chainNow).toBeGreaterThan(BigInt(Math.floor(Date.now() / 1000) + TWO_HOURS - 60));

  const publisher = chain.context(2);
  const podId = bytesToHex(randomBytes(32));
  // No pods held: the quote's admission checks pass.
  const deps = quoteDeps(chain, tmp, {
    state: {
      getPod: () => undefined,
      countActivePods: () => 0,
      hostnamesInUse: () => new Set<string>(),
      listPods: () => [],
    },
    maxPods: 1,
    baseDomain: "localhost",
  });
  const { config } = deps;
  const res = await askQuote(deps, chain.accounts[2]!.address, hexToBytes(podId));
  const w = res.quote;
  expect(w.expiresAt).toBeGreaterThanOrEqual(chainNow + BigInt(config.billing.quoteTtlSeconds));

  const signed: Quote = {
    provider: getAddress(w.provider),
    publisher: chain.accounts[2]!.address,
    podId,
    token: getAddress(w.pricing!.token),
    ratePerSecond: BigInt(w.pricePerSecond),
    minNoticeSeconds: Number(w.minNoticeSeconds),
    expiry: w.expiresAt,
    specHash: bytesToHex(w.specHash),
    royaltiesHash: bytesToHex(w.royaltiesHash),
  };
  const rate = signed.ratePerSecond;
  const opened = await openChannel(publisher, {
    quote: signed,
    quoteSignature: bytesToHex(w.signature) as Hex,
    podId,
    deposit: rate * 3600n,
    noticeSeconds: signed.minNoticeSeconds,
  });
  expect(opened.receipt.status).toBe("success");
}, 120_000);

it("reads the chain at most once per refresh interval and falls back to the wall clock when it cannot", async () => {
  let reads = 0;
  const ahead = BigInt(Math.floor(Date.now() / 1000) + 5000);
  const ctx = {
    publicClient: {
      getBlock: async () => {
        reads++;
        return { timestamp: ahead };
      },
    },
  } as unknown as ChainContext;
  const clock = chainClock(async () => ctx, 60_000);
  const [a, b] = await Promise.all([clock.now(), clock.now()]);
  await clock.now();
  expect(reads).toBe(1);
  expect(a).toBeGreaterThanOrEqual(ahead);
  expect(b).toBeGreaterThanOrEqual(ahead);

  const unreachable = chainClock(async () => {
    throw new Error("connection refused");
  });
  const wall = BigInt(Math.floor(Date.now() / 1000));
  const got = await unreachable.now();
  expect(got >= wall && got <= wall + 2n).toBe(true);
});
