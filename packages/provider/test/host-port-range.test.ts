// engine.hostPortRange without containers: the config's checks, and the allocator over a real SQLite state and
// real bind probes on this host's loopback (allocation, another program's port skipped, exhaustion refused
// without holding anything, concurrent provisions, reuse after a delete, an update keeping its ports).
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { RpcError } from "@trustedpods/p2p";
import { ErrorCode, type Pod } from "@trustedpods/protocol";
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, defaultConfigText, parseConfig } from "../src/config.js";
import { localPortFree } from "../src/provision/host-ports.js";
import {
  checkHostPortRange,
  HostPortAllocator,
  type HostPortRange,
  hostPortNeeds,
  hostPortsInUse,
} from "../src/provision/port-range.js";
import { type EndpointRecord, type PodPhaseName, StateDb } from "../src/state/db.js";

const PAYMENTS = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

function errorsOf(text: string): string[] {
  try {
    parseConfig(text, "p.yaml");
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

const withEngine = (lines: string) =>
  defaultConfigText({ payments: PAYMENTS }).replace(
    /^engine:\n/m,
    `engine:\n${lines
      .split("\n")
      .map((l) => `  ${l}`)
      .join("\n")}\n`,
  );

describe("engine.hostPortRange in the provider config", () => {
  it("is absent by default and read as {from, to} when given", () => {
    expect(parseConfig(defaultConfigText({ payments: PAYMENTS }), "p.yaml").engine.hostPortRange).toBe(
      undefined,
    );
    const c = parseConfig(withEngine("hostPortRange: {from: 20000, to: 20007}"), "p.yaml");
    expect(c.engine.hostPortRange).toEqual({ from: 20000, to: 20007 });
    // One port is a range too.
    expect(
      parseConfig(withEngine("hostPortRange: {from: 1024, to: 1024}"), "p.yaml").engine.hostPortRange,
    ).toEqual({ from: 1024, to: 1024 });
  });

  it("refuses privileged or impossible ports, a reversed range, missing or unknown keys, where they are", () => {
    expect(errorsOf(withEngine("hostPortRange: {from: 80, to: 2000}"))).toEqual([
      expect.stringMatching(
        /^p\.yaml:\d+:\d+: engine\.hostPortRange\.from must be an integer from 1024 to 65535$/,
      ),
    ]);
    expect(errorsOf(withEngine("hostPortRange: {from: 60000, to: 70000}"))).toEqual([
      expect.stringMatching(/engine\.hostPortRange\.to must be an integer from 1024 to 65535$/),
    ]);
    expect(errorsOf(withEngine("hostPortRange: {from: 20010, to: 20000}"))).toEqual([
      expect.stringMatching(/engine\.hostPortRange: from \(20010\) must not be above to \(20000\)$/),
    ]);
    expect(errorsOf(withEngine("hostPortRange: {from: 20000}"))).toEqual([
      expect.stringMatching(/engine\.hostPortRange needs "to" \(a port from 1024 to 65535\)$/),
    ]);
    expect(errorsOf(withEngine("hostPortRange: {from: 20000, to: 20001, size: 2}"))[0]).toMatch(
      /unknown key "size" in engine\.hostPortRange/,
    );
    expect(errorsOf(withEngine("hostPortRange: 20000-20007"))[0]).toMatch(
      /engine\.hostPortRange must be a mapping/,
    );
  });

  it("is a podman key: refused under the kubernetes engine, whose NodePorts have the cluster's range", () => {
    const issues = errorsOf(
      withEngine("hostPortRange: {from: 20000, to: 20007}\nkubeconfig: /etc/kube.yaml").replace(
        "  kind: podman",
        "  kind: kubernetes",
      ),
    );
    expect(issues).toEqual([
      expect.stringMatching(
        /engine\.hostPortRange applies to engine\.kind podman only \(kind is kubernetes\)$/,
      ),
    ]);
  });
});

// ------------------------------------------------------------------------------------------- the allocator

let tmp: string;
let db: StateDb;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-port-range-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});
// A state of its own per test: the ranges are random, so one test's records must not sit in another's range.
beforeEach(() => {
  db = StateDb.open(path.join(tmp, randomBytes(4).toString("hex")));
});
afterEach(() => db.close());

