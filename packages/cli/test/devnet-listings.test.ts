// A listing's metadata on a running devnet (in process, real anvil, Helia, Podman): `tpod dev publish` hands it
// to the devnet's IPFS node, which pins it, so after the developer's command (and its IPFS node) is gone,
// `tpod listings` without --peer still shows the listing's name, and a browser reads it from the devnet's HTTP
// block gateway, checked against its CID.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Devnet, startDevnet } from "@trustedpods/devnet";
import { fetchRawBlockOverHttp, MarketError, parseListingMetadataDoc } from "@trustedpods/publisher";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeLayout } from "../../../test-support/oci-layout.js";
import { run } from "../src/main.js";

const HAVE_PODMAN = existsSync("/usr/bin/podman");
if (!HAVE_PODMAN) console.warn("SKIP devnet-listings.test.ts: the devnet needs Podman");
const uid = randomBytes(4).toString("hex");
const savedHome = process.env.TPOD_HOME;
let tmp: string;
let net: Devnet;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await run(args, {
    out: (t) => {
      out += t.endsWith("\n") ? t : `${t}\n`;
    },
    err: (t) => {
      err += t.endsWith("\n") ? t : `${t}\n`;
    },
  });
  return { code, out, err };
}

describe.skipIf(!HAVE_PODMAN)("listing metadata on the devnet", () => {
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "tpod-devnet-listings-"));
    process.env.TPOD_HOME = join(tmp, "home");
    net = await startDevnet({
      home: join(tmp, "home"),
      dir: join(tmp, "devnet"),
      chainPort: 0,
      gatewayPort: 0,
      engineOwner: `dl${uid}`,
    });
  }, 120_000);

  afterAll(async () => {
    await net?.stop();
    if (savedHome === undefined) delete process.env.TPOD_HOME;
    else process.env.TPOD_HOME = savedHome;
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }, 60_000);

  let metadataCid: string;

  it("tpod listings shows the name without --peer once the developer's command and node are gone", async () => {
    const layout = join(tmp, "image");
    await makeLayout(layout, [randomBytes(4096)]);
    const pub = await cli([
      "dev",
      "publish",
      layout,
      "--name",
      "Busybox Pro",
      "--description",
      "a tiny web server",
      "--royalty",
      "500",
      "--ipfs-repo",
      join(tmp, "developer-ipfs"),
      "--json",
    ]);
    expect(pub.err).toContain("pinned by the network's IPFS node");
    expect(pub.code).toBe(0);
    metadataCid = JSON.parse(pub.out).metadataCid;
    expect(net.listingPins.pinned.get(1n)).toBe(metadataCid);
    // The developer's node stopped with its command. A publisher, with a node of its own that never saw the
    // document, names no peer: the network's IPFS node (from devnet.json) serves it.
    const listed = await cli(["listings", "--ipfs-repo", join(tmp, "publisher-ipfs"), "--timeout", "20"]);
    expect(listed.err).toBe("");
    expect(listed.code).toBe(0);
    expect(listed.out).toContain("listing 1: Busybox Pro");
    expect(listed.out).toContain("about       a tiny web server");
    expect(listed.out).not.toContain("metadata not read");
  }, 120_000);

  it("a browser reads it from the devnet's HTTP block gateway, and a gateway that alters it is refused", async () => {
    const gateway = net.info.ipfs.gatewayUrl;
    const bytes = await fetchRawBlockOverHttp([gateway], metadataCid);
    expect(parseListingMetadataDoc(bytes).name).toBe("Busybox Pro");
    // An untrusted gateway answering other bytes for the CID: refused, the honest one after it still serves.
    const liar = http.createServer((_req, res) =>
      res.end('{"type":"trusted-pods/listing/v1","name":"Evil"}'),
    );
    await new Promise<void>((r) => liar.listen(0, "127.0.0.1", r));
    const liarUrl = `http://127.0.0.1:${(liar.address() as AddressInfo).port}/`;
    try {
      const err = await fetchRawBlockOverHttp([liarUrl], metadataCid).catch((e) => e);
      expect(err).toBeInstanceOf(MarketError);
      expect(err.code).toBe("METADATA_UNAVAILABLE");
      expect(err.message).toContain("does not match");
      expect(parseListingMetadataDoc(await fetchRawBlockOverHttp([liarUrl, gateway], metadataCid)).name).toBe(
        "Busybox Pro",
      );
    } finally {
      liar.close();
    }
    // The gateway serves only raw blocks the node holds, and only as raw blocks.
    expect((await fetch(`${gateway}ipfs/${metadataCid}`)).status).toBe(406);
    const unknown = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    expect((await fetch(`${gateway}ipfs/${unknown}?format=raw`)).status).toBe(404);
  });

  it("the devnet's chain time advances with no transaction", async () => {
    const first = await net.chain.publicClient.getBlock();
    const deadline = Date.now() + 15_000;
    let later = first;
    while (later.timestamp <= first.timestamp && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      later = await net.chain.publicClient.getBlock();
    }
    expect(later.timestamp).toBeGreaterThan(first.timestamp);
  });
});
