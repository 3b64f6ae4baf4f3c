// Admission is shared by provision and update: the same pods are refused for the same reasons, and the payment
// gate (the only check that reads the chain) is asked only after every local check passed.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { RpcError, type SignedCallContext } from "@trustedpods/p2p";
import { type Container, ErrorCode, type Pod, podToWire } from "@trustedpods/protocol";
import type { Hex } from "viem";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { PaymentGate, ProvisionPaymentRequest } from "../src/billing-seam.js";
import { type AdmissionDeps, admitProvision, admitUpdate } from "../src/handlers/admission.js";
import { enginePodId } from "../src/provision/translate.js";
import { StateDb } from "../src/state/db.js";

const PUBLISHER = "0x00000000000000000000000000000000000000aa" as const;
const CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
const DIGEST = `sha256:${"ab".repeat(32)}`;

/** Accepts every pod (like AllowAllPaymentGate) and records what it was asked. */
class CountingGate implements PaymentGate {
  readonly asked: ProvisionPaymentRequest[] = [];
  async checkProvision(req: ProvisionPaymentRequest): Promise<void> {
    this.asked.push(req);
  }
  async checkUpdate(req: ProvisionPaymentRequest): Promise<void> {
    this.asked.push(req);
  }
  onProvisioned(): void {}
  onDeleted(): void {}
}

function web(hostname?: string, extra: Partial<Container> = {}): Pod {
  return {
    name: "web",
    containers: [
      {
        name: "web",
        image: { kind: "ipfs", cid: CID, digest: DIGEST },
        command: [],
        args: [],
        env: [],
        ports: [{ containerPort: 80, protocol: "http", ...(hostname ? { hostname } : {}) }],
        volumeMounts: [],
        resources: { cpuMillis: 100n, memoryBytes: 32n << 20n, storageBytes: 0n, gpu: 0n },
        ...extra,
      },
    ],
    volumes: [],
    replicas: { min: 1, max: 1, idleSeconds: 0n },
  };
}

function signedBy(podId: Hex): SignedCallContext {
  // Admission reads only the verified signer and pod id of the call.
  return { request: { publisher: PUBLISHER, podId } } as unknown as SignedCallContext;
}

async function refusal(p: Promise<unknown>): Promise<{ code: ErrorCode; field: unknown }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RpcError);
  return { code: (err as RpcError).code, field: (err as RpcError).details.field };
}

describe("admission", () => {
  let dir: string;
  let state: StateDb;
  let gate: CountingGate;
  let deps: AdmissionDeps;
  const taken = `0x${"22".repeat(32)}` as Hex;
  const mine = `0x${"33".repeat(32)}` as Hex;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "tpod-admission-"));
    state = StateDb.open(dir);
    gate = new CountingGate();
    deps = { state, gate, chainId: 31337, baseDomain: "localhost", maxPods: 2 };
    // Another pod of this publisher holds shop.localhost; "mine" runs and may be updated.
    for (const [podId, host] of [
      [taken, "shop.localhost"],
      [mine, "mine.localhost"],
    ] as const)
      state.insertPod({
        id: enginePodId(PUBLISHER, podId),
        publisher: PUBLISHER,
        podId,
        manifest: new Uint8Array(),
        phase: "running",
        message: "",
        channel: null,
        endpoints: [{ container: "web", containerPort: 80, protocol: "http", hostname: host }],
        images: {},
      });
  });
  afterEach(async () => {
    state.close();
    await rm(dir, { recursive: true, force: true });
  });

  const body = (podId: Hex, pod: Pod) => ({ podId: Buffer.from(podId.slice(2), "hex"), pod: podToWire(pod) });

  it("provision and update refuse a taken or foreign hostname alike, without asking the gate", async () => {
    const fresh = `0x${randomBytes(32).toString("hex")}` as Hex;
    deps.maxPods = 10;
    for (const [host, code] of [
      ["shop.localhost", ErrorCode.ALREADY_EXISTS],
      ["bank.example.com", ErrorCode.INVALID_ARGUMENT],
    ] as const) {
      const provision = await refusal(admitProvision(deps, body(fresh, web(host)), signedBy(fresh)));
      const update = await refusal(admitUpdate(deps, body(mine, web(host)), signedBy(mine)));
      expect(provision).toEqual({ code, field: "hostname" });
      expect(update).toEqual(provision);
    }
    expect(gate.asked).toEqual([]);
  });

  it("refuses what the engine cannot run, and a full provider, before payment", async () => {
    const fresh = `0x${randomBytes(32).toString("hex")}` as Hex;
    const gpu = web(undefined, {
      resources: { cpuMillis: 100n, memoryBytes: 32n << 20n, storageBytes: 0n, gpu: 1n },
    });
    expect(await refusal(admitUpdate(deps, body(mine, gpu), signedBy(mine)))).toMatchObject({
      code: ErrorCode.FAILED_PRECONDITION,
    });
    // Two pods run and the provider takes two.
    expect(await refusal(admitProvision(deps, body(fresh, web()), signedBy(fresh)))).toMatchObject({
      code: ErrorCode.RESOURCE_EXHAUSTED,
    });
    expect(gate.asked).toEqual([]);
  });

  it("asks the gate last, with the signer's pod under its engine id", async () => {
    const fresh = `0x${randomBytes(32).toString("hex")}` as Hex;
    deps.maxPods = 10;
    const channel = { chainId: 31337n, paymentsContract: "0x0000000000000000000000000000000000000001" };
    const admitted = await admitProvision(
      deps,
      { ...body(fresh, web("new.localhost")), channel },
      signedBy(fresh),
    );
    expect(admitted.id).toBe(enginePodId(PUBLISHER, fresh));
    expect(gate.asked).toEqual([admitted]);
    expect(admitted.channel).toEqual(channel);
    // Someone else's pod id under this signer is simply not found.
    expect(await refusal(admitUpdate(deps, body(fresh, web()), signedBy(fresh)))).toEqual({
      code: ErrorCode.NOT_FOUND,
      field: "pod_id",
    });
  });
});
