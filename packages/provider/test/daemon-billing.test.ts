// The daemon with its real billing module (no gate passed in): a publisher gets a quote over libp2p, opens the
// payment channel on anvil with it, provisions, and the claims loop claims on chain. Without a channel nothing starts.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { multiaddr } from "@multiformats/multiaddr";
import { type DevChain, ensureAllowance, getChannel, openChannel, startDevChain } from "@trustedpods/chain";
import type { IpfsNode } from "@trustedpods/ipfs";
import { callUnary, RpcError } from "@trustedpods/p2p";
import {
  ErrorCode,
  ProvisionRequestSchema,
  ProvisionResponseSchema,
  QuoteRequestSchema,
  QuoteResponseSchema,
} from "@trustedpods/protocol";
import { bytesToHex, getAddress, type Hex, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { Daemon } from "../src/daemon.js";
import type { PodmanEngine } from "../src/engine/podman.js";
import {
  buildBusyboxLayout,
  container,
  haveTools,
  httpGet,
  Publisher,
  type PushedImage,
  pod,
  podToWire,
  providerConfigYaml,
  pushLayout,
  randomPodId,
  startPublisherIpfs,
  waitFor,
} from "./daemon-helpers.js";

const uid = randomBytes(4).toString("hex");
let tmp: string;
let chain: DevChain;
let pubIpfs: IpfsNode;
let daemon: Daemon;
let alice: Publisher;
let image: PushedImage;

beforeAll(async () => {
  if (!haveTools) return;
  tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-daemon-billing-"));
  [chain, pubIpfs] = await Promise.all([startDevChain(), startPublisherIpfs(path.join(tmp, "pub-ipfs"))]);
  image = await pushLayout(
    pubIpfs,
    await buildBusyboxLayout(tmp, `localhost/tpod-billingd-${uid}:latest`, "paid\n"),
  );
  const keyFile = path.join(tmp, "account.key");
  await writeFile(keyFile, `${chain.accounts[1]!.privateKey}\n`, { mode: 0o600 });
  const cfgFile = path.join(tmp, "provider.yaml");
  const yaml = providerConfigYaml({
    dataDir: path.join(tmp, "data"),
    chain,
    accountKeyFile: keyFile,
    owner: `b${uid}`,
    ipfsPeers: pubIpfs.multiaddrs(),
  }).replace("chain:\n", "chain:\n  confirmations: 0\n");
  await writeFile(cfgFile, yaml);
  daemon = await Daemon.start(loadConfig(cfgFile), {});
  alice = await Publisher.create(
    privateKeyToAccount(chain.accounts[2]!.privateKey),
    daemon.info().multiaddrs.map((a) => multiaddr(a)),
    daemon.info().provider,
    chain.chainId,
  );
}, 180_000);

afterAll(async () => {
  if (!haveTools) return;
  await alice?.stop();
  if (daemon) {
    const engine = daemon.engine as PodmanEngine;
    for (const m of await engine.listPods()) await engine.remove(m.podId, { images: true });
    await daemon.stop();
  }
  await pubIpfs?.stop();
  await chain?.stop();
  await rm(tmp, { recursive: true, force: true });
  await rm(`/dev/shm/tpod-secrets-b${uid}`, { recursive: true, force: true });
}, 120_000);

const webPod = () =>
  pod("paid", [
    container("web", image, {
      command: ["sh", "-c", "exec httpd -f -p 8080 -h /www"],
      ports: [{ containerPort: 8080, protocol: "tcp" }],
    }),
  ]);

function provision(podId: Hex) {
  return alice.call(
    "provision",
    ProvisionRequestSchema,
    {
      podId: Buffer.from(podId.slice(2), "hex"),
      pod: podToWire(webPod()),
      channel: { chainId: BigInt(chain.chainId), paymentsContract: chain.contracts.payments },
    },
    ProvisionResponseSchema,
    podId,
  );
}

describe.skipIf(!haveTools)("daemon with billing", () => {
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
    const { quote } = await callUnary(
      alice.node,
      alice.target,
      "quote",
      QuoteRequestSchema,
      {
        pod: podToWire(webPod()),
        nonce: randomBytes(16),
        publisher: Buffer.from(alice.account.address.slice(2), "hex"),
        podId: Buffer.from(podId.slice(2), "hex"),
      },
      QuoteResponseSchema,
    );
    if (!quote) throw new Error("no quote");
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
      },
      quoteSignature: bytesToHex(quote.signature),
      podId,
      deposit: rate * 100_000n,
      noticeSeconds: 3600,
      approve: false,
    });
    const res = await provision(podId);
    const addr = res.endpoints[0]!.target.value as string;
    expect(await waitFor("paid pod", async () => (await httpGet(`http://${addr}/`)).body)).toBe("paid\n");
    const id = daemon.state.listPods().find((p) => p.podId === podId)!.id;
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
  });
});
