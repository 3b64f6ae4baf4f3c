// Test-only: what tests of several packages (provider, cli, web) need to run a real provider: busybox images built
// with buildah, pushed to a publisher's IPFS node, and a provider daemon config for a dev chain. Not a package;
// tests import it by relative path instead of reaching into another package's test folder.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import type { DevChain } from "@trustedpods/chain/node";
import { createIpfsNode, type IpfsNode, pushImage } from "@trustedpods/ipfs";
import { openOciLayout } from "@trustedpods/oci";

const run = promisify(execFile);

export const haveTools = ["/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox"].every((p) => existsSync(p));

/** Builds busybox (with its applet links and /www/index.html) from scratch and writes it as an OCI layout. */
export async function buildBusyboxLayout(tmp: string, tag: string, index: string): Promise<string> {
  const { stdout } = await run("buildah", ["from", "scratch"]);
  const ctr = stdout.trim();
  const layout = path.join(tmp, `layout-${randomBytes(3).toString("hex")}`);
  try {
    await run("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await run("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    const www = path.join(tmp, "www");
    await mkdir(www, { recursive: true });
    await writeFile(path.join(www, "index.html"), index);
    await run("buildah", ["copy", ctr, www, "/www"]);
    await run("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await run("buildah", ["commit", "-q", ctr, tag]);
    await run("buildah", ["push", "-q", tag, `oci:${layout}:latest`]);
  } finally {
    await run("buildah", ["rm", ctr]).catch(() => {});
    await run("buildah", ["rmi", "-f", tag]).catch(() => {});
  }
  return layout;
}

export interface PushedImage {
  cid: string;
  digest: string;
}

export async function pushLayout(node: IpfsNode, layout: string): Promise<PushedImage> {
  const { cid, root } = await pushImage(node, await openOciLayout(layout));
  return { cid: cid.toString(), digest: root.root.digest };
}

export async function startPublisherIpfs(dir: string): Promise<IpfsNode> {
  return createIpfsNode({ dataDir: dir, listen: ["/ip4/127.0.0.1/tcp/0"] });
}

export function providerConfigYaml(o: {
  dataDir: string;
  chain: DevChain;
  accountKeyFile: string;
  owner: string;
  ipfsPeers: string[];
  maxRequestBytes?: number;
}): string {
  return `dataDir: ${JSON.stringify(o.dataDir)}
p2p:
  listen: ["/ip4/127.0.0.1/tcp/0"]
  inboundConnectionsPerSecondPerHost: 1000
chain:
  rpcUrl: ${JSON.stringify(o.chain.rpcUrl)}
  payments: ${JSON.stringify(o.chain.contracts.payments)}
  accountKeyFile: ${JSON.stringify(o.accountKeyFile)}
pricing:
  token: ${JSON.stringify(o.chain.contracts.token)}
  symbol: TPOD
  decimals: 18
  prices:
    cpu: 1000
    memory: 200
    storage: 3000
billing:
  minNoticeSeconds: 600
engine:
  owner: ${o.owner}
  publishHostIp: 127.0.0.1
  publicHost: 127.0.0.1
gateway:
  listen: 127.0.0.1:0
  baseDomain: localhost
attester: insecure-dev
ipfs:
  helia:
    listen: ["/ip4/127.0.0.1/tcp/0"]
    peers: ${JSON.stringify(o.ipfsPeers)}
metrics:
  listen: 127.0.0.1:0
limits:
  maxRequestBytes: ${o.maxRequestBytes ?? 65536}
  provisionTimeoutSeconds: 120
log:
  level: ${process.env.TPOD_TEST_LOG ?? "silent"}
`;
}

/** Polls `fn` every 200 ms until it gives a value, or fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
