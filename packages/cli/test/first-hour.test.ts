// A new user's first hour on the devnet (issue #16), end to end against the real devnet as `tpod devnet up`
// composes it (anvil, the provider daemon with billing and gateway, Podman, Helia, libp2p): how long a deposit
// runs and the warnings before it runs out, the deposit margin explained, a run-out pod's status, delete of a
// pod the provider already removed, close and status from the chain alone, settled figures, tokens everywhere,
// `tpod balance`, the `tpod pods` table with pods deployed elsewhere, and per-step deploy deadlines.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { channelHistory, getChannel } from "@trustedpods/chain";
import type { DevChain } from "@trustedpods/chain/node";
import { DEVNET_BILLING, type Devnet } from "@trustedpods/devnet";
import { createP2PNode, type P2PNode } from "@trustedpods/p2p";
import { formatTokenAmount, parseManifest } from "@trustedpods/protocol";
import type { Daemon } from "@trustedpods/provider";
import type { DeployProgress } from "@trustedpods/publisher";
import {
  connectNetwork,
  DEFAULT_RUN_SECONDS,
  DEVNET_POLICY,
  loadPodChannels,
  PublisherError,
  type ResolvedNetwork,
  roundUpAmount,
} from "@trustedpods/publisher";
import { deploy } from "@trustedpods/publisher/node";
import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBusyboxImage, type CliDevnet, cli, startCliDevnet } from "../../../test-support/cli-devnet.js";
import { haveTools } from "../../../test-support/provider-world.js";

const exec = promisify(execFile);
if (!haveTools) console.warn("SKIP: first-hour tests need podman, buildah and busybox-static");

const uid = randomBytes(4).toString("hex");
const IMAGE = `localhost/tpod-first-${uid}:latest`;
const LONG_NAME = "a-rather-long-pod-name-that-does-not-fit-a-column";
let tmp: string;
let chain: DevChain;
let daemon: Daemon;
let devnet: Devnet;
let node: P2PNode;
let network: ResolvedNetwork;
/** The CLI's key on the devnet. */
let publisher: Address;

const manifest = (name: string) => `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: ${name}
spec:
  containers:
    - name: web
      image: ${IMAGE}
      command: [sh, -c]
      args: ["mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"]
      ports:
        - containerPort: 8080
          http: {}
      resources: {cpu: 100m, memory: 32Mi, storage: 64Mi}
      volumeMounts:
        - {name: data, mountPath: /data}
  volumes:
    - name: data
      persistent: {size: 64Mi}
`;

async function manifestFile(name: string): Promise<string> {
  const f = join(tmp, `${name}.yaml`);
  await writeFile(f, manifest(name));
  return f;
}

let world: CliDevnet;
const advance = (seconds: number) => world.advance(seconds);
const tokenBalance = (who: Address) => world.tokenBalance(who);

beforeAll(async () => {
  if (!haveTools) return;
  world = await startCliDevnet({
    tmpPrefix: "tpod-first-hour-",
    engineOwner: `fh${uid}`,
    alongside: [buildBusyboxImage(IMAGE)],
  });
  ({ tmp, chain, daemon, devnet, network } = world);
  publisher = privateKeyToAccount(chain.accounts[2]!.privateKey).address;
  node = await createP2PNode();
}, 240_000);

afterAll(async () => {
  if (!haveTools) return;
  await node?.stop();
  await world?.stop();
  await exec("buildah", ["rmi", "-f", IMAGE]).catch(() => {});
}, 120_000);

interface Deployed {
  podId: Hex;
  channel: Hex;
  terms: { ratePerSecond: string; deposit: string };
  runway: { paidSeconds: string | null; runsOutAt: string | null; low: boolean };
  warnings: string[];
}

