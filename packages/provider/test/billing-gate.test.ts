// The provision check on the real dev chain (anvil): every refusal names its field, nothing is recorded on failure.
import { DatabaseSync } from "node:sqlite";
import { create } from "@bufbuild/protobuf";
import { authorizeProvider, createListing, requestClose } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { RpcError } from "@trustedpods/p2p";
import { ChannelRefSchema, ErrorCode } from "@trustedpods/protocol";
import { createPublicClient, http } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Billing,
  type BillingConfig,
  ChainUnavailableError,
  PaymentRequiredError,
  type PodLifecycle,
} from "../src/index.js";
import { channelRef, mine, openFor, type Parties, parties, pricing, typedPod } from "./billing-helpers.js";

let chain: DevChain;
let p: Parties;

const noLifecycle: PodLifecycle = {
  async stop() {
    throw new Error("the gate test starts nothing");
  },
  async start() {
    throw new Error("the gate test starts nothing");
  },
  async remove() {
    throw new Error("the gate test removes nothing");
  },
};

function billing(config: Partial<BillingConfig> = {}, ctx = p.provider, withPricing = false) {
  return new Billing({
    ...(withPricing ? { pricing: pricing(p.token) } : {}),
    db: new DatabaseSync(":memory:"),
    chain: ctx,
    chainId: BigInt(chain.chainId),
    lifecycle: noLifecycle,
    token: p.token,
    config: { confirmations: 0, minRunSeconds: 3600n, minNoticeSeconds: 600n, ...config },
  });
}

async function refusal(promise: Promise<unknown>): Promise<PaymentRequiredError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PaymentRequiredError);
    return err as PaymentRequiredError;
  }
  throw new Error("expected the provision check to refuse");
}

beforeAll(async () => {
  chain = await startDevChain();
  p = await parties(chain);
});
afterAll(async () => {
  await chain?.stop();
});

