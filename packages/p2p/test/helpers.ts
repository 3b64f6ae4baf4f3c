import type { Multiaddr } from "@multiformats/multiaddr";
import { createP2PNode, type P2PNode, type P2PTransport } from "../src/index.js";

/**
 * A provider-like node listening on loopback with random ports, on TCP and WebSockets. Every test publisher
 * dials from 127.0.0.1, so libp2p's default of 5 new connections per second per host would refuse some.
 */
export async function startProvider(): Promise<P2PNode> {
  return createP2PNode({
    listen: ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"],
    inboundConnectionsPerSecondPerHost: 1000,
  });
}

/** A publisher-like node that listens nowhere. */
export async function startPublisher(transports?: P2PTransport[]): Promise<P2PNode> {
  return createP2PNode(transports === undefined ? {} : { transports });
}

/** The provider's listen address of one transport kind, with its /p2p/ peer id. */
export function addressOf(node: P2PNode, kind: P2PTransport): Multiaddr {
  const found = node.getMultiaddrs().find((ma) => {
    const isWs = ma.toString().includes("/ws");
    return kind === "ws" ? isWs : !isWs;
  });
  if (found === undefined) throw new Error(`node has no ${kind} address: ${node.getMultiaddrs().join(", ")}`);
  return found;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/** Waits until `check` holds, polling; fails after `ms` so a broken test does not hang. */
export async function eventually(check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not reached in time");
    await sleep(10);
  }
}