describe.skipIf(!haveTools)("a new user's first hour", () => {
  let long: Deployed;
  let short: Deployed;
  /** A pod of the CLI's key that is in no local record: deployed elsewhere (the web app, another machine). */
  let elsewhere: { podId: Hex; channel: Hex };
  let rate: bigint;

  it("deploy says how long the default deposit runs (hours, not minutes), in tokens, and --json carries it", async () => {
    const d = await cli(["deploy", await manifestFile(LONG_NAME), "--json"]);
    expect(d.code, d.err).toBe(0);
    long = JSON.parse(d.out) as Deployed;
    rate = BigInt(long.terms.ratePerSecond);
    // The default pays for DEFAULT_RUN_SECONDS (rounded up to two significant digits), not the 600 s minimum.
    expect(BigInt(long.terms.deposit)).toBe(roundUpAmount(rate * BigInt(DEFAULT_RUN_SECONDS)));
    const paid = BigInt(long.runway.paidSeconds!);
    expect(paid).toBe(BigInt(long.terms.deposit) / rate);
    expect(paid).toBeGreaterThanOrEqual(BigInt(DEFAULT_RUN_SECONDS));
    const opened = await getChannel(chain.context(2, 0), {
      publisher,
      provider: daemon.info().provider,
      podId: long.podId,
    });
    // The provider waives the seconds between the opening and the pod serving (it moves `since` forward with its
    // first claim), so the run-out said at deploy can only come earlier than the chain's, never later.
    const runsOutAt = BigInt(long.runway.runsOutAt!);
    expect(runsOutAt).toBeLessThanOrEqual(opened.since + paid);
    expect(runsOutAt).toBeGreaterThan(opened.since + paid - 600n);
    expect([long.runway.low, long.warnings]).toEqual([false, []]);

    // A deposit that runs out soon: said on stdout in tokens, warned about on stderr, flagged in --json.
    const funds = formatTokenAmount(rate * 700n, 18);
    const h = await cli(["deploy", await manifestFile("short"), "--funds", funds]);
    expect(h.code, h.err).toBe(0);
    expect(h.out).toMatch(
      new RegExp(
        `^channel 0x[0-9a-f]{64}: ${funds.replace(".", "\\.")} TPT at [0-9.]+ TPT/hour, pays for 11 min \\(until \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\)`,
        "m",
      ),
    );
    expect(h.err).toContain("warning: this deposit pays for only 11 min: then the provider stops the pod");
    const pods = JSON.parse((await cli(["pods", "--json", "--no-status"])).out) as (Deployed & {
      name: string;
      lowRunway: boolean;
    })[];
    const listed = pods.find((p) => p.name === "short")!;
    expect(listed.lowRunway).toBe(true);
    short = listed;
  }, 240_000);

  it("a deposit below the minimum plus the margin names the margin, why, and what the suggestion pays for", async () => {
    const balance = await tokenBalance(publisher);
    const funds = formatTokenAmount(rate * 608n, 18);
    const r = await cli(["deploy", await manifestFile("tiny"), "--funds", funds, "--json"]);
    expect(r.code).toBe(1);
    const min = DEVNET_BILLING.minDepositSeconds;
    const suggested = formatTokenAmount(roundUpAmount(rate * BigInt(min + 60)), 18);
    expect(r.err).toContain(`the provider wants ${min} s paid in advance (`);
    expect(r.err).toContain(
      "and deploy adds a 60 s margin because the deposit starts paying when the channel opens, a few blocks before the provider checks it: 660 s at ",
    );
    expect(r.err).toContain(
      `You offered 608 s (${funds} TPT); use --funds ${suggested} (660 s, rounded up) or more.`,
    );
    expect(r.err).toContain("Without --funds, deploy pays for 6 h 0 min.");
    const e = JSON.parse(r.out) as { error: { code: string; details: Record<string, string> } };
    expect(e.error.code).toBe("DEPOSIT_TOO_SMALL");
    expect(e.error.details).toMatchObject({ minSeconds: "600", marginSeconds: "60", needSeconds: "660" });
    expect(await tokenBalance(publisher)).toBe(balance);
  }, 120_000);

  it("every deploy step has a deadline: a step that hangs fails with STEP_TIMEOUT naming it, before any money moves", async () => {
    const account = privateKeyToAccount(chain.accounts[2]!.privateKey);
    const clients = await connectNetwork(network, { account });
    const balance = await tokenBalance(publisher);
    const events: DeployProgress[] = [];
    const err = await deploy({
      pod: parseManifest(manifest("hang"), "hang.yaml"),
      network,
      clients,
      account,
      policy: { policy: DEVNET_POLICY, source: "devnet default" },
      node,
      ipfs: devnet.ipfs,
      // Reading the local image never finishes (a wedged Podman, say).
      openLocalImage: () => new Promise(() => {}),
      stepTimeoutsMs: { upload: 2000 },
      onProgress: (e) => events.push(e),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublisherError);
    expect((err as PublisherError).code).toBe("STEP_TIMEOUT");
    expect((err as PublisherError).field).toBe("upload");
    expect((err as PublisherError).message).toMatch(
      /^deploy step "upload" \(pushing local images to IPFS\) did not finish within 2 s/,
    );
    expect(events.some((e) => e.step === "channel")).toBe(false);
    expect(await tokenBalance(publisher)).toBe(balance);
  }, 120_000);

  it("pods: a header, aligned columns, truncated names, low runway flagged, pods deployed elsewhere included", async () => {
    // Deployed by the same key without the CLI's local record, as the web app does.
    const account = privateKeyToAccount(chain.accounts[2]!.privateKey);
    const r = await deploy({
      pod: parseManifest(manifest("from-web"), "from-web.yaml"),
      network,
      clients: await connectNetwork(network, { account }),
      account,
      policy: { policy: DEVNET_POLICY, source: "devnet default" },
      node,
      ipfs: devnet.ipfs,
    });
    elsewhere = { podId: r.podId, channel: r.channel };
    const p = await cli(["pods"]);
    expect(p.code, p.err).toBe(0);
    const lines = p.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^POD +NAME +STATUS +CHANNEL +LEFT +PROVIDER$/);
    const cols = ["NAME", "STATUS", "CHANNEL", "LEFT", "PROVIDER"].map((h) => lines[0]!.indexOf(h));
    const row = (id: Hex) => lines.find((l) => l.startsWith(id.slice(0, 10)))!;
    for (const id of [long.podId, short.podId, elsewhere.podId]) {
      const l = row(id);
      // Every cell starts where its header does: the columns line up whatever the names.
      for (const c of cols) expect(l[c - 1]).toBe(" ");
      for (const c of cols) expect(l[c]).not.toBe(" ");
    }
    expect(row(long.podId)).toContain(`${LONG_NAME.slice(0, 23)}…`);
    expect(row(long.podId)).not.toContain(LONG_NAME);
    expect(row(long.podId)).toMatch(/ running +open +6 h \d+ min +0x/);
    expect(row(short.podId)).toMatch(/ short +running +open +1[01] min ! +0x/);
    expect(row(elsewhere.podId)).toMatch(/ - +running +open +6 h/);
    expect(p.out).toContain("! runs out within 1 h 0 min");
    const json = JSON.parse((await cli(["pods", "--json"])).out) as {
      podId: Hex;
      recorded: boolean;
      name: string | null;
    }[];
    expect(json.find((x) => x.podId === elsewhere.podId)).toMatchObject({ recorded: false, name: null });
    expect(json.find((x) => x.podId === long.podId)).toMatchObject({ recorded: true, name: LONG_NAME });
  }, 240_000);

  it("status speaks tokens and warns before the deposit runs out; balance shows token and gas", async () => {
    const s = await cli(["status", "short"]);
    expect(s.code, s.err).toBe(0);
    expect(s.out).toMatch(
      /billing running: deposit [0-9.]+ TPT, claimed [0-9.]+ TPT, accrued [0-9.]+ TPT, at [0-9.]+ TPT\/hour/,
    );
    expect(s.out).toMatch(
      /warning: the deposit runs out in 1?\d min \(at \d{4}-[\d-]+T[\d:]+Z\): then the provider stops the pod, and deletes it with its volumes after the 60 s notice unless topped up; `tpod fund short AMOUNT` adds time/,
    );
    // No raw base units for people: neither the deposit nor the rate per second.
    expect(s.out).not.toContain(String(rate * 700n));
    expect(s.out).not.toContain(`${rate}`);
    expect(JSON.parse((await cli(["status", "short", "--json"])).out).lowRunway).toBe(true);

    const b = await cli(["balance", "--json"]);
    expect(b.code, b.err).toBe(0);
    const bal = JSON.parse(b.out);
    expect(bal.address).toBe(publisher);
    expect(BigInt(bal.token.balance)).toBe(await tokenBalance(publisher));
    expect(bal.token.symbol).toBe("TPT");
    expect(BigInt(bal.gas.balance)).toBe(await chain.publicClient.getBalance({ address: publisher }));
    const human = await cli(["balance"]);
    expect(human.out).toMatch(/^token +[0-9.]+ TPT {2}\(0x[0-9a-fA-F]{40}\)$/m);
    expect(human.out).toMatch(/^gas +[0-9.]+ ETH$/m);
  }, 120_000);

  it("status and close work from the chain alone: a pod in no local record, by pod id prefix or channel id", async () => {
    const st = await cli(["status", elsewhere.podId.slice(0, 12), "--json"]);
    expect(st.code, st.err).toBe(0);
    expect(JSON.parse(st.out)).toMatchObject({ phase: "running", channel: elsewhere.channel });
    const c = await cli(["close", elsewhere.channel, "--json"]);
    expect(c.code, c.err).toBe(0);
    expect(JSON.parse(c.out)).toMatchObject({ podId: elsewhere.podId, state: "closing" });
    const none = await cli(["close", `0x${"ab".repeat(32)}`]);
    expect(none.code).toBe(1);
    expect(none.err).toContain("nor among the channels");
  }, 120_000);

  // Moves the chain's clock ahead of the wall clock: after every deploy.
  it("after a run-out status says when it ran out (no null); delete of the removed pod still closes its channel; settled figures are real", async () => {
    // Just past the run-out, inside the notice period that follows it.
    const key = { publisher, provider: daemon.info().provider, podId: short.podId };
    const opened = await getChannel(chain.context(2, 0), key);
    const head = (await chain.publicClient.getBlock()).timestamp;
    await advance(Number(opened.since + 700n - head) + 5);
    await daemon.billing!.tick();
    const s = await cli(["status", "short"]);
    expect(s.code, s.err).toBe(0);
    expect(s.out).not.toContain("null");
    expect(s.out).toMatch(
      /warning: the deposit ran out at \d{4}-[\d-]+T[\d:]+Z: the pod is stopped, and it and its volumes are deleted at \d{4}/,
    );
    expect(s.out).toMatch(/provider: stopped: the deposit ran out at \d+;/);

    // The notice passes without a top-up: the provider removes the pod and its volumes.
    await advance(DEVNET_BILLING.minNoticeSeconds + 5);
    await daemon.billing!.tick();
    const before = await tokenBalance(publisher);
    const del = await cli(["delete", "short", "--json"]);
    expect(del.code, del.err).toBe(0);
    let closed = JSON.parse(del.out);
    expect(closed).toMatchObject({ deleted: true, alreadyGone: true });
    const ch = await getChannel(chain.context(2, 0), key);
    expect(ch.finalized || ch.closeAt !== 0n).toBe(true);
    // Close until settled (the delete may have settled it already); the refund arrives.
    if (closed.state === "waiting" || closed.state === "closing") {
      await advance(DEVNET_BILLING.minNoticeSeconds + 1);
      closed = JSON.parse((await cli(["close", "short", "--json"])).out);
    }
    expect(closed.state).toBe("refunded");
    expect(await tokenBalance(publisher)).toBe(before + BigInt(closed.refunded));
    // Asked again, the settled channel reports what really happened, from its events (not zeros).
    const again = await cli(["close", "short", "--json"]);
    const settled = JSON.parse(again.out);
    const fin = (await channelHistory(chain.context(2, 0), short.channel)).find(
      (e) => e.eventName === "ChannelFinalized",
    )!.args as { claimed: bigint; refund: bigint };
    expect(settled).toMatchObject({
      state: "settled",
      refunded: fin.refund.toString(),
      claimed: fin.claimed.toString(),
      deposit: (fin.claimed + fin.refund).toString(),
    });
    expect(fin.claimed).toBeGreaterThan(0n);
    expect(BigInt(settled.deposit)).toBe(rate * 700n);
    const human = await cli(["close", "short"]);
    expect(human.out).toMatch(
      /^channel already settled: [0-9.]+ TPT was returned to you; the provider got [0-9.]+ TPT of the [0-9.]+ TPT deposit$/m,
    );
    // The web app's My pods: the settled pod shows as closed with its figures, not "0 units per hour".
    const web = await loadPodChannels(chain.context(2, 0), publisher);
    const shown = web.find((p) => p.podId === short.podId)!;
    expect(shown.state).toBe("closed");
    expect(shown.settlement).toEqual({ claimed: fin.claimed, refunded: fin.refund, deposit: rate * 700n });
    expect(shown.formatted.perHour).toMatch(/ TPT$/);
    expect(shown.formatted.refunded).toBe(`${formatTokenAmount(fin.refund, 18)} TPT`);
    // And in the list, with the rest.
    const row = (await cli(["pods", "--no-status"])).out
      .split("\n")
      .find((l) => l.startsWith(short.podId.slice(0, 10)));
    expect(row).toMatch(/ short +- +settled +- +0x/);
  }, 240_000);

  it("dev earnings and withdraw speak tokens too", async () => {
    const e = await cli(["dev", "earnings"]);
    expect(e.code, e.err).toBe(0);
    expect(e.out).toMatch(/^royalties 0 TPT, fees 0 TPT, withdrawn 0 TPT, withdrawable 0 TPT \(token 0x/m);
  }, 60_000);
});
