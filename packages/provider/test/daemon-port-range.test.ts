// engine.hostPortRange end to end with real parts (Podman, anvil, Helia, libp2p): a daemon with a two-port
// range gives a pod's tcp endpoint a port from it, refuses a pod that needs more than the range has left with
// RESOURCE_EXHAUSTED before anything is recorded or started, keeps the pod's port across an update, and gives
// the port to another pod once the first is deleted.
import { randomBytes } from "node:crypto";
import {
  DeleteRequestSchema,
  DeleteResponseSchema,
  ErrorCode,
  type Pod,
  UpdateRequestSchema,
  UpdateResponseSchema,
} from "@trustedpods/protocol";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AllowAllPaymentGate } from "../src/billing-seam.js";
import { loadConfig } from "../src/config.js";
import { Daemon } from "../src/daemon.js";
import { NoGateway } from "../src/gateway-seam.js";
import { localPortFree } from "../src/provision/host-ports.js";
import {
  buildBusyboxLayout,
  container,
  type DaemonTestWorld,
  haveTools,
  httpGet,
  Publisher,
  type PushedImage,
  pod,
  podToWire,
  provisionPod,
  pushLayout,
  randomPodId,
  rpcRefusal,
  startDaemonTestWorld,
  stopDaemonTestWorld,
  waitFor,
} from "./daemon-helpers.js";

const uid = randomBytes(4).toString("hex");
if (!haveTools) console.warn("SKIP daemon-port-range.test.ts: podman, buildah or busybox-static missing");

let world: DaemonTestWorld | undefined;
let daemon: Daemon;
let alice: Publisher;
let image: PushedImage;
let range: { from: number; to: number };

/** Two consecutive ports this host has free on 127.0.0.1, below the ephemeral range. */
async function freeRange(): Promise<{ from: number; to: number }> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const from = 20000 + Math.floor(Math.random() * 12000);
    if ((await localPortFree("127.0.0.1", from)) && (await localPortFree("127.0.0.1", from + 1)))
      return { from, to: from + 1 };
  }
  throw new Error("no two consecutive free ports");
}

/** A busybox httpd answering on each of `ports` (all tcp endpoints), with VERSION in its environment. */
function webPod(name: string, ports: number[], version = "1"): Pod {
  const servers = ports.map((p) => `httpd -p ${p} -h /www`).join("; ");
  return pod(name, [
    container("web", image, {
      command: ["sh", "-c", `${servers}; exec sleep 100000`],
      env: [{ name: "VERSION", kind: "value", value: version }],
      ports: ports.map((containerPort) => ({ containerPort, protocol: "tcp" as const })),
    }),
  ]);
}

const podIdBytes = (podId: Hex) => Buffer.from(podId.slice(2), "hex");

beforeAll(async () => {
  if (!haveTools) return;
  range = await freeRange();
  world = await startDaemonTestWorld("tpod-port-range-", `r${uid}`, (yaml) =>
    yaml.replace(/^engine:\n/m, `engine:\n  hostPortRange: {from: ${range.from}, to: ${range.to}}\n`),
  );
  const layout = await buildBusyboxLayout(world.tmp, `localhost/tpod-rangetest-${uid}:latest`, "ranged\n");
  // Payment is not what this file tests: a gate that admits every pod, and no HTTP gateway (tcp ports only).
  daemon = await Daemon.start(loadConfig(world.cfgFile), {
    gate: new AllowAllPaymentGate(),
    routes: new NoGateway(),
  });
  image = await pushLayout(world.pubIpfs, layout);
  alice = await Publisher.forDaemon(world.chain, daemon, 2);
}, 180_000);

afterAll(async () => {
  if (!haveTools) return;
  await stopDaemonTestWorld(world, daemon, [alice]);
}, 120_000);

describe.skipIf(!haveTools)("provider daemon with engine.hostPortRange", () => {
  const kv = randomPodId();
  let kvAddr = "";

  it("gives a pod's tcp endpoint the range's first port", async () => {
    expect(daemon.config.engine.hostPortRange).toEqual(range);
    const res = await provisionPod(alice, world!.chain, kv, webPod("kv", [8080]));
    kvAddr = res.endpoints[0]!.target.value as string;
    expect(kvAddr).toBe(`127.0.0.1:${range.from}`);
    const page = await waitFor("httpd", async () => {
      const r = await httpGet(`http://${kvAddr}/`);
      return r.status === 200 && r.body;
    });
    expect(page).toBe("ranged\n");
  });

  it("refuses a pod needing more ports than the range has left, before recording or starting anything", async () => {
    const greedy = randomPodId();
    const before = (await daemon.engine.listPods()).map((m) => m.podId);
    const err = await rpcRefusal(provisionPod(alice, world!.chain, greedy, webPod("greedy", [8080, 8081])));
    expect(err.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    expect(err.details).toMatchObject({ reason: "host-port-range", field: "spec.containers[0].ports[1]" });
    expect(err.message).toBe(
      `this provider's host port range ${range.from}-${range.to} has no free tcp port left for web/8081 (the pod needs 2 new tcp ports, 1 is free)`,
    );
    // No pod row, no engine pod: nothing to roll back.
    expect(daemon.state.listPods().map((p) => p.podId)).toEqual([kv]);
    expect((await daemon.engine.listPods()).map((m) => m.podId)).toEqual(before);
  });

  it("keeps the pod's port across an update that replaces its container", async () => {
    const res = await alice.call(
      "update",
      UpdateRequestSchema,
      { podId: podIdBytes(kv), pod: podToWire(webPod("kv", [8080], "2")) },
      UpdateResponseSchema,
      kv,
    );
    expect(res.endpoints[0]!.target.value).toBe(kvAddr);
    const page = await waitFor("updated httpd", async () => {
      const r = await httpGet(`http://${kvAddr}/`);
      return r.status === 200 && r.body;
    });
    expect(page).toBe("ranged\n");
  });

  it("gives the deleted pod's port to the next pod", async () => {
    await alice.call("delete", DeleteRequestSchema, { podId: podIdBytes(kv) }, DeleteResponseSchema, kv);
    const next = randomPodId();
    const res = await provisionPod(alice, world!.chain, next, webPod("next", [8080, 8081]));
    const addrs = res.endpoints.map((e) => e.target.value as string);
    expect(addrs).toEqual([`127.0.0.1:${range.from}`, `127.0.0.1:${range.to}`]);
    const page = await waitFor("httpd on the second port", async () => {
      const r = await httpGet(`http://${addrs[1]}/`);
      return r.status === 200 && r.body;
    });
    expect(page).toBe("ranged\n");
  });
});
