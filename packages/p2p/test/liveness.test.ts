// A peer that stops answering for a while (a provider busy unpacking an image, or a guest under emulation) must
// not lose its connection: libp2p pings every connection each 10 s and, by default, aborts one whose ping takes
// longer than 5 s, cutting a deploy or delete call in flight. The peer here is a real libp2p node in a child
// process whose event loop is blocked for 17 s (longer than a ping interval plus libp2p's default timeout).
import { spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { multiaddr } from "@multiformats/multiaddr";
import { afterAll, describe, expect, it } from "vitest";
import { createP2PNode, type P2PNode } from "../src/index.js";

const BLOCK_MS = 17_000;
const repo = path.resolve(import.meta.dirname, "../../..");
// The built package (a child process cannot load the TypeScript sources); the test command builds first.
const peerScript = `
import { createP2PNode } from "@trustedpods/p2p";
import { createInterface } from "node:readline";
const node = await createP2PNode({ listen: ["/ip4/127.0.0.1/tcp/0"] });
console.log(node.getMultiaddrs()[0].toString());
createInterface({ input: process.stdin }).on("line", () => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${BLOCK_MS});
  console.log("unblocked");
});
`;

let publisher: P2PNode | undefined;
const children: ReturnType<typeof spawn>[] = [];
afterAll(async () => {
  await publisher?.stop();
  for (const c of children) c.kill("SIGKILL");
});

describe("connection liveness", () => {
  it("keeps the connection to a peer that stalls longer than libp2p's default ping timeout", async () => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", peerScript], {
      cwd: repo,
      stdio: ["pipe", "pipe", "inherit"],
    });
    children.push(child);
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const addr = multiaddr((await lines.next()).value as string);
    publisher = await createP2PNode();
    const conn = await publisher.dial(addr);
    expect(conn.status).toBe("open");

    child.stdin!.write("block\n");
    const t0 = Date.now();
    expect((await lines.next()).value).toBe("unblocked");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(BLOCK_MS - 1000);
    // Give the publisher's pending ping its answer, then the same connection must still be up.
    await new Promise((r) => setTimeout(r, 1000));
    expect(conn.status).toBe("open");
    expect(publisher.getConnections(conn.remotePeer).map((c) => c.id)).toContain(conn.id);
  }, 60_000);
});
