// What the quote handler's tests share: a pod priced from an IPFS image (no listing, so no chain read for terms)
// and the handler's deps for a provider config on a dev chain.
import { randomBytes } from "node:crypto";
import path from "node:path";
import type { DevChain } from "@trustedpods/chain/node";
import { type Pod, podToWire } from "@trustedpods/protocol";
import { type Address, hexToBytes } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { providerConfigYaml } from "../../../test-support/provider-world.js";
import { chainClock } from "../src/chain-clock.js";
import { parseConfig } from "../src/config.js";
import { type QuoteDeps, quote } from "../src/handlers/quote.js";

export const ipfsPod: Pod = {
  name: "quoted",
  containers: [
    {
      name: "web",
      image: {
        kind: "ipfs",
        cid: "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        digest: `sha256:${"ab".repeat(32)}`,
      },
      command: [],
      args: [],
      env: [],
      ports: [],
      volumeMounts: [],
      resources: { cpuMillis: 100n, memoryBytes: 64n << 20n, storageBytes: 0n, gpu: 0n },
    },
  ],
  volumes: [],
  replicas: { min: 1, max: 1, idleSeconds: 0n },
};

/** ipfsPod with its one container's ports replaced. */
export const withPorts = (ports: Pod["containers"][number]["ports"]): Pod => ({
  ...ipfsPod,
  containers: [{ ...ipfsPod.containers[0]!, ports }],
});

/** The quote handler's deps for dev account 1 as the provider, with `admission` as its pod table and limits. */
export function quoteDeps(chain: DevChain, tmp: string, admission: QuoteDeps["admission"]): QuoteDeps {
  const config = parseConfig(
    providerConfigYaml({
      dataDir: tmp,
      chain,
      accountKeyFile: path.join(tmp, "key"),
      owner: "o",
      ipfsPeers: [],
    }),
    "provider.yaml",
  );
  return {
    account: privateKeyToAccount(chain.accounts[1]!.privateKey),
    chainId: chain.chainId,
    config,
    billing: () => undefined,
    chain: async () => chain.context(1),
    clock: chainClock(async () => chain.context(1)),
    admission,
  };
}

/** Asks the handler for `publisher`'s quote of `pod` under `podId`. */
export function askQuote(deps: QuoteDeps, publisher: Address, podId: Uint8Array, pod: Pod = ipfsPod) {
  return quote(deps, {
    pod: podToWire(pod),
    nonce: randomBytes(16),
    publisher: hexToBytes(publisher),
    podId,
  });
}
