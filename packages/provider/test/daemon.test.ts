// The provider daemon end to end with real parts: libp2p, Podman, anvil (chain id, Payments domain, the
// provider's account), Helia (a publisher node pushes images and secrets, the daemon pulls them by CID).
// One daemon for the whole file; pods are shared between tests where that keeps the run short.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { publicKeyToProtobuf } from "@libp2p/crypto/keys";
import { AttestationError, newNonce, verifyAttestResponse } from "@trustedpods/attestation";
import { paymentsDomain, recoverQuoteSigner } from "@trustedpods/chain";
import type { DevChain } from "@trustedpods/chain/node";
import { encryptSecret, type IpfsNode, putSecret } from "@trustedpods/ipfs";
import { encryptLayout, parsePublicKey } from "@trustedpods/oci";
import { callUnary, RpcError, signRequest } from "@trustedpods/p2p";
import {
  AttestRequestSchema,
  AttestResponseSchema,
  ContainerState,
  DeleteRequestSchema,
  DeleteResponseSchema,
  ErrorCode,
  LogEntrySchema,
  LogsRequestSchema,
  type Pod,
  PodPhase,
  podPrice,
  SignedRequestSchema,
  StatusRequestSchema,
  StatusResponseSchema,
  UpdateRequestSchema,
  UpdateResponseSchema,
} from "@trustedpods/protocol";
import { type Address, bytesToHex, getAddress, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AllowAllPaymentGate, type PaymentGate } from "../src/billing-seam.js";
import { loadConfig } from "../src/config.js";
import { Daemon } from "../src/daemon.js";
import type { PodmanEngine } from "../src/engine/podman.js";
import { NoGateway } from "../src/gateway-seam.js";
import {
  buildBusyboxLayout,
  container,
  type DaemonTestWorld,
  haveTools,
  httpGet,
  Publisher,
  type PushedImage,
  pod,
  podStatus,
  podToWire,
  provisionPod,
  pushLayout,
  randomPodId,
  rpcRefusal,
  startDaemonTestWorld,
  stopDaemonTestWorld,
  waitFor,
} from "./daemon-helpers.js";

const run = promisify(execFile);
const uid = randomBytes(4).toString("hex");
if (!haveTools) console.warn("SKIP daemon.test.ts: podman, buildah or busybox-static missing");

/** A gate the tests can switch to refusing, to show nothing starts for an unpaid pod. */
class SwitchGate extends AllowAllPaymentGate implements PaymentGate {
  refuse = false;
  override async checkProvision(): Promise<void> {
    if (this.refuse)
      throw new RpcError(ErrorCode.PAYMENT_REQUIRED, "channel deposit too small", {
        details: { field: "deposit" },
      });
  }
}

let world: DaemonTestWorld | undefined;
let tmp: string;
let chain: DevChain;
let pubIpfs: IpfsNode;
let daemon: Daemon;
let gate: SwitchGate;
let routes: NoGateway;
let alice: Publisher;
let mallory: Publisher;
let plain: PushedImage;
let encrypted: PushedImage;
let secretCid: string;

const httpd = (extra: string[] = []) => [
  "sh",
  "-c",
  `echo started-web; exec httpd -f -v -p 8080 -h /www ${extra.join(" ")}`,
];

function engine(): PodmanEngine {
  return daemon.engine as PodmanEngine;
}

async function execIn(id: string, name: string, cmd: string[]): Promise<string> {
  const { stdout } = await run("podman", ["exec", engine().containerName(id, name), ...cmd]).catch(
    (e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }),
  );
  return stdout;
}

const provision = (p: Pod, podId: Hex, who = alice) => provisionPod(who, chain, podId, p);
const status = (podId: Hex, who = alice) => podStatus(who, podId);
const rpcError = rpcRefusal;

beforeAll(async () => {
  if (!haveTools) return;
  world = await startDaemonTestWorld("tpod-daemon-", `d${uid}`);
  ({ tmp, chain, pubIpfs } = world);
  gate = new SwitchGate();
  routes = new NoGateway();
  const layoutP = buildBusyboxLayout(tmp, `localhost/tpod-daemontest-${uid}:latest`, "hello from tpod\n");
  daemon = await Daemon.start(loadConfig(world.cfgFile), { gate, routes });
  const layout = await layoutP;
  plain = await pushLayout(pubIpfs, layout);
  // The publisher encrypts an image and a secret to the daemon's (attested) encryption key.
  const recipient = await parsePublicKey(JSON.stringify(daemon.info().encryptionPublicJwk));
  const encDir = path.join(tmp, "encrypted");
  await encryptLayout(layout, encDir, [recipient]);
  encrypted = await pushLayout(pubIpfs, encDir);
  const jwe = await encryptSecret(new TextEncoder().encode("s3cret-value\n"), recipient.key);
  secretCid = (await putSecret(pubIpfs, jwe)).toString();
  alice = await Publisher.forDaemon(chain, daemon, 2);
  mallory = await Publisher.forDaemon(chain, daemon, 3);
}, 180_000);

