// A provider at its pod limit (limits.maxPods) refused new pods only at provision: the publisher had already
// opened a channel with a deposit (gas spent, the deposit locked until its notice ran out) for a pod that would
// never run. The quote is the step before any money moves, so it must refuse a new pod when there is no room,
// and still quote a pod the provider already runs (an update changes no pod count). Likewise a hostname another
// pod holds, and tcp ports that do not fit the host port range: provision refused them only after the channel was
// open.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { ErrorCode, type Pod } from "@trustedpods/protocol";
import { bytesToHex, getAddress } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { enginePodId } from "../src/provision/translate.js";
import { StateDb } from "../src/state/db.js";
import { rpcRefusal } from "./daemon-helpers.js";
import { askQuote, quoteDeps, withPorts } from "./quote-helpers.js";

let chain: DevChain;
let tmp: string;
let state: StateDb;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-quote-capacity-"));
  chain = await startDevChain({ devnetRelease: false });
  state = StateDb.open(path.join(tmp, "state"));
}, 120_000);
afterAll(async () => {
  state?.close();
  await chain?.stop();
  await rm(tmp, { recursive: true, force: true });
});

it("quotes no new pod when the provider runs as many as it accepts, and still quotes the pods it runs", async () => {
  const publisher = getAddress(chain.accounts[2]!.address);
  const deps = quoteDeps(chain, tmp, { state, maxPods: 2, baseDomain: "localhost" });
  const ask = (podId: Uint8Array, p?: Pod) => askQuote(deps, publisher, podId, p);

  // Two pods run (one of them stopped by billing: it still holds its place), a third was deleted.
  const ids = [randomBytes(32), randomBytes(32), randomBytes(32)];
  const phases = ["running", "stopped", "deleted"] as const;
  for (const [i, id] of ids.entries())
    state.insertPod({
      id: enginePodId(publisher, bytesToHex(id)),
      publisher,
      podId: bytesToHex(id),
      manifest: new Uint8Array(),
      phase: phases[i]!,
      message: "",
      channel: null,
      endpoints: [
        { container: "web", containerPort: 8080, protocol: "http", hostname: `shop${i}.localhost` },
      ],
      images: {},
    });
  expect(state.countActivePods()).toBe(2);

  const full = await rpcRefusal(ask(randomBytes(32)));
  expect(full.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
  expect(full.details.reason).toBe("max-pods");
  expect(full.message).toContain("2 pods");
  // The deleted pod's id is a new pod too.
  expect((await rpcRefusal(ask(ids[2]!))).code).toBe(ErrorCode.RESOURCE_EXHAUSTED);

  // An update of a pod that runs is quoted: it takes no new place.
  const update = await ask(ids[0]!);
  expect(update.quote?.podId).toEqual(ids[0]);
  expect((await ask(ids[1]!)).quote).toBeDefined();

  // With room again (the limit raised), a new pod is quoted.
  deps.admission.maxPods = 3;
  expect((await ask(randomBytes(32))).quote).toBeDefined();

  // A hostname a running pod holds is refused to a new pod at quote, and kept by its own pod's update.
  const named = (hostname: string) => withPorts([{ containerPort: 8080, protocol: "http", hostname }]);
  const taken = await rpcRefusal(ask(randomBytes(32), named("shop0.localhost")));
  expect(taken.code).toBe(ErrorCode.ALREADY_EXISTS);
  expect(taken.details.field).toBe("hostname");
  expect((await ask(ids[0]!, named("shop0.localhost"))).quote).toBeDefined();
  // A deleted pod's hostname is free again.
  expect((await ask(randomBytes(32), named("shop2.localhost"))).quote).toBeDefined();
}, 120_000);

it("quotes no pod whose tcp ports do not fit into the provider's host port range", async () => {
  const publisher = getAddress(chain.accounts[3]!.address);
  const deps = quoteDeps(chain, tmp, {
    state,
    maxPods: 100,
    baseDomain: "localhost",
    hostPortRange: { from: 30000, to: 30001 },
  });
  const ports = (n: number) =>
    withPorts(Array.from({ length: n }, (_, i) => ({ containerPort: 6000 + i, protocol: "tcp" as const })));
  const ask = (p: Pod) => askQuote(deps, publisher, randomBytes(32), p);
  expect((await ask(ports(2))).quote).toBeDefined();
  const tooMany = await rpcRefusal(ask(ports(3)));
  expect(tooMany.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
  expect(tooMany.details.reason).toBe("host-port-range");
}, 60_000);
