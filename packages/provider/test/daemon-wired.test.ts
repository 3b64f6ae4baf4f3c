// The daemon as `tpod provider serve` wires it (no gate or routes passed in): the real billing module and the
// real HTTP gateway. A publisher gets a quote over libp2p, opens the payment channel on anvil with it, provisions;
// the pod is reached through the gateway by Host, scales to zero when idle and wakes on the next request; the
// claims loop claims on chain. Without a channel nothing starts.
import { randomBytes } from "node:crypto";
import { ensureAllowance, getChannel, openChannel } from "@trustedpods/chain";
import type { DevChain } from "@trustedpods/chain/node";
import { RpcError } from "@trustedpods/p2p";
import {
  ErrorCode,
  PodPhase,
  ProvisionRequestSchema,
  ProvisionResponseSchema,
  StatusRequestSchema,
  StatusResponseSchema,
} from "@trustedpods/protocol";
import { bytesToHex, getAddress, type Hex, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import type { PodmanEngine } from "../src/engine/podman.js";
import { findNginx } from "../src/gateway/nginx/process.js";
import {
  container,
  type DaemonTestWorld,
  gatewayGet,
  haveTools,
  type Publisher,
  type PushedImage,
  pod,
  podToWire,
  provisionPod,
  randomPodId,
  startPaidDaemon,
  stopDaemonTestWorld,
  waitFor,
} from "./daemon-helpers.js";

const uid = randomBytes(4).toString("hex");
let world: DaemonTestWorld | undefined;
let chain: DevChain;
let daemon: Daemon;
let alice: Publisher;
let image: PushedImage;

beforeAll(async () => {
  if (!haveTools) return;
  ({ world, daemon, alice, image } = await startPaidDaemon({
    prefix: "tpod-daemon-billing-",
    owner: `b${uid}`,
    imageTag: `localhost/tpod-billingd-${uid}:latest`,
    editConfig: (yaml) =>
      yaml
        .replace("chain:\n", "chain:\n  confirmations: 0\n")
        .replace("billing:\n", "billing:\n  minDepositSeconds: 900\n"),
  }));
  ({ chain } = world);
}, 180_000);

afterAll(async () => {
  if (!haveTools) return;
  await stopDaemonTestWorld(world, daemon, [alice]);
}, 120_000);

const webPod = () => ({
  ...pod("paid", [
    container("web", image, {
      command: ["sh", "-c", "exec httpd -f -p 8080 -h /www"],
      ports: [
        { containerPort: 8080, protocol: "http" as const },
        { containerPort: 9090, protocol: "tcp" as const },
      ],
    }),
  ]),
  replicas: { min: 0, max: 1, idleSeconds: 2n },
});

const provision = (podId: Hex) => provisionPod(alice, chain, podId, webPod());

describe.skipIf(!haveTools)("daemon with billing and gateway", () => {
  it("refuses a pod without a payment channel before starting anything", async () => {
    const podId = randomPodId();
    const err = await provision(podId).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(ErrorCode.PAYMENT_REQUIRED);
    expect((err as RpcError).details.field).toBeTruthy();
    expect(daemon.state.listPods()).toEqual([]);
    expect(await (daemon.engine as PodmanEngine).listPods()).toEqual([]);
  });

  it("quote → channel on chain → provision → claims", async () => {
    const podId = randomPodId();
    const quote = await alice.quote(webPod(), podId);
    // The unsigned terms are what this daemon's billing gate checks: its config's minimum and confirmations.
    expect([quote.minDepositSeconds, quote.confirmations]).toEqual([900n, 0]);
    expect(daemon.billing!.config.minRunSeconds).toBe(900n);
    const rate = BigInt(quote.pricePerSecond);
    const publisherCtx = chain.context(2, 0);
    await ensureAllowance(publisherCtx, chain.contracts.token, 2n ** 200n);
    await openChannel(publisherCtx, {
      quote: {
        provider: getAddress(quote.provider),
        publisher: getAddress(bytesToHex(quote.publisher)),
        podId: bytesToHex(quote.podId),
        token: getAddress(quote.pricing!.token),
        ratePerSecond: rate,
        minNoticeSeconds: Number(quote.minNoticeSeconds),
        expiry: quote.expiresAt,
        specHash: bytesToHex(quote.specHash),
        royaltiesHash: bytesToHex(quote.royaltiesHash),
      },
      quoteSignature: bytesToHex(quote.signature),
      podId,
      deposit: rate * 100_000n,
      noticeSeconds: 3600,
      approve: false,
    });
    const res = await provision(podId);
    const http = res.endpoints.find((e) => e.containerPort === 8080)!;
    expect(http.target.case).toBe("httpUrl");
    const url = new URL(http.target.value as string);
    expect(url.hostname).toMatch(/^web-8080-[0-9a-f]{12}\.localhost$/);
    const port = Number(url.port);
    expect(
      await waitFor("paid pod through the gateway", async () => (await gatewayGet(port, url.host)).body),
    ).toBe("paid\n");
    expect(res.endpoints.find((e) => e.containerPort === 9090)?.target.case).toBe("tcpAddress");
    const id = daemon.state.listPods().find((p) => p.podId === podId)!.id;
    // Idle for 2 s: the gateway stops the pod; status says so; the next request wakes it and waits for it.
    const engine = daemon.engine as PodmanEngine;
    await waitFor("scale to zero", async () => !(await engine.status(id)).running, 20_000);
    const st = await alice.call(
      "status",
      StatusRequestSchema,
      { podId: Buffer.from(podId.slice(2), "hex") },
      StatusResponseSchema,
      podId,
    );
    expect(st.phase).toBe(PodPhase.SCALED_TO_ZERO);
    const woken = await gatewayGet(port, url.host);
    expect([woken.status, woken.body]).toEqual([200, "paid\n"]);
    expect((await engine.status(id)).running).toBe(true);
    // A hostname outside the gateway's base domain is refused before anything else.
    const badId = randomPodId();
    const bad = await alice
      .call(
        "provision",
        ProvisionRequestSchema,
        {
          podId: Buffer.from(badId.slice(2), "hex"),
          pod: podToWire(
            pod("x", [
              container("web", image, {
                ports: [{ containerPort: 80, protocol: "http", hostname: "bank.example.com" }],
              }),
            ]),
          ),
        },
        ProvisionResponseSchema,
        badId,
      )
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(RpcError);
    expect([(bad as RpcError).code, (bad as RpcError).details.field]).toEqual([
      ErrorCode.INVALID_ARGUMENT,
      "hostname",
    ]);
    const billing = daemon.billing!;
    expect(billing.billingStatus(id).ratePerSecond).toBe(rate);
    // Time passes on chain; one pass of the claims loop claims what accrued.
    await chain.publicClient.request({ method: "evm_increaseTime" as never, params: [toHex(120)] as never });
    await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await billing.tick();
    const ch = await getChannel(publisherCtx, {
      publisher: alice.account.address,
      provider: daemon.info().provider,
      podId,
    });
    expect(ch.claimed).toBeGreaterThanOrEqual(rate * 120n);
    const metrics = await (await fetch(daemon.info().metricsUrl)).text();
    expect(metrics).toContain('tpod_provider_requests_total{protocol="provision",code="PAYMENT_REQUIRED"} 1');
    // The default data plane: nginx in front when it is installed (scripts/setup.sh installs it).
    const plane = findNginx() ? "nginx" : "node";
    expect(metrics).toContain(`tpod_provider_gateway_info{data_plane="${plane}"} 1`);
    // Requests through the gateway are counted whichever data plane served them.
    expect(metrics).toMatch(/tpod_provider_gateway_requests_total\{status="2xx",error=""\} [1-9]/);
  });
});