/** `count` consecutive ports this host has free on 127.0.0.1 (tcp and udp), below the ephemeral range. */
async function freeRange(count: number): Promise<HostPortRange> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const from = 20000 + Math.floor(Math.random() * 12000);
    let ok = true;
    for (let p = from; p < from + count && ok; p++)
      ok = (await localPortFree("127.0.0.1", p, "tcp")) && (await localPortFree("127.0.0.1", p, "udp"));
    if (ok) return { from, to: from + count - 1 };
  }
  throw new Error(`no ${count} consecutive free ports`);
}

function podWith(ports: { containerPort: number; protocol: "tcp" | "udp" | "http" }[]): Pod {
  return {
    name: "p",
    containers: [
      {
        name: "main",
        image: { kind: "ipfs", cid: "bafy", digest: `sha256:${"0".repeat(64)}` },
        command: [],
        args: [],
        env: [],
        ports,
        volumeMounts: [],
        resources: { cpuMillis: 100n, memoryBytes: 64n << 20n, storageBytes: 0n, gpu: 0n },
      },
    ],
    volumes: [],
    replicas: { min: 1, max: 1, idleSeconds: 0n },
  } as unknown as Pod;
}

/** A pod row in the state with these endpoints (as a finished provision leaves it). */
function recordPod(id: string, endpoints: EndpointRecord[], phase: PodPhaseName = "running"): void {
  db.insertPod({
    id,
    publisher: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    podId: `0x${randomBytes(32).toString("hex")}` as Hex,
    manifest: new Uint8Array([1]),
    phase,
    message: "",
    channel: null,
    endpoints,
    images: {},
  });
}

const tcpEndpoint = (containerPort: number, hostPort: number): EndpointRecord => ({
  container: "main",
  containerPort,
  protocol: "tcp",
  tcpAddress: `127.0.0.1:${hostPort}`,
  hostPort,
});

const newId = () => `p${randomBytes(16).toString("hex")}`;

function allocator(range: HostPortRange): HostPortAllocator {
  return new HostPortAllocator(
    range,
    (exceptId) => hostPortsInUse(db, exceptId),
    (port, transport) => localPortFree("127.0.0.1", port, transport),
  );
}

async function refusal(p: Promise<unknown>): Promise<RpcError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RpcError);
  return err as RpcError;
}

