import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPair, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createP2PNode,
  KeyFileError,
  loadOrCreatePeerKey,
  loadPeerKey,
  peerIdFromKey,
  savePeerKey,
} from "../src/index.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "tpod-p2p-keys-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function keyError(promise: Promise<unknown>): Promise<KeyFileError> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(KeyFileError);
  return error as KeyFileError;
}

describe("peer keys", () => {
  it("creates a key file readable by its owner only and loads the same identity back", async () => {
    const path = join(dir, "nested", "peer.key");
    const created = await loadOrCreatePeerKey(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "nested"))).mode & 0o777).toBe(0o700);
    const loaded = await loadOrCreatePeerKey(path);
    expect(peerIdFromKey(loaded).toString()).toBe(peerIdFromKey(created).toString());
    expect(peerIdFromKey(loaded).equals(peerIdFromKey(created))).toBe(true);
  });

  it("gives concurrent first starts one identity instead of each writing its own", async () => {
    const path = join(dir, "peer.key");
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreatePeerKey(path)));
    const ids = new Set(keys.map((k) => peerIdFromKey(k).toString()));
    expect(ids.size).toBe(1);
    expect(ids.has(peerIdFromKey(await loadPeerKey(path)).toString())).toBe(true);
  });

  it("leaves no temporary file behind", async () => {
    await loadOrCreatePeerKey(join(dir, "peer.key"));
    const { readdir } = await import("node:fs/promises");
    expect(await readdir(dir)).toEqual(["peer.key"]);
  });

  it("gives the node the key's peer id", async () => {
    const key = await loadOrCreatePeerKey(join(dir, "peer.key"));
    const node = await createP2PNode({ privateKey: key, listen: ["/ip4/127.0.0.1/tcp/0"] });
    try {
      expect(node.peerId.toString()).toBe(peerIdFromKey(key).toString());
      expect(node.getMultiaddrs()[0]?.toString()).toContain(`/p2p/${node.peerId.toString()}`);
    } finally {
      await node.stop();
    }
  });

  it("listens nowhere unless told to", async () => {
    const node = await createP2PNode();
    try {
      expect(node.getMultiaddrs()).toEqual([]);
      expect(node.getPeers()).toEqual([]);
    } finally {
      await node.stop();
    }
  });

  it("refuses a key file others can read", async () => {
    const path = join(dir, "peer.key");
    await loadOrCreatePeerKey(path);
    await chmod(path, 0o644);
    expect((await keyError(loadPeerKey(path))).code).toBe("KEY_FILE_PERMISSIONS");
    expect((await keyError(loadOrCreatePeerKey(path))).code).toBe("KEY_FILE_PERMISSIONS");
  });

  it("refuses a file that is not a key, and does not overwrite it", async () => {
    const path = join(dir, "peer.key");
    await writeFile(path, "not a key", { mode: 0o600 });
    expect((await keyError(loadOrCreatePeerKey(path))).code).toBe("KEY_FILE_MALFORMED");
    expect(await readFile(path, "utf8")).toBe("not a key");
  });

  it("refuses a key of another type", async () => {
    const path = join(dir, "peer.key");
    await writeFile(path, privateKeyToProtobuf(await generateKeyPair("secp256k1")), { mode: 0o600 });
    expect((await keyError(loadPeerKey(path))).code).toBe("KEY_FILE_MALFORMED");
  });

  it("reports a missing file as missing", async () => {
    expect((await keyError(loadPeerKey(join(dir, "absent.key")))).code).toBe("KEY_FILE_MISSING");
  });

  it("overwrites atomically when saving again", async () => {
    const path = join(dir, "peer.key");
    const first = await loadOrCreatePeerKey(path);
    const second = await generateKeyPair("Ed25519");
    await savePeerKey(path, second);
    const loaded = await loadPeerKey(path);
    expect(peerIdFromKey(loaded).equals(peerIdFromKey(second))).toBe(true);
    expect(peerIdFromKey(loaded).equals(peerIdFromKey(first))).toBe(false);
  });
});
