// `--image-transfer` on deploy and update: which bulk channel modes the upload node serves the provider. Shown
// with real Helia nodes on loopback: the upload node opened with the parsed modes, a provider-side node pulling
// the pushed image with its default preferences (plain first), and the transport every blob came over.
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type BlobProgress,
  createIpfsNode,
  type IpfsNode,
  pullImageToLayout,
  pushImage,
} from "@trustedpods/ipfs";
import { openOciLayout } from "@trustedpods/oci";
import type { ResolvedNetwork } from "@trustedpods/publisher";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeLayout } from "../../../test-support/oci-layout.js";
import { openUploadNode } from "../src/actions/deploy.js";
import { parseImageTransfer } from "../src/commands/deploy.js";
import { CliError, ExitCode } from "../src/errors.js";
import { run } from "../src/main.js";

describe("parseImageTransfer", () => {
  it("maps the flag to the modes served; absent means the node's default", () => {
    expect(parseImageTransfer(undefined)).toBeUndefined();
    expect(parseImageTransfer("tls")).toEqual(["tls"]);
    expect(parseImageTransfer("plain,tls")).toEqual(["plain", "tls"]);
    expect(parseImageTransfer("tls, tls")).toEqual(["tls"]);
    expect(parseImageTransfer("none")).toEqual([]);
  });

  it("refuses anything else as a usage error naming the choices", () => {
    for (const bad of ["", "ssl", "none,tls", "plain;tls"]) {
      let caught: unknown;
      try {
        parseImageTransfer(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(CliError);
      expect((caught as CliError).exitCode).toBe(ExitCode.usage);
      expect((caught as CliError).message).toContain("plain, tls, plain,tls or none");
    }
  });

  it("tpod deploy and tpod update exit 2 on a bad value before touching the manifest or the network", async () => {
    for (const args of [
      ["deploy", "/nonexistent/pod.yaml", "--image-transfer", "ssl"],
      ["update", "somepod", "/nonexistent/pod.yaml", "--image-transfer", "ssl"],
    ]) {
      const err: string[] = [];
      const code = await run(args, { out: () => {}, err: (t) => err.push(t) });
      expect(code).toBe(ExitCode.usage);
      expect(err.join("\n")).toContain("--image-transfer takes");
    }
  });
});

describe("the upload node serves only the modes asked for", () => {
  let dir: string;
  let layout: string;
  let provider: IpfsNode;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "tpod-image-transfer-"));
    layout = path.join(dir, "layout");
    const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 0xff);
    await makeLayout(layout, [bytes(2 * 1024 * 1024 + 123)]);
    provider = await createIpfsNode({ dataDir: path.join(dir, "provider") });
  });

  afterAll(async () => {
    await provider?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Opens the upload node as deploy does, pushes the image, pulls it on the provider; the transports used. */
  async function transportsFor(flag: string | undefined, name: string): Promise<string[]> {
    const upload = await openUploadNode({} as ResolvedNetwork, [], parseImageTransfer(flag));
    try {
      const { cid } = await pushImage(upload.node, await openOciLayout(layout));
      const seen = new Set<string>();
      const dst = path.join(dir, name);
      await pullImageToLayout(provider, cid, dst, {
        peers: upload.node.multiaddrs(),
        timeoutMs: 60_000,
        onProgress: (p: BlobProgress) => seen.add(p.via === "peer" ? (p.transport ?? "?") : "ipfs"),
      });
      const blobs = path.join(dst, "blobs", "sha256");
      const src = path.join(layout, "blobs", "sha256");
      expect((await readdir(blobs)).sort()).toEqual((await readdir(src)).sort());
      for (const f of await readdir(src))
        expect((await readFile(path.join(blobs, f))).equals(await readFile(path.join(src, f)))).toBe(true);
      return [...seen];
    } finally {
      await upload.close();
    }
  }

  it("default: the provider's first preference, the plain channel", async () => {
    expect(await transportsFor(undefined, "default")).toEqual(["plain"]);
  });

  it("tls: the bytes never go in clear, though the provider prefers plain", async () => {
    expect(await transportsFor("tls", "tls")).toEqual(["tls"]);
  });

  it("none: every byte stays in the libp2p stream", async () => {
    expect(await transportsFor("none", "none")).toEqual(["libp2p"]);
  });

  it("connects to the provider's node, and warns (does not fail) when a peer stays unreachable", async () => {
    // A port nothing listens on: free it again at once.
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, "127.0.0.1", () => {
        const port = (srv.address() as { port: number }).port;
        srv.close(() => resolve(port));
      });
    });
    // No peer id: with the provider's, libp2p would answer with the connection it already has.
    const unreachable = `/ip4/127.0.0.1/tcp/${closed}`;
    const warnings: string[] = [];
    const upload = await openUploadNode(
      {} as ResolvedNetwork,
      [provider.multiaddrs()[0]!, unreachable],
      [],
      (m) => warnings.push(m),
    );
    try {
      // Without this connection the provider's bitswap could never ask the upload node for a block.
      expect(upload.node.libp2p.getConnections().map((c) => c.remotePeer.toString())).toContain(
        provider.peerId,
      );
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`cannot connect to ${unreachable} (3 attempts:`);
    } finally {
      await upload.close();
    }
  });
});
