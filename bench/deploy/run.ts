// Time from deploy to the first successful HTTP answer on the devnet, split by step, against `podman run -d` of
// the same image to its first answer, in the same run.
//
//   npm run build && node bench/deploy/run.ts [--rounds 3]
//
// The devnet (chain, IPFS node, provider daemon with billing and gateway) runs in this process (startDevnet).
// Each round deploys a small busybox httpd image from the local Podman store exactly as `tpod deploy` does: a
// fresh upload IPFS node connected to the provider's own node, a fresh libp2p node, provider choice from the
// Registry, attestation, image push, quote, channel open, provision; then polls the pod's URL through the
// gateway until it answers 200.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startDevnet } from "@trustedpods/devnet";
import { createIpfsNode } from "@trustedpods/ipfs";
import { createP2PNode } from "@trustedpods/p2p";
import { parseManifest } from "@trustedpods/protocol";
import { connectNetwork, DEVNET_POLICY } from "@trustedpods/publisher";
import { deploy } from "@trustedpods/publisher/node";
import { privateKeyToAccount } from "viem/accounts";
import { buildBusyboxHttpdImage } from "../busybox-httpd.ts";

const exec = promisify(execFile);
const argRounds = process.argv.indexOf("--rounds");
const ROUNDS = argRounds > 0 ? Number(process.argv[argRounds + 1]) : 3;
const uid = randomBytes(4).toString("hex");
const IMAGE = `localhost/tpod-bench-deploy-${uid}:latest`;

function getOnce(port: number, host: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", headers: { host }, timeout: 2000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}

async function firstAnswer(port: number, host: string, t0: number): Promise<number> {
  for (;;) {
    if ((await getOnce(port, host)) === 200) return performance.now() - t0;
    if (performance.now() - t0 > 60_000) throw new Error("no answer within 60 s");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function podmanRound(): Promise<number> {
  const name = `tpod-bench-run-${uid}-${randomBytes(2).toString("hex")}`;
  const t0 = performance.now();
  await exec("podman", ["run", "-d", "--init", "--name", name, "-p", "127.0.0.1::8080", IMAGE]);
  const port = Number((await exec("podman", ["port", name, "8080"])).stdout.trim().split(":").pop());
  const ms = await firstAnswer(port, "127.0.0.1", t0);
  await exec("podman", ["rm", "-f", "-t", "0", name]).catch(() => {});
  return ms;
}

const manifest = `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: bench
spec:
  containers:
    - name: web
      image: ${IMAGE}
      ports:
        - containerPort: 8080
          http: {}
      resources: {cpu: 100m, memory: 32Mi, storage: 64Mi}
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), "tpod-bench-deploy-"));
  await buildBusyboxHttpdImage(tmp, IMAGE);
  const devnet = await startDevnet({
    home: join(tmp, "home"),
    gatewayPort: 0,
    chainPort: 0,
    engineOwner: `bench${uid}`,
    logLevel: "error",
  });
  const chain = devnet.chain;
  const network = {
    name: "devnet",
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    contracts: chain.contracts,
    isDevnet: true,
    sources: { rpcUrl: "bench", contracts: "bench" },
  };
  const account = privateKeyToAccount(devnet.info.publisher.privateKey);
  const rows: Record<string, number>[] = [];
  const baseline: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      baseline.push(await podmanRound());
      const t0 = performance.now();
      const [upload, node] = await Promise.all([
        createIpfsNode({ dataDir: join(tmp, `up-${round}`), listen: ["/ip4/127.0.0.1/tcp/0"] }),
        createP2PNode(),
      ]);
      for (const a of devnet.info.provider.ipfs) await upload.dial(a).catch(() => {});
      const tNodes = performance.now() - t0;
      const clients = await connectNetwork(network, { account });
      const tConnect = performance.now() - t0 - tNodes;
      const r = await deploy({
        pod: parseManifest(manifest, "bench.yaml"),
        network,
        clients,
        account,
        policy: { policy: DEVNET_POLICY, source: "devnet default" },
        node,
        ipfs: upload,
        minDepositSeconds: devnet.info.provider.minDepositSeconds,
        // The devnet provider waits for 1 confirmation and anvil mines only on transactions: mine one block
        // right after the channel opens, as a chain with instant blocks (or confirmations: 0) would.
        onProgress: (e) => {
          if (e.step === "channel" && e.phase === "done")
            void chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
        },
      });
      const tProvisioned = performance.now() - t0;
      const url = new URL(r.endpoints.http[0]!);
      const total = await firstAnswer(Number(url.port), url.host, t0);
      rows.push({
        "nodes (upload IPFS + libp2p)": tNodes,
        "chain connect": tConnect,
        ...Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, v ?? 0])),
        "start (provisioned → first 200)": total - tProvisioned,
        total,
      });
      await Promise.all([upload.stop(), node.stop()]);
      await rm(join(tmp, `up-${round}`), { recursive: true, force: true });
      console.error(
        `round ${round + 1}: deploy → first answer ${total.toFixed(0)} ms, podman run ${baseline.at(-1)!.toFixed(0)} ms`,
      );
    }
  } finally {
    await devnet.stop();
    await exec("buildah", ["rmi", "-f", IMAGE]).catch(() => {});
    await rm(tmp, { recursive: true, force: true });
  }
  const keys = Object.keys(rows[0]!);
  console.log(`| step (median of ${ROUNDS}) | ms |`);
  console.log("|---|---:|");
  for (const k of keys) console.log(`| ${k} | ${median(rows.map((r) => r[k]!)).toFixed(0)} |`);
  const p = median(baseline);
  const t = median(rows.map((r) => r.total!));
  console.log(`| baseline: podman run -d → first 200 | ${p.toFixed(0)} |`);
  console.log(
    `\nratio deploy / podman run: ${(t / p).toFixed(1)}x; target total <= 2000 ms: ${t <= 2000 ? "met" : "missed"}`,
  );
  console.log(JSON.stringify({ rounds: rows, baseline }));
}

await main();
