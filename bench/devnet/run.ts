// How long `tpod devnet up` takes to be ready, split by step, against starting the dev chain alone (its
// critical path) in the same run. Usage: node bench/devnet/run.ts [rounds] (default 3).
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startDevChain } from "@trustedpods/chain/node";
import { startDevnet } from "@trustedpods/devnet";

const rounds = Number(process.argv[2] ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const chainOnly: number[] = [];
const ready: number[] = [];
const stopMs: number[] = [];
const steps: Record<string, number[]> = {};
for (let i = 0; i < rounds; i++) {
  let t = performance.now();
  const chain = await startDevChain({ port: 0 });
  chainOnly.push(performance.now() - t);
  await chain.stop();

  const home = await mkdtemp(path.join(tmpdir(), "tpod-bench-devnet-"));
  t = performance.now();
  const net = await startDevnet({
    home,
    chainPort: 0,
    gatewayPort: 0,
    engineOwner: `bench-${randomBytes(3).toString("hex")}`,
    logLevel: "silent",
  });
  ready.push(performance.now() - t);
  for (const [k, v] of Object.entries(net.info.timings)) {
    steps[k] ??= [];
    steps[k].push(v);
  }
  t = performance.now();
  await net.stop();
  stopMs.push(performance.now() - t);
  await rm(home, { recursive: true, force: true });
}

const r = (x: number) => Math.round(x);
const sumSteps = Object.values(steps).reduce((s, v) => s + median(v), 0);
console.log(`rounds: ${rounds} (medians in ms)`);
console.log(`baseline: dev chain alone (anvil + contracts + minting)  ${r(median(chainOnly))}`);
console.log(
  `tpod devnet up, ready                                    ${r(median(ready))}  (${(median(ready) / median(chainOnly)).toFixed(2)}x the chain alone)`,
);
for (const [k, v] of Object.entries(steps)) console.log(`  step ${k.padEnd(10)} ${r(median(v))}`);
console.log(`  sum of the steps (if run one after another)            ${r(sumSteps)}`);
console.log(`stop (pods removed, everything closed)                   ${r(median(stopMs))}`);