describe("HostPortAllocator", () => {
  it("gives each tcp and udp port the lowest free port of the range, per transport", async () => {
    const range = await freeRange(4);
    const a = allocator(range);
    const pod = podWith([
      { containerPort: 6379, protocol: "tcp" },
      { containerPort: 80, protocol: "http" },
      { containerPort: 53, protocol: "udp" },
      { containerPort: 6380, protocol: "tcp" },
    ]);
    const got = await a.assign(newId(), hostPortNeeds(pod), new Map());
    // http goes through the gateway: no host port. udp 53 may take the same number as tcp 6379.
    expect(Object.fromEntries(got)).toEqual({
      "main/6379": range.from,
      "main/53/udp": range.from,
      "main/6380": range.from + 1,
    });
  });

  it("skips a port of the range another program holds (bind probe)", async () => {
    const range = await freeRange(3);
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(range.from, "127.0.0.1", r));
    try {
      const got = await allocator(range).assign(
        newId(),
        hostPortNeeds(podWith([{ containerPort: 6379, protocol: "tcp" }])),
        new Map(),
      );
      expect(got.get("main/6379")).toBe(range.from + 1);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it("refuses a pod the range has no room for with RESOURCE_EXHAUSTED, holding nothing for it", async () => {
    const range = await freeRange(2);
    const a = allocator(range);
    const first = newId();
    recordPod(first, [tcpEndpoint(6379, range.from)]);
    const greedy = newId();
    const err = await refusal(
      a.assign(
        greedy,
        hostPortNeeds(
          podWith([
            { containerPort: 1, protocol: "tcp" },
            { containerPort: 2, protocol: "tcp" },
          ]),
        ),
        new Map(),
      ),
    );
    expect(err.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    expect(err.details).toMatchObject({ reason: "host-port-range", field: "spec.containers[0].ports[1]" });
    expect(err.message).toBe(
      `this provider's host port range ${range.from}-${range.to} has no free tcp port left for main/2 (the pod needs 2 new tcp ports, 1 is free)`,
    );
    // The one port it could have had is not held: another pod gets it.
    const other = await a.assign(
      newId(),
      hostPortNeeds(podWith([{ containerPort: 6379, protocol: "tcp" }])),
      new Map(),
    );
    expect(other.get("main/6379")).toBe(range.to);
  });

  it("never gives two concurrent provisions the same port, and frees held ports on release", async () => {
    const range = await freeRange(3);
    const a = allocator(range);
    const needs = hostPortNeeds(podWith([{ containerPort: 6379, protocol: "tcp" }]));
    const [x, y, z] = [newId(), newId(), newId()];
    const got = await Promise.all([x, y, z].map((id) => a.assign(id, needs, new Map())));
    const ports = got.map((m) => m.get("main/6379"));
    expect(new Set(ports).size).toBe(3);
    expect([...ports].sort()).toEqual([range.from, range.from + 1, range.from + 2]);
    // All three are held (not yet recorded): a fourth is refused; once y's operation ends without recording,
    // its port is free again.
    expect((await refusal(a.assign(newId(), needs, new Map()))).code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    a.release(y);
    expect((await a.assign(newId(), needs, new Map())).get("main/6379")).toBe(ports[1]);
  });

  it("reuses a deleted pod's port, and keeps an updated pod's port without taking a new one", async () => {
    const range = await freeRange(1);
    const a = allocator(range);
    const needs = hostPortNeeds(podWith([{ containerPort: 6379, protocol: "tcp" }]));
    const kv = newId();
    const first = await a.assign(kv, needs, new Map());
    a.release(kv);
    recordPod(kv, [tcpEndpoint(6379, first.get("main/6379")!)]);
    // An update asks again for what the record says (host-ports.ts): the full range is no obstacle.
    const updated = await a.assign(kv, needs, new Map([["main/6379", range.from]]));
    expect(Object.fromEntries(updated)).toEqual({ "main/6379": range.from });
    a.release(kv);
    // Another pod finds the range full while kv lives...
    expect((await refusal(a.assign(newId(), needs, new Map()))).code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    // ...and gets kv's port once kv is deleted.
    db.updatePod(kv, { phase: "deleted" });
    expect((await a.assign(newId(), needs, new Map())).get("main/6379")).toBe(range.from);
  });
});

describe("checkHostPortRange (admission: no probes, no side effects)", () => {
  it("refuses a provision whose new ports do not fit, and lets an update keep its recorded ones", () => {
    const range = { from: 30000, to: 30001 };
    const inUse = new Set(["30000/tcp"]);
    const one = podWith([{ containerPort: 6379, protocol: "tcp" }]);
    const two = podWith([
      { containerPort: 6379, protocol: "tcp" },
      { containerPort: 6380, protocol: "tcp" },
    ]);
    expect(() => checkHostPortRange(range, one, inUse, [])).not.toThrow();
    let err: unknown;
    try {
      checkHostPortRange(range, two, inUse, []);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    expect((err as RpcError).details).toMatchObject({
      reason: "host-port-range",
      field: "spec.containers[0].ports[1]",
    });
    // udp has the range to itself.
    expect(() =>
      checkHostPortRange(
        range,
        podWith([{ containerPort: 53, protocol: "udp" }]),
        new Set(["30000/tcp", "30001/tcp"]),
        [],
      ),
    ).not.toThrow();
    // An update of the pod holding 30001: its port stays, so a full range does not refuse it...
    const full = new Set(["30000/tcp"]);
    expect(() => checkHostPortRange(range, one, full, [tcpEndpoint(6379, 30001)])).not.toThrow();
    // ...but a second, new tcp port does not fit.
    expect(() => checkHostPortRange(range, two, full, [tcpEndpoint(6379, 30001)])).toThrow(
      /host port range 30000-30001 has no free tcp port left for main\/6380/,
    );
  });
});
