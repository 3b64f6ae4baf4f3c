// Billing wired into the real provider daemon (no test gate): a publisher quotes, opens a channel on anvil and
// provisions over libp2p; the daemon refuses an underfunded channel with PAYMENT_REQUIRED naming the field,
// runs a paid pod, reports billing in status, stops it when the deposit runs out, restarts it after a top-up,
// and stops billing (providerClose) when the publisher deletes it. Real Podman, Helia, anvil.
import { randomBytes } from "node:crypto";
import { getChannel, openChannel, refund, topUp } from "@trustedpods/chain";
import type { DevChain } from "@trustedpods/chain/node";
import { RpcError } from "@trustedpods/p2p";
import { DeleteRequestSchema, DeleteResponseSchema, ErrorCode, PodPhase } from "@trustedpods/protocol";
import { bytesToHex, getAddress, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import {
  advanceChainTime,
  container,
  type DaemonTestWorld,
  gatewayGet,
  haveTools,
  mineBlocks,
  type Publisher,
  type PushedImage,
  pod,
  podStatus,
  provisionPod,
  randomPodId,
  startPaidDaemon,
  stopDaemonTestWorld,
  waitFor,
} from "./daemon-helpers.js";

const uid = randomBytes(4).toString("hex");
if (!haveTools) console.warn("SKIP billing-daemon.test.ts: podman, buildah or busybox-static missing");

let world: DaemonTestWorld | undefined;
let chain: DevChain;
let daemon: Daemon;
let alice: Publisher;
let image: PushedImage;

const webPod = () =>
  pod("web", [
    container("web", image, {
      command: ["sh", "-c", "exec httpd -f -p 8080 -h /www"],
      ports: [{ containerPort: 8080, protocol: "http" }],
    }),
  ]);

const mine = (blocks = 1) => mineBlocks(chain, blocks);
const increaseTime = (seconds: bigint) => advanceChainTime(chain, seconds);
const status = (podId: Hex) => podStatus(alice, podId);

beforeAll(async () => {
  if (!haveTools) return;
  // No gate: the daemon runs its billing module. Short loop intervals so the test does not wait.
  ({ world, daemon, alice, image } = await startPaidDaemon({
    prefix: "tpod-billing-daemon-",
    owner: `bd${uid}`,
    imageTag: `localhost/tpod-billingdaemon-${uid}:latest`,
    deps: { billing: { claimIntervalMs: 200, meterIntervalMs: 300, maxBackoffMs: 1000 } },
    approve: true,
  }));
  ({ chain } = world);
}, 180_000);

afterAll(async () => {
  if (!haveTools) return;
  await stopDaemonTestWorld(world, daemon, [alice]);
}, 120_000);

describe.skipIf(!haveTools)("billing in the provider daemon", () => {
  it("refuses an underfunded channel, bills a paid pod, stops it at run-out, restarts it on top-up, and stops billing on delete", async () => {
    expect(daemon.billing).toBeDefined();
    const podId = randomPodId();
    const p = webPod();
    const publisher = chain.context(2);

    // The provider's quote, bound to this publisher and pod id, opens the channel as it is.
    const quote = await alice.quote(p, podId);
    const rate = BigInt(quote.pricePerSecond);
    expect(rate).toBe(200n * 1000n + 32n * 200n);
    const opened = await openChannel(publisher, {
      quote: {
        provider: getAddress(quote.provider),
        publisher: alice.account.address,
        podId,
        token: getAddress(quote.pricing!.token),
        ratePerSecond: rate,
        minNoticeSeconds: Number(quote.minNoticeSeconds),
        expiry: quote.expiresAt,
        specHash: bytesToHex(quote.specHash),
        royaltiesHash: bytesToHex(quote.royaltiesHash),
      },
      quoteSignature: bytesToHex(quote.signature),
      podId,
      deposit: rate * 100n,
      noticeSeconds: 600,
      approve: false,
    });
    const openedAt = (await chain.publicClient.getBlock({ blockNumber: opened.receipt.blockNumber }))
      .timestamp;
    await mine();

    const provision = () => provisionPod(alice, chain, podId, p);
    const refused = await provision().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(RpcError);
    expect((refused as RpcError).code).toBe(ErrorCode.PAYMENT_REQUIRED);
    expect((refused as RpcError).details.field).toBe("deposit");
    expect((refused as RpcError).message).toContain(
      `deposit too small: the provider wants at least 3600 s at ${rate} wei/s = ${rate * 3600n} wei`,
    );
    expect(await daemon.engine.listPods()).toEqual([]);

    // Funded: the pod runs and status carries its billing.
    await topUp(publisher, daemon.info().provider, podId, rate * 3600n, false);
    await mine();
    const provisioned = await provision();
    const running = await status(podId);
    expect(running.phase).toBe(PodPhase.RUNNING);
    expect(running.billing?.state).toBe("running");
    expect(running.billing?.ratePerSecond).toBe(rate.toString());
    expect(running.billing?.deposit).toBe((rate * 3700n).toString());
    expect(running.billing?.reserved?.cpuMillis).toBe(200n);

    // The deposit runs out: the daemon's loop stops the pod (phase STOPPED) and claims all of it.
    await increaseTime(3800n);
    const stopped = await waitFor("the pod stopped for funds", async () => {
      const s = await status(podId);
      return s.phase === PodPhase.STOPPED && s.billing?.state === "stopped_funds" && s;
    });
    expect(stopped.billing?.warnings.join()).toContain("the deposit ran out");
    const key = { publisher: alice.account.address, provider: daemon.info().provider, podId };
    await waitFor("the full claim", async () => (await getChannel(publisher, key)).claimed === rate * 3700n);
    const id = daemon.state.listPods().find((x) => x.podId === podId)!.id;
    expect((await daemon.engine.status(id)).running).toBe(false);
    // Its URL says why, in a typed error a client can act on: 402, not 404 "unknown host".
    const url = new URL(provisioned.endpoints[0]!.target.value as string);
    const visit = () => gatewayGet(Number(url.port), url.hostname);
    const broke = await visit();
    expect(broke.status).toBe(402);
    expect(JSON.parse(broke.body).error.code).toBe("POD_STOPPED_FOR_FUNDS");
    expect((await status(podId)).message).toMatch(/deposit ran out; top up the channel/);
    // It stands stopped another 5 minutes of chain time (within the 600 s notice, so its volumes stay): still
    // stopped, and nothing more is owed for it.
    await increaseTime(300n);
    await waitFor("a tick after the wait", async () => {
      const s = await status(podId);
      return BigInt(s.billing?.chainTime ?? 0) >= openedAt + 4100n && s;
    });
    expect((await daemon.engine.status(id)).running).toBe(false);
    expect((await getChannel(publisher, key)).claimed).toBe(rate * 3700n);

    // A top-up restarts it; the contract restarts accrual at the top-up, so the stopped time is not billed.
    const restart = await topUp(publisher, daemon.info().provider, podId, rate * 10_000n, false);
    const restartedAt = (await chain.publicClient.getBlock({ blockNumber: restart.receipt.blockNumber }))
      .timestamp;
    expect(await getChannel(publisher, key)).toMatchObject({
      since: restartedAt,
      accruedBefore: rate * 3700n,
    });
    await mine(2);
    await waitFor("the pod running again", async () => {
      const s = await status(podId);
      return s.phase === PodPhase.RUNNING && s.billing?.state === "running";
    });
    expect((await daemon.engine.status(id)).running).toBe(true);
    expect(await waitFor("the pod's page again", async () => (await visit()).status === 200 && true)).toBe(
      true,
    );
    const metrics = await (await fetch(daemon.info().metricsUrl)).text();
    expect(metrics).toContain(`tpod_billing_rate_per_second{pod="${id}"} ${rate}`);

    // The publisher deletes it: billing stops on chain at once and the last accrual is claimed.
    await alice.call(
      "delete",
      DeleteRequestSchema,
      { podId: Buffer.from(podId.slice(2), "hex") },
      DeleteResponseSchema,
      podId,
    );
    const closed = await waitFor("providerClose and the final claim", async () => {
      const c = await getChannel(publisher, key);
      return c.closeAt !== 0n && c.claimed === rate * (3700n + c.closeAt - c.since) && c;
    });
    // The seconds between the top-up and the pod serving again were waived (Payments.waive): `since` moved on.
    expect(closed.since).toBeGreaterThanOrEqual(restartedAt);
    expect(closed.claimed).toBeLessThanOrEqual(closed.deposit);
    // Nothing for the seconds between the run-out (openedAt + 3700) and the top-up.
    expect(restartedAt).toBeGreaterThan(openedAt + 3700n);
    expect(closed.claimed).toBeLessThan(rate * (closed.closeAt - openedAt));
    // The close time has passed (providerClose closes now): the publisher takes back exactly deposits - claimed.
    const deposits = rate * (100n + 3600n + 10_000n);
    const refunded = await refund(publisher, daemon.info().provider, podId);
    expect(refunded.result).toBe(deposits - closed.claimed);
  }, 180_000);
});