describe("ChannelGate.checkProvision", () => {
  it("accepts a channel at the quoted rate with enough deposit and notice, and records it", async () => {
    const b = billing();
    const ch = await openFor(p, { notice: 600 });
    expect(ch.quotedRate).toBe(359n);
    await b.gate.checkProvision({
      publisher: p.publisherAddr,
      podId: ch.podId,
      pod: ch.pod,
      quotedRatePerSecond: ch.quotedRate,
      channel: channelRef(chain),
    });
    const rec = b.store.getPod(ch.podId.toLowerCase());
    expect(rec?.state).toBe("checked");
    expect(rec?.reserved).toEqual({ cpuMillis: 100n, memoryMiB: 128n, storageGiB: 1n, gpu: 0n });
    await b.gate.onProvisioned(ch.podId.toLowerCase());
    const st = b.billingStatus(ch.podId.toLowerCase());
    expect(st.state).toBe("running");
    expect(st.ratePerSecond).toBe(359n);
    expect(st.deposit).toBe(359n * 100_000n);
  });

  it("refuses a wrong rate, naming ratePerSecond", async () => {
    const ch = await openFor(p, { rate: 358n });
    const err = await refusal(
      billing().gate.checkProvision({
        publisher: p.publisherAddr,
        podId: ch.podId,
        pod: ch.pod,
        quotedRatePerSecond: ch.quotedRate,
        channel: channelRef(chain),
      }),
    );
    expect(err.field).toBe("ratePerSecond");
    expect(err.wireCode).toBe(ErrorCode.PAYMENT_REQUIRED);
    expect(err.message).toContain("the provider quoted 359 wei/s for this pod, the channel pays 358 wei/s");
    expect(err.toWire().details.field).toBe("ratePerSecond");
  });

  it("refuses a short notice, naming noticeSeconds", async () => {
    const ch = await openFor(p, { notice: 599 });
    const err = await refusal(
      billing().gate.checkProvision({
        publisher: p.publisherAddr,
        podId: ch.podId,
        pod: ch.pod,
        quotedRatePerSecond: ch.quotedRate,
        channel: channelRef(chain),
      }),
    );
    expect(err.field).toBe("noticeSeconds");
    expect(err.message).toBe(
      "notice too short: the provider needs at least 600 s of notice, the channel has 599 s",
    );
  });

  it("refuses too little deposit with the exact arithmetic", async () => {
    // 1000 wei/s for a pod quoted at 1000 wei/s: rate 1000, 600 s worth of deposit, the provider wants 3600 s.
    const ch = await openFor(p, { rate: 1000n, deposit: 600_000n, notice: 600 });
    const err = await refusal(
      billing().gate.checkProvision({
        publisher: p.publisherAddr,
        podId: ch.podId,
        pod: ch.pod,
        quotedRatePerSecond: 1000n,
        channel: channelRef(chain),
      }),
    );
    expect(err.field).toBe("deposit");
    expect(err.problems).toHaveLength(1);
    expect(err.message).toBe(
      "deposit too small: the provider wants at least 3600 s at 1000 wei/s = 3600000 wei, the channel holds 600000 wei: top up the channel",
    );
  });

  it("refuses a pod running a listing when the channel lacks its royalty, and accepts it with the royalty", async () => {
    const { listingId } = await createListing(p.developer, {
      manifestDigest: `0x${"ab".repeat(32)}`,
      metadataCid: "bafy-listing",
      royaltyBps: 500,
    });
    await authorizeProvider(p.developer, listingId, p.providerAddr, "bafy-key");
    const pod = typedPod(listingId);
    const without = await openFor(p, { pod, notice: 600 });
    const err = await refusal(
      billing().gate.checkProvision({
        publisher: p.publisherAddr,
        podId: without.podId,
        pod,
        quotedRatePerSecond: without.quotedRate,
        channel: channelRef(chain),
      }),
    );
    expect(err.field).toBe(`royalties[listing ${listingId}]`);
    expect(err.message).toContain(`royalty missing: the pod runs listing ${listingId}`);
    expect(err.message).toContain("requires 500 bps");

    const withRoyalty = await openFor(p, {
      pod,
      notice: 600,
      royalties: [{ recipient: p.developerAddr, bps: 500, listingId }],
    });
    await billing().gate.checkProvision({
      publisher: p.publisherAddr,
      podId: withRoyalty.podId,
      pod,
      quotedRatePerSecond: withRoyalty.quotedRate,
      channel: channelRef(chain),
    });
  });

  it("lists every problem at once and records nothing", async () => {
    const ch = await openFor(p, { rate: 10n, deposit: 10n, notice: 1 });
    const b = billing();
    const err = await refusal(
      b.gate.checkProvision({
        publisher: p.publisherAddr,
        podId: ch.podId,
        pod: ch.pod,
        quotedRatePerSecond: ch.quotedRate,
        channel: channelRef(chain),
      }),
    );
    expect(err.problems.map((x) => x.field)).toEqual(["ratePerSecond", "noticeSeconds", "deposit"]);
    expect(err.details.fields).toBe("ratePerSecond,noticeSeconds,deposit");
    expect(b.store.allPods()).toHaveLength(0);
    await expect(b.gate.onProvisioned(ch.podId.toLowerCase())).rejects.toThrow(/checkProvision first/);
  });

  it("refuses a closing channel, a missing channel, and a channel reference to another chain or contract", async () => {
    const ch = await openFor(p, { notice: 600 });
    await requestClose(p.publisher, p.providerAddr, ch.podId);
    const base = {
      publisher: p.publisherAddr,
      podId: ch.podId,
      pod: ch.pod,
      quotedRatePerSecond: ch.quotedRate,
      channel: channelRef(chain),
    };
    expect((await refusal(billing().gate.checkProvision(base))).field).toBe("closeAt");
    const missing = await refusal(billing().gate.checkProvision({ ...base, podId: `0x${"12".repeat(32)}` }));
    expect(missing.field).toBe("channel");
    expect(missing.message).toContain("no payment channel from publisher");
    const wrongChain = await refusal(
      billing().gate.checkProvision({
        ...base,
        channel: create(ChannelRefSchema, { chainId: 1n, paymentsContract: chain.contracts.payments }),
      }),
    );
    expect(wrongChain.field).toBe("channel.chainId");
    const wrongContract = await refusal(
      billing().gate.checkProvision({
        ...base,
        channel: create(ChannelRefSchema, { chainId: BigInt(chain.chainId), paymentsContract: p.token }),
      }),
    );
    expect(wrongContract.field).toBe("channel.paymentsContract");
  });

  it("reads at latest - confirmations: a channel younger than that does not count yet", async () => {
    const b = billing({ confirmations: 3 });
    const ch = await openFor(p, { notice: 600 });
    const req = {
      publisher: p.publisherAddr,
      podId: ch.podId,
      pod: ch.pod,
      quotedRatePerSecond: ch.quotedRate,
      channel: channelRef(chain),
    };
    const early = await refusal(b.gate.checkProvision(req));
    expect(early.field).toBe("channel");
    expect(early.message).toContain("3 confirmations");
    await mine(chain, 3);
    await b.gate.checkProvision(req);
    expect(b.store.getPod(ch.podId.toLowerCase())?.state).toBe("checked");
  });

  it("says the chain is unavailable (not a payment problem) when the RPC does not answer", async () => {
    const dead = {
      ...p.provider,
      publicClient: createPublicClient({
        transport: http("http://127.0.0.1:9", { retryCount: 0, timeout: 2000 }),
      }),
    } as typeof p.provider;
    const ch = await openFor(p, { notice: 600 });
    const err = await billing({}, dead)
      .gate.checkProvision({
        publisher: p.publisherAddr,
        podId: ch.podId,
        pod: ch.pod,
        quotedRatePerSecond: ch.quotedRate,
        channel: channelRef(chain),
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ChainUnavailableError);
    expect((err as ChainUnavailableError).wireCode).toBe(ErrorCode.UNAVAILABLE);
  });

  it("serves the daemon's seam: the rate comes from the provider's pricing, pods are named by the daemon's id", async () => {
    const b = billing({}, p.provider, true);
    const ch = await openFor(p, { notice: 600 });
    const req = {
      id: "daemon-pod-1",
      publisher: p.publisherAddr,
      podId: ch.podId,
      pod: ch.pod,
      channel: channelRef(chain),
    };
    await b.gate.checkProvision(req);
    await b.gate.onProvisioned({ id: "daemon-pod-1" });
    expect(b.billingStatus("daemon-pod-1").state).toBe("running");

    // The same pod grown to two containers costs more: an update is refused until the rate changes.
    const bigger = {
      ...ch.pod,
      containers: [ch.pod.containers[0]!, { ...ch.pod.containers[0]!, name: "side" }],
    };
    const err = await refusal(b.gate.checkUpdate({ ...req, pod: bigger, channel: undefined }));
    expect(err).toBeInstanceOf(RpcError);
    expect(err.code).toBe(ErrorCode.PAYMENT_REQUIRED);
    expect(err.details.field).toBe("ratePerSecond");
    expect(err.message).toContain("the updated pod costs 718 wei/s, the channel pays 359 wei/s");
    await b.gate.checkUpdate({ ...req, channel: undefined });
    expect(b.store.getPod("daemon-pod-1")?.requiredRate).toBe(359n);
    // A cheaper update is accepted while the channel still pays more (its changeRate may follow); once it runs,
    // the channel must keep paying at least the new price (the loop stops the pod below it).
    const smaller = {
      ...ch.pod,
      containers: [
        { ...ch.pod.containers[0]!, resources: { ...ch.pod.containers[0]!.resources, cpuMillis: 50n } },
      ],
    };
    await b.gate.checkUpdate({ ...req, pod: smaller, channel: undefined });
    expect(b.store.getPod("daemon-pod-1")?.requiredRate).toBe(359n);
    b.gate.onUpdated({ ...req, pod: smaller, channel: undefined });
    const required = b.store.getPod("daemon-pod-1")?.requiredRate;
    expect(required).toBeLessThan(359n);
    expect(b.store.getPod("daemon-pod-1")?.reserved.cpuMillis).toBe(50n);

    const wrong = await openFor(p, { rate: 1n, notice: 600 });
    const refused = await refusal(
      b.gate.checkProvision({
        id: "daemon-pod-2",
        publisher: p.publisherAddr,
        podId: wrong.podId,
        pod: wrong.pod,
        channel: channelRef(chain),
      }),
    );
    expect(refused.field).toBe("ratePerSecond");
    const noRef = await refusal(
      b.gate.checkProvision({
        id: "daemon-pod-3",
        publisher: p.publisherAddr,
        podId: ch.podId,
        pod: ch.pod,
        channel: undefined,
      }),
    );
    expect(noRef.field).toBe("channel");

    // Deleting before provisioning leaves nothing to bill; deleting a running pod stops billing it.
    await b.gate.onDeleted("daemon-pod-1");
    expect(b.billingStatus("daemon-pod-1").state).toBe("deleted");
  });
});
