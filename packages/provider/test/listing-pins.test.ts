// ListingMetadataPinner with real parts (anvil with the contracts, two Helia nodes): it pins the metadata of the
// listings it follows from the developer's node while that node is up, so the document outlives it; a provider's
// pinner only takes the listings it is authorized for; a document that is not listing metadata is never pinned.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { authorizeProvider, createListing } from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { createIpfsNode, getSecret, type IpfsNode, parseCid, putSecret } from "@trustedpods/ipfs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ListingMetadataPinner } from "../src/index.js";

let tmp: string;
let chain: DevChain;
let developer: IpfsNode;
const stores: IpfsNode[] = [];
const pinners: ListingMetadataPinner[] = [];

const doc = (name: string) =>
  new TextEncoder().encode(
    JSON.stringify({
      type: "trusted-pods/listing/v1",
      name,
      description: "",
      image: { cid: "bafkreiexampleimage", digest: `sha256:${"cd".repeat(32)}` },
    }),
  );

async function list(metadata: Uint8Array): Promise<{ id: bigint; cid: string }> {
  const cid = (await putSecret(developer, metadata)).toString();
  const { listingId } = await createListing(chain.context(3), {
    manifestDigest: `0x${"cd".repeat(32)}`,
    metadataCid: cid,
    royaltyBps: 100,
  });
  return { id: listingId, cid };
}

/** A node connected to the developer's, with a pinner over it. */
async function pinningNode(name: string, provider?: `0x${string}`) {
  const node = await createIpfsNode({ dataDir: path.join(tmp, name), peers: developer.multiaddrs() });
  stores.push(node);
  const pinner = new ListingMetadataPinner({
    chain: chain.context(0),
    store: node,
    pollMs: 100,
    fetchTimeoutMs: 3000,
    ...(provider ? { provider } : {}),
  });
  pinners.push(pinner);
  return { node, pinner };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "tpod-listing-pins-"));
  chain = await startDevChain({ accounts: 4 });
  developer = await createIpfsNode({ dataDir: path.join(tmp, "developer") });
}, 60_000);

afterAll(async () => {
  for (const p of pinners) await p.stop();
  for (const s of stores) await s.stop();
  await developer?.stop();
  await chain?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("ListingMetadataPinner", () => {
  it("pins every listing's metadata, which a third node then reads with the developer's node gone", async () => {
    const { node, pinner } = await pinningNode("devnet");
    pinner.start();
    const a = await list(doc("Alpha"));
    const bogus = await list(new TextEncoder().encode('{"not":"a listing"}'));
    const b = await list(doc("Beta"));
    await until("both listings pinned", () => pinner.pinned.size === 2);
    expect(pinner.pinned.get(a.id)).toBe(a.cid);
    expect(pinner.pinned.get(b.id)).toBe(b.cid);
    // A document that is not listing metadata is never pinned (a listing cannot make the node keep any data).
    expect(pinner.pinned.has(bogus.id)).toBe(false);
    expect(await node.isPinned(parseCid(bogus.cid))).toBe(false);

    await developer.stop();
    const reader = await createIpfsNode({ dataDir: path.join(tmp, "reader"), peers: node.multiaddrs() });
    stores.push(reader);
    const bytes = await getSecret(reader, a.cid, { signal: AbortSignal.timeout(10_000) });
    expect(JSON.parse(new TextDecoder().decode(bytes)).name).toBe("Alpha");
    developer = await createIpfsNode({ dataDir: path.join(tmp, "developer") });
  }, 60_000);

  it("a provider's pinner takes only the listings it is authorized for", async () => {
    const provider = chain.accounts[1]!.address;
    const { pinner } = await pinningNode("provider", provider);
    pinner.start();
    const mine = await list(doc("Mine"));
    const other = await list(doc("Other"));
    await authorizeProvider(chain.context(3), mine.id, provider, "bafkreienvelope");
    await authorizeProvider(chain.context(3), other.id, chain.accounts[2]!.address, "bafkreienvelope");
    await until("the authorized listing pinned", () => pinner.pinned.has(mine.id));
    // One more pass after both authorizations: the other listing is still not taken.
    await pinner.tick();
    expect([...pinner.pinned.keys()]).toEqual([mine.id]);
  }, 60_000);
});