afterAll(async () => {
  if (!haveTools) return;
  await stopDaemonTestWorld(world, daemon, [alice, mallory]);
}, 120_000);

describe.skipIf(!haveTools)("provider daemon", () => {
  it("attests: evidence binds the caller's nonce and both keys; refused without allowInsecureDev", async () => {
    const nonce = newNonce();
    const res = await callUnary(
      alice.node,
      alice.target,
      "attest",
      AttestRequestSchema,
      { nonce },
      AttestResponseSchema,
    );
    const ev = await verifyAttestResponse(res, nonce, { allowInsecureDev: true });
    expect(ev.tee).toBe("insecure-dev");
    expect(Buffer.from(res.encryptionPublicKey).toString("hex")).toBe(daemon.info().encryptionPublicKey);
    // The libp2p key in the response is the key of the peer we are connected to.
    expect(Buffer.from(res.libp2pPublicKey)).toEqual(
      Buffer.from(publicKeyToProtobuf(daemon.peerKey.publicKey)),
    );
    await expect(verifyAttestResponse(res, nonce, {})).rejects.toBeInstanceOf(AttestationError);
    // Another nonce does not verify (no replay of old evidence).
    await expect(verifyAttestResponse(res, newNonce(), { allowInsecureDev: true })).rejects.toBeInstanceOf(
      AttestationError,
    );
    const bad = await rpcError(
      callUnary(
        alice.node,
        alice.target,
        "attest",
        AttestRequestSchema,
        { nonce: new Uint8Array(4) },
        AttestResponseSchema,
      ),
    );
    expect(bad.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(bad.details.field).toBe("nonce");
  });

  it("quotes: the EIP-712 signature recovers to the provider and the rate is podPrice", async () => {
    const p = pod(
      "quoted",
      [
        container("web", plain, {
          resources: { cpuMillis: 500n, memoryBytes: 64n << 20n, storageBytes: 1n << 30n, gpu: 0n },
        }),
      ],
      [{ name: "data", kind: "persistent", sizeBytes: 2n << 30n }],
    );
    const podId = randomPodId();
    const nonce = randomBytes(16);
    const quote = await alice.quote(p, podId, nonce);
    const expected = podPrice(p, daemon.config.pricing).perSecond;
    expect(BigInt(quote.pricePerSecond)).toBe(expected);
    expect(expected).toBe(500n * 1000n + 64n * 200n + 3n * 3000n);
    expect(Buffer.from(quote.nonce)).toEqual(nonce);
    const signer = await recoverQuoteSigner(
      paymentsDomain(chain.chainId, chain.contracts.payments),
      {
        provider: getAddress(quote.provider),
        publisher: alice.account.address,
        podId,
        token: getAddress(quote.pricing!.token),
        ratePerSecond: BigInt(quote.pricePerSecond),
        minNoticeSeconds: Number(quote.minNoticeSeconds),
        expiry: quote.expiresAt,
        specHash: bytesToHex(quote.specHash),
        royaltiesHash: bytesToHex(quote.royaltiesHash),
      },
      bytesToHex(quote.signature),
    );
    expect(signer).toBe(daemon.info().provider);
    expect(quote.minNoticeSeconds).toBe(600n);
    // No billing module here (a test gate): the terms come from the config file's defaults.
    expect([quote.minDepositSeconds, quote.confirmations]).toEqual([3600n, 1]);
    expect(Number(quote.expiresAt)).toBeGreaterThan(Date.now() / 1000);
    expect(quote.podHash.length).toBe(32);
  });

  let webId: Hex;
  let webEngineId: string;
  let webAddr: string;

  it("provisions a busybox httpd pod with a decrypted secret and reaches it on its tcp port", async () => {
    webId = randomPodId();
    const p = pod(
      "web",
      [
        container("web", plain, {
          command: httpd(),
          ports: [{ containerPort: 8080, protocol: "tcp" }],
          volumeMounts: [
            { name: "data", mountPath: "/www/data", readOnly: false },
            { name: "token", mountPath: "/www/s/token.txt", readOnly: true },
          ],
          env: [{ name: "TOKEN", kind: "secret", secret: "token" }],
        }),
      ],
      [
        { name: "data", kind: "persistent", sizeBytes: 16n << 20n },
        {
          name: "token",
          kind: "secret",
          source: { kind: "ipfs", cid: secretCid, keyRef: daemon.info().encryptionKeyId },
        },
      ],
    );
    const res = await provision(p, webId);
    expect(res.endpoints).toHaveLength(1);
    const ep = res.endpoints[0]!;
    expect(ep.target.case).toBe("tcpAddress");
    const addr = ep.target.value as string;
    expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
    webAddr = addr;
    const page = await waitFor("httpd", async () => {
      const r = await httpGet(`http://${addr}/`);
      return r.status === 200 && r.body;
    });
    expect(page).toBe("hello from tpod\n");
    // The secret was fetched from IPFS, decrypted with the daemon's key, and mounted at exactly its path.
    expect((await httpGet(`http://${addr}/s/token.txt`)).body).toBe("s3cret-value\n");
    webEngineId = daemon.state.listPods().find((x) => x.podId === webId)!.id;
    expect(await execIn(webEngineId, "web", ["sh", "-c", "echo -n $TOKEN"])).toBe("s3cret-value");
    expect(gate.provisioned).toContain(webEngineId);
    const st = await status(webId);
    expect(st.phase).toBe(PodPhase.RUNNING);
    expect(st.containers[0]?.state).toBe(ContainerState.RUNNING);
  });

  let multiId: Hex;
  let multiEngineId: string;

  it("provisions a multi-container pod from an encrypted image; containers reach each other by name", async () => {
    multiId = randomPodId();
    const p = pod("multi", [
      container("web", encrypted, { command: httpd(), ports: [{ containerPort: 8080, protocol: "http" }] }),
      container("ticker", plain, {
        command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"],
      }),
    ]);
    const res = await provision(p, multiId);
    // http ports are routed by the gateway, not published: NoGateway reports no URL.
    expect(res.endpoints).toEqual([expect.objectContaining({ container: "web", containerPort: 8080 })]);
    multiEngineId = daemon.state.listPods().find((x) => x.podId === multiId)!.id;
    const r = routes.routes.get(multiEngineId);
    expect(r?.routes[0]).toMatchObject({ container: "web", containerPort: 8080 });
    expect(r?.routes[0]?.hostname).toMatch(/\.localhost$/);
    const page = await waitFor("web by name", async () => {
      const out = await execIn(multiEngineId, "ticker", [
        "sh",
        "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 web 8080",
      ]);
      return out.includes("hello from tpod") && out;
    });
    expect(page).toContain("200");
    // The decrypted image is loaded under a name unique to this pod.
    const images = daemon.state.getPod(multiEngineId)!.images;
    expect(images.web).toContain(`tpod-${multiEngineId}/web`);
  });

  it("streams logs per container, with timestamps, and follows", async () => {
    const lines: { container: string; line: string; ts: bigint }[] = [];
    for await (const e of alice.stream(
      "logs",
      LogsRequestSchema,
      { podId: Buffer.from(multiId.slice(2), "hex"), container: "ticker", follow: true },
      LogEntrySchema,
      multiId,
    )) {
      lines.push({ container: e.container, line: e.line, ts: e.timestampMs });
      if (lines.length >= 4) break;
    }
    expect(lines.every((l) => l.container === "ticker" && l.line.startsWith("tick "))).toBe(true);
    expect(lines.every((l) => l.ts > 0n)).toBe(true);
    const all: string[] = [];
    for await (const e of alice.stream(
      "logs",
      LogsRequestSchema,
      { podId: Buffer.from(multiId.slice(2), "hex") },
      LogEntrySchema,
      multiId,
    ))
      all.push(`${e.container}:${e.line}`);
    expect(all).toContain("web:started-web");
    const missing = await rpcError(
      (async () => {
        for await (const _ of alice.stream(
          "logs",
          LogsRequestSchema,
          { podId: Buffer.from(multiId.slice(2), "hex"), container: "nope" },
          LogEntrySchema,
          multiId,
        ));
      })(),
    );
    expect(missing.code).toBe(ErrorCode.NOT_FOUND);
  });

  it("one pod cannot reach another", async () => {
    const st = await engine().status(webEngineId);
    const ip = st.containers[0]!.ip!;
    expect(ip).toBeTruthy();
    const out = await execIn(multiEngineId, "ticker", [
      "sh",
      "-c",
      `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ip} 8080`,
    ]);
    expect(out).not.toContain("hello from tpod");
    // The same request from inside the pod's own network works.
    const own = await execIn(webEngineId, "web", [
      "sh",
      "-c",
      `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ip} 8080`,
    ]);
    expect(own).toContain("hello from tpod");
  });

  it("updates a pod, keeping its persistent volume data", async () => {
    await execIn(webEngineId, "web", ["sh", "-c", "echo kept > /www/data/f.txt"]);
    const p = pod(
      "web",
      [
        container("web", plain, {
          command: httpd(),
          env: [{ name: "VERSION", kind: "value", value: "2" }],
          ports: [{ containerPort: 8080, protocol: "tcp" }],
          volumeMounts: [{ name: "data", mountPath: "/www/data", readOnly: false }],
        }),
      ],
      [{ name: "data", kind: "persistent", sizeBytes: 16n << 20n }],
    );
    const res = await alice.call(
      "update",
      UpdateRequestSchema,
      { podId: Buffer.from(webId.slice(2), "hex"), pod: podToWire(p) },
      UpdateResponseSchema,
      webId,
    );
    const addr = res.endpoints[0]!.target.value as string;
    const kept = await waitFor("updated httpd", async () => {
      const r = await httpGet(`http://${addr}/data/f.txt`);
      return r.status === 200 && r.body;
    });
    expect(kept).toBe("kept\n");
    expect(await execIn(webEngineId, "web", ["sh", "-c", "echo -n $VERSION"])).toBe("2");
    // The container was replaced (new env), and its tcp endpoint kept its host port: clients need no new address.
    expect(addr).toBe(webAddr);
    const ops = daemon.state.operations(webEngineId).map((o) => `${o.kind}:${o.status}`);
    expect(ops).toEqual(["provision:done", "update:done"]);
  });

  it("moves a tcp endpoint whose recorded host port another program took, and says so in the status", async () => {
    // Another program listens on a port; the pod's record says the pod had it (as after a restart in between).
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
    const taken = (squatter.address() as net.AddressInfo).port;
    try {
      const rec = daemon.state.getPod(webEngineId)!;
      daemon.state.updatePod(webEngineId, {
        endpoints: rec.endpoints.map((e) =>
          e.protocol === "tcp" ? { ...e, hostPort: taken, tcpAddress: `127.0.0.1:${taken}` } : e,
        ),
      });
      const p = pod(
        "web",
        [
          container("web", plain, {
            command: httpd(),
            env: [{ name: "VERSION", kind: "value", value: "3" }],
            ports: [{ containerPort: 8080, protocol: "tcp" }],
            volumeMounts: [{ name: "data", mountPath: "/www/data", readOnly: false }],
          }),
        ],
        [{ name: "data", kind: "persistent", sizeBytes: 16n << 20n }],
      );
      const res = await alice.call(
        "update",
        UpdateRequestSchema,
        { podId: Buffer.from(webId.slice(2), "hex"), pod: podToWire(p) },
        UpdateResponseSchema,
        webId,
      );
      const addr = res.endpoints[0]!.target.value as string;
      expect(addr).not.toBe(`127.0.0.1:${taken}`);
      const page = await waitFor("moved httpd", async () => {
        const r = await httpGet(`http://${addr}/data/f.txt`);
        return r.status === 200 && r.body;
      });
      expect(page).toBe("kept\n");
      const st = await status(webId);
      expect(st.message).toBe(
        `tcp port web/8080: host port ${taken} was taken by another program, so it moved to ${addr.split(":")[1]}`,
      );
      webAddr = addr;
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it("refuses forged, replayed, misdirected, oversized and foreign requests with the right codes", async () => {
    const body = toBinary(
      StatusRequestSchema,
      create(StatusRequestSchema, { podId: Buffer.from(webId.slice(2), "hex") }),
    );
    const base = {
      chainId: chain.chainId,
      provider: daemon.info().provider,
      podId: webId,
      operation: "status",
      body,
    };
    const send = (signed: unknown) =>
      rpcError(
        callUnary(
          alice.node,
          alice.target,
          "status",
          SignedRequestSchema,
          signed as never,
          StatusResponseSchema,
        ),
      );
    // Forged: signed by mallory, claims to be alice.
    const forged = await signRequest({ ...base, signer: mallory.account });
    forged.publisher = Buffer.from(alice.account.address.slice(2), "hex");
    expect((await send(forged)).reason).toBe("bad-signature");
    // Replayed: the same signed request twice.
    const once = await signRequest({ ...base, signer: alice.account });
    await callUnary(alice.node, alice.target, "status", SignedRequestSchema, once, StatusResponseSchema);
    const replay = await send(once);
    expect([replay.code, replay.reason]).toEqual([ErrorCode.UNAUTHENTICATED, "replayed"]);
    // Misdirected: addressed to another provider.
    const other = await signRequest({
      ...base,
      signer: alice.account,
      provider: chain.accounts[5]!.address as Address,
    });
    expect((await send(other)).reason).toBe("wrong-provider");
    // Wrong operation: a status request sent to delete.
    const wrongOp = await rpcError(
      callUnary(
        alice.node,
        alice.target,
        "delete",
        SignedRequestSchema,
        await signRequest({ ...base, signer: alice.account }),
        DeleteResponseSchema,
      ),
    );
    expect(wrongOp.reason).toBe("wrong-operation");
    // Oversized: over the configured 64 KiB request limit.
    const big = pod("big", [
      container("web", plain, {
        env: [
          { name: "X", kind: "value", value: "x".repeat(40_000) },
          { name: "Y", kind: "value", value: "y".repeat(40_000) },
        ],
      }),
    ]);
    const tooBig = await rpcError(provision(big, randomPodId()));
    expect(tooBig.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    // Another publisher cannot see or delete alice's pod: it does not exist for them.
    const foreign = await rpcError(status(webId, mallory));
    expect(foreign.code).toBe(ErrorCode.NOT_FOUND);
    // Body pod id different from the signed one.
    const mismatch = await rpcError(
      alice.call(
        "status",
        StatusRequestSchema,
        { podId: Buffer.from(randomPodId().slice(2), "hex") },
        StatusResponseSchema,
        webId,
      ),
    );
    expect([mismatch.code, mismatch.details.field]).toEqual([ErrorCode.INVALID_ARGUMENT, "pod_id"]);
    // Provisioning the same pod twice.
    const again = await rpcError(provision(pod("web", [container("web", plain)]), webId));
    expect(again.code).toBe(ErrorCode.ALREADY_EXISTS);
    // Refusals are counted in the metrics by protocol and code.
    const text = await (await fetch(daemon.info().metricsUrl)).text();
    expect(text).toContain('tpod_provider_requests_total{protocol="status",code="UNAUTHENTICATED"} 3');
    expect(text).toMatch(/tpod_provider_pods\{phase="running"\} 2/);
    expect(text).toContain("tpod_provider_provision_duration_seconds_count");
  });

  it("checks payment before pulling or starting anything", async () => {
    gate.refuse = true;
    try {
      const podId = randomPodId();
      const err = await rpcError(
        provision(pod("unpaid", [container("web", plain, { command: httpd() })]), podId),
      );
      expect([err.code, err.details.field]).toEqual([ErrorCode.PAYMENT_REQUIRED, "deposit"]);
      const before = await engine().listPods();
      expect(before.map((m) => m.podId)).not.toContain(
        daemon.state.listPods().find((x) => x.podId === podId)?.id ?? "none",
      );
      expect(daemon.state.listPods().some((x) => x.podId === podId)).toBe(false);
    } finally {
      gate.refuse = false;
    }
  });

  it("deletes a pod and everything of it", async () => {
    await alice.call(
      "delete",
      DeleteRequestSchema,
      { podId: Buffer.from(multiId.slice(2), "hex") },
      DeleteResponseSchema,
      multiId,
    );
    expect((await engine().listPods()).map((m) => m.podId)).not.toContain(multiEngineId);
    const { stdout: vols } = await run("podman", ["volume", "ls", "-q"]);
    expect(vols).not.toContain(multiEngineId);
    const { stdout: imgs } = await run("podman", ["images", "--format", "{{.Repository}}"]);
    expect(imgs).not.toContain(multiEngineId);
    const { stdout: nets } = await run("podman", ["network", "ls", "--format", "{{.Name}}"]);
    expect(nets).not.toContain(multiEngineId);
    expect((await status(multiId)).phase).toBe(PodPhase.DELETED);
    expect(gate.deleted).toContain(multiEngineId);
    expect(routes.routes.has(multiEngineId)).toBe(false);
    const again = await rpcError(
      alice.call(
        "delete",
        DeleteRequestSchema,
        { podId: Buffer.from(multiId.slice(2), "hex") },
        DeleteResponseSchema,
        multiId,
      ),
    );
    expect(again.code).toBe(ErrorCode.NOT_FOUND);
  });
});
