import { generateKeyPair } from "@libp2p/crypto/keys";
import type { ConnectionGater, Ed25519PrivateKey, Libp2p } from "@libp2p/interface";
import { noise } from "@libp2p/noise";
import { tcp } from "@libp2p/tcp";
import { webSockets } from "@libp2p/websockets";
import { yamux } from "@libp2p/yamux";
import { createLibp2p } from "libp2p";

export type P2PTransport = "tcp" | "ws";

export interface P2PNodeOptions {
  /** The node's identity; a provider passes a persistent key (loadOrCreatePeerKey). Generated when omitted. */
  privateKey?: Ed25519PrivateKey;
  /**
   * Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/4001` and `/ip4/0.0.0.0/tcp/4002/ws`. Empty (the default)
   * for a node that only dials, like a publisher's.
   */
  listen?: string[];
  /** Addresses to announce instead of the listen addresses (e.g. a public DNS name in front of a NAT). */
  announce?: string[];
  /** Transports to enable; both by default so a node can dial either kind of provider address. */
  transports?: P2PTransport[];
  /** Upper bound on open connections. */
  maxConnections?: number;
  /** How long one dial may take, in ms. */
  dialTimeoutMs?: number;
  /**
   * New inbound connections accepted per second from one IP address (libp2p's default is 5); more are reset
   * during the handshake. Raise it for a provider many publishers reach through one NAT.
   */
  inboundConnectionsPerSecondPerHost?: number;
  /** Optional gate, e.g. to refuse peers a provider has banned. */
  connectionGater?: ConnectionGater;
}

export type P2PNode = Libp2p;

// yamux lets a stream's receive window grow to 16 MiB by default, and a paused stream resets once its read
// buffer exceeds maxReadBufferLength (4 MiB by default). Capping the window below the buffer means a stream we
// paused for backpressure (see FrameReader) is never reset for buffering what the peer was allowed to send.
const MAX_STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
const MAX_READ_BUFFER_BYTES = 2 * MAX_STREAM_WINDOW_BYTES;
/**
 * The shortest wait for a connection's liveness ping before libp2p aborts the connection (its default: 5 s). A
 * provider busy unpacking an image, or running in a guest under emulation, can stall that long, and the abort
 * cuts every call in flight on the connection (a deploy's provision among them).
 */
const PING_TIMEOUT_MIN_MS = 30_000;

/**
 * A libp2p node for either side of Trusted Pods: TCP and/or WebSockets, Noise, yamux, and nothing that reaches
 * out on its own: no bootstrap list, no mDNS, no UPnP, no relays, no DHT, no identify-driven autodial. It only
 * talks to peers it is told to dial or that dial it. The node is started before it is returned.
 */
export async function createP2PNode(options: P2PNodeOptions = {}): Promise<P2PNode> {
  const privateKey = options.privateKey ?? (await generateKeyPair("Ed25519"));
  const kinds = options.transports ?? ["tcp", "ws"];
  if (kinds.length === 0) throw new Error("at least one transport is required");
  return createLibp2p({
    privateKey,
    nodeInfo: { name: "trusted-pods" },
    addresses: {
      listen: options.listen ?? [],
      ...(options.announce === undefined ? {} : { announce: options.announce }),
    },
    transports: kinds.map((kind) => (kind === "tcp" ? tcp() : webSockets())),
    connectionEncrypters: [noise()],
    streamMuxers: [
      yamux({
        streamOptions: {
          maxStreamWindowSize: MAX_STREAM_WINDOW_BYTES,
          maxReadBufferLength: MAX_READ_BUFFER_BYTES,
        },
      }),
    ],
    peerDiscovery: [],
    services: {},
    connectionMonitor: { pingTimeout: { minTimeout: PING_TIMEOUT_MIN_MS } },
    connectionManager: {
      ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
      ...(options.dialTimeoutMs === undefined ? {} : { dialTimeout: options.dialTimeoutMs }),
      ...(options.inboundConnectionsPerSecondPerHost === undefined
        ? {}
        : { inboundConnectionThreshold: options.inboundConnectionsPerSecondPerHost }),
    },
    ...(options.connectionGater === undefined ? {} : { connectionGater: options.connectionGater }),
  });
}
