import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { createIpfsNode, type IpfsNode, pushImage } from "@trustedpods/ipfs";
import { openOciLayout } from "@trustedpods/oci";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeKuboRpcServer } from "../../../test-support/fake-kubo.js";
import { tempDir } from "../../../test-support/oci-images.js";
import { layoutBlobs, makeLayout } from "../../../test-support/oci-layout.js";
import { run } from "../src/main.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

let work: { dir: string; cleanup: () => Promise<void> };
let src: string;
let publisher: IpfsNode;
let cid: string;
const p = (n: string) => join(work.dir, n);

beforeAll(async () => {
  work = await tempDir("tpod-cli-ipfs-");
  src = p("src");
  await makeLayout(src, [randomBytes(1536 * 1024), randomBytes(3000)]);
  // A long-lived publisher node, as the devnet will run.
  publisher = await createIpfsNode({ dataDir: p("publisher") });
  cid = (await pushImage(publisher, await openOciLayout(src))).cid.toString();
});
afterAll(async () => {
  await publisher?.stop();
  await work?.cleanup();
});

describe("tpod image push|pull|inspect CID", () => {
  it("pull fetches by CID from a --peer into a new layout; inspect shows the image", async () => {
    const { io, out } = capture();
    const peer = publisher.multiaddrs()[0]!;
    const code = await run(
      ["image", "pull", "-q", "--json", "--ipfs-repo", p("repo1"), "--peer", peer, cid, p("dst1")],
      io,
    );
    expect(code).toBe(0);
    expect(JSON.parse(out.join("")).cid).toBe(cid);
    expect(await layoutBlobs(p("dst1"))).toEqual(await layoutBlobs(src));

    const ins = capture();
    expect(
      await run(["image", "inspect", "--json", "--ipfs-repo", p("repo1"), "--peer", peer, cid], ins.io),
    ).toBe(0);
    const info = JSON.parse(ins.out.join(""));
    expect(info.cid).toBe(cid);
    expect(info.root.digest).toBe((await openOciLayout(src)).root.digest);
    expect(info.encryption).toBe("plain");
  });

  it("push stores into --ipfs-repo; a node later started on that repo serves it to pull", async () => {
    const { io, out } = capture();
    expect(await run(["image", "push", "-q", "--json", "--ipfs-repo", p("repo2"), src], io)).toBe(0);
    const pushed = JSON.parse(out.join(""));
    expect(pushed.cid).toBe(cid); // same content, same CIDs
    expect(pushed.blobs).toHaveLength(4);
    const served = await createIpfsNode({ dataDir: p("repo2") });
    try {
      const pull = capture();
      const args = [
        "image",
        "pull",
        "--ipfs-repo",
        p("repo3"),
        "--peer",
        served.multiaddrs()[0]!,
        cid,
        p("dst2"),
      ];
      expect(await run(args, pull.io)).toBe(0);
      expect(pull.out.join("")).toMatch(/pulled .* into /);
      expect(pull.err.join("")).toMatch(/from peer/);
      expect(await layoutBlobs(p("dst2"))).toEqual(await layoutBlobs(src));
    } finally {
      await served.stop();
    }
  });

  it("exits 1 and writes nothing when the image cannot be fetched in time", async () => {
    const { io, err } = capture();
    const code = await run(
      ["image", "pull", "--ipfs-repo", p("repo4"), "--timeout", "1.5", cid, p("dst3")],
      io,
    );
    expect(code).toBe(1);
    expect(err.join("")).toMatch(/TIMEOUT/);
    expect(await exists(p("dst3"))).toBe(false);
  });

  it("exits 2 on usage errors", async () => {
    expect(await run(["image", "pull", "not-a-cid", p("dst4")], capture().io)).toBe(2);
    expect(await run(["image", "pull", cid], capture().io)).toBe(2);
    expect(await run(["image", "pull", "--timeout", "-1", cid, p("dst4")], capture().io)).toBe(2);
    expect(await run(["image", "push"], capture().io)).toBe(2);
    expect(await exists(p("dst4"))).toBe(false);
  });

  it("--kubo-api pushes and pulls through a Kubo RPC API (a fake Kubo server here)", async () => {
    const fake = await new FakeKuboRpcServer().start();
    try {
      const { io, out } = capture();
      expect(await run(["image", "push", "-q", "--kubo-api", fake.url, src], io)).toBe(0);
      expect(out.join("").trim()).toBe(cid);
      expect(fake.pins.has(cid)).toBe(true);
      expect(await run(["image", "pull", "-q", "--kubo-api", fake.url, cid, p("dst5")], capture().io)).toBe(
        0,
      );
      expect(await layoutBlobs(p("dst5"))).toEqual(await layoutBlobs(src));
    } finally {
      await fake.stop();
    }
  });
});
