import { generateKeyPairSync } from "node:crypto";
import { readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addRecipientsLayout,
  blobPath,
  DigestMismatchError,
  decryptLayout,
  encryptLayout,
  inspectImage,
  LayerIntegrityError,
  NoMatchingKeyError,
  openOciLayout,
  parsePrivateKey,
  parsePublicKey,
  RecipientNotFoundError,
  readPrivateKeyFile,
  readPublicKeyFile,
  removeRecipientsLayout,
  sha256Digest,
  UnsupportedError,
} from "../src/index.js";
import {
  buildBusyboxLayout,
  copyDir,
  exec,
  type KeyPairFiles,
  opensslKeyPair,
  removeImage,
  tempDir,
} from "./helpers.js";

let work: { dir: string; cleanup: () => Promise<void> };
let plain: string;
let plainRoot: string;
let multi: string;
const images: string[] = [];
let rsa: KeyPairFiles;
let ec: KeyPairFiles;
let ec384: KeyPairFiles;
let other: KeyPairFiles;

beforeAll(async () => {
  work = await tempDir();
  plain = join(work.dir, "plain");
  multi = join(work.dir, "multi");
  images.push(await buildBusyboxLayout(plain));
  images.push(await buildBusyboxLayout(multi, { extraLayers: [300_000, 70_000] }));
  plainRoot = (await openOciLayout(plain)).root.digest;
  [rsa, ec, ec384, other] = await Promise.all([
    opensslKeyPair(work.dir, "rsa", "rsa"),
    opensslKeyPair(work.dir, "ec", "p256"),
    opensslKeyPair(work.dir, "ec384", "p384"),
    opensslKeyPair(work.dir, "other", "rsa"),
  ]);
});
afterAll(async () => {
  for (const i of images) await removeImage(i);
  await work.cleanup();
});

let n = 0;
const out = (tag: string) => join(work.dir, `${tag}-${n++}`);

async function skopeoEncrypt(src: string, pubs: string[]): Promise<string> {
  const dst = out("sk-enc");
  await exec("skopeo", [
    "copy",
    "-q",
    ...pubs.flatMap((p) => ["--encryption-key", `jwe:${p}`]),
    `oci:${src}`,
    `oci:${dst}`,
  ]);
  return dst;
}

async function skopeoDecrypt(src: string, priv: string): Promise<string> {
  const dst = out("sk-dec");
  await exec("skopeo", ["copy", "-q", "--decryption-key", priv, `oci:${src}`, `oci:${dst}`]);
  return dst;
}

async function rootDigest(dir: string): Promise<string> {
  return (await openOciLayout(dir)).root.digest;
}

async function noTempLeft(): Promise<void> {
  expect((await readdir(work.dir)).filter((f) => f.includes("tpod-tmp"))).toEqual([]);
}

describe("interop with skopeo 1.9.3", () => {
  it("decrypts what skopeo encrypted for an RSA key, byte-identical to the original", async () => {
    const enc = await skopeoEncrypt(plain, [rsa.pub]);
    const dst = out("dec");
    await decryptLayout(enc, dst, [await readPrivateKeyFile(rsa.priv)]);
    expect(await rootDigest(dst)).toBe(plainRoot);
  });

  it("decrypts what skopeo encrypted for an EC key", async () => {
    const enc = await skopeoEncrypt(plain, [ec.pub]);
    const dst = out("dec");
    await decryptLayout(enc, dst, [await readPrivateKeyFile(ec.priv)]);
    expect(await rootDigest(dst)).toBe(plainRoot);
  });

  it("decrypts a skopeo image with several recipients using any one of their keys", async () => {
    const enc = await skopeoEncrypt(multi, [rsa.pub, ec.pub]);
    const info = await inspectImage(await openOciLayout(enc));
    expect(info.encryption).toBe("encrypted");
    expect(info.recipients).toBe(2);
    expect(info.manifests[0]!.layers).toHaveLength(3);
    for (const key of [rsa, ec]) {
      const dst = out("dec");
      await decryptLayout(enc, dst, [await readPrivateKeyFile(key.priv)]);
      expect(await rootDigest(dst)).toBe(await rootDigest(multi));
    }
    await expect(
      decryptLayout(enc, out("dec"), [await readPrivateKeyFile(other.priv)]),
    ).rejects.toBeInstanceOf(NoMatchingKeyError);
  });

  it("skopeo decrypts what we encrypted for RSA and EC keys (one recipient each)", async () => {
    for (const key of [rsa, ec, ec384]) {
      const enc = out("enc");
      await encryptLayout(plain, enc, [await readPublicKeyFile(key.pub)]);
      const info = await inspectImage(await openOciLayout(enc));
      expect(info.encryption).toBe("encrypted");
      expect(info.manifests[0]!.layers[0]!.mediaType).toBe(
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
      );
      expect(await rootDigest(await skopeoDecrypt(enc, key.priv))).toBe(plainRoot);
    }
  });

  it("skopeo decrypts a multi-layer image we encrypted for several recipients, with each key", async () => {
    const enc = out("enc");
    const recipients = await Promise.all([rsa.pub, ec.pub].map(readPublicKeyFile));
    await encryptLayout(multi, enc, recipients);
    const info = await inspectImage(await openOciLayout(enc));
    expect(info.recipients).toBe(2);
    expect(info.manifests[0]!.layers.map((l) => l.recipientKeyIds)).toEqual(
      Array(3).fill(recipients.map((r) => r.kid)),
    );
    for (const key of [rsa, ec])
      expect(await rootDigest(await skopeoDecrypt(enc, key.priv))).toBe(await rootDigest(multi));
    await expect(skopeoDecrypt(enc, other.priv)).rejects.toThrow();
  });

  it("adds a recipient to a skopeo-encrypted image without re-encrypting layers; skopeo decrypts with the new key", async () => {
    const enc = await skopeoEncrypt(multi, [rsa.pub]);
    const added = out("added");
    await addRecipientsLayout(
      enc,
      added,
      [await readPrivateKeyFile(rsa.priv)],
      [await readPublicKeyFile(ec.pub)],
    );
    const before = await inspectImage(await openOciLayout(enc));
    const after = await inspectImage(await openOciLayout(added));
    // Same encrypted layer blobs, new manifest digest (only annotations changed).
    expect(after.manifests[0]!.layers.map((l) => l.digest)).toEqual(
      before.manifests[0]!.layers.map((l) => l.digest),
    );
    expect(after.root.digest).not.toBe(before.root.digest);
    expect(after.recipients).toBe(2);
    expect(await rootDigest(await skopeoDecrypt(added, ec.priv))).toBe(await rootDigest(multi));
    expect(await rootDigest(await skopeoDecrypt(added, rsa.priv))).toBe(await rootDigest(multi));
  });

  it("removes a recipient without any private key; skopeo then refuses the removed key", async () => {
    const enc = out("enc");
    await encryptLayout(plain, enc, await Promise.all([rsa.pub, ec.pub].map(readPublicKeyFile)));
    const removed = out("removed");
    await removeRecipientsLayout(enc, removed, [await readPublicKeyFile(rsa.pub)]);
    expect((await inspectImage(await openOciLayout(removed))).recipients).toBe(1);
    await expect(skopeoDecrypt(removed, rsa.priv)).rejects.toThrow();
    expect(await rootDigest(await skopeoDecrypt(removed, ec.priv))).toBe(plainRoot);
    await expect(
      removeRecipientsLayout(removed, out("removed"), [await readPublicKeyFile(other.pub)]),
    ).rejects.toBeInstanceOf(RecipientNotFoundError);
    await noTempLeft();
  });
});

describe("keys and failures", () => {
  it("accepts JWK keys and X25519 for our own round trip", async () => {
    for (const type of ["rsa", "ec", "x25519"] as const) {
      const pair =
        type === "rsa"
          ? generateKeyPairSync("rsa", { modulusLength: 2048 })
          : type === "ec"
            ? generateKeyPairSync("ec", { namedCurve: "P-256" })
            : generateKeyPairSync("x25519");
      const pub = await parsePublicKey(JSON.stringify(pair.publicKey.export({ format: "jwk" })));
      const priv = await parsePrivateKey(JSON.stringify(pair.privateKey.export({ format: "jwk" })));
      expect(priv.kid).toBe(pub.kid);
      const enc = out("enc");
      await encryptLayout(plain, enc, [pub]);
      const dst = out("dec");
      await decryptLayout(enc, dst, [priv]);
      expect(await rootDigest(dst)).toBe(plainRoot);
    }
  });

  it("rejects small RSA keys and non-keys", async () => {
    const small = generateKeyPairSync("rsa", { modulusLength: 1024 });
    await expect(
      parsePublicKey(small.publicKey.export({ type: "spki", format: "pem" }) as string),
    ).rejects.toThrow(/2048/);
    await expect(parsePublicKey("hello")).rejects.toThrow(/not a PEM or JWK/);
    await expect(parsePrivateKey(await readFile(rsa.pub, "utf8"))).rejects.toThrow(/private key/);
  });

  it("a wrong key fails with NoMatchingKeyError and leaves no output", async () => {
    const enc = out("enc");
    await encryptLayout(plain, enc, [await readPublicKeyFile(rsa.pub)]);
    const dst = out("dec");
    await expect(decryptLayout(enc, dst, [await readPrivateKeyFile(other.priv)])).rejects.toBeInstanceOf(
      NoMatchingKeyError,
    );
    await expect(stat(dst)).rejects.toThrow();
    await noTempLeft();
  });

  it("a tampered encrypted layer fails its digest; with a re-computed digest it fails the HMAC", async () => {
    const enc = out("enc");
    await encryptLayout(plain, enc, [await readPublicKeyFile(rsa.pub)]);
    const src = await openOciLayout(enc);
    const layer = (await inspectImage(src)).manifests[0]!.layers[0]!;
    const bytes = await readFile(blobPath(enc, layer.digest));
    bytes[1000] = bytes[1000]! ^ 1;
    await writeFile(blobPath(enc, layer.digest), bytes);
    const dst = out("dec");
    const key = await readPrivateKeyFile(rsa.priv);
    await expect(decryptLayout(enc, dst, [key])).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(stat(dst)).rejects.toThrow();

    // Re-name the tampered blob and fix the manifest so only the HMAC can notice.
    const newDigest = sha256Digest(bytes);
    await rename(blobPath(enc, layer.digest), blobPath(enc, newDigest));
    const manifestText = (await readFile(blobPath(enc, src.root.digest), "utf8")).replace(
      layer.digest,
      newDigest,
    );
    const manifestDigest = sha256Digest(manifestText);
    await writeFile(blobPath(enc, manifestDigest), manifestText);
    const index = JSON.parse(await readFile(join(enc, "index.json"), "utf8"));
    index.manifests[0].digest = manifestDigest;
    await writeFile(join(enc, "index.json"), JSON.stringify(index));
    await expect(decryptLayout(enc, dst, [key])).rejects.toBeInstanceOf(LayerIntegrityError);
    await expect(stat(dst)).rejects.toThrow();
    await noTempLeft();
  });

  it("a tampered plain layer fails encryption with DigestMismatchError and leaves no output", async () => {
    const bad = out("bad");
    await copyDir(plain, bad);
    const layer = (await inspectImage(await openOciLayout(bad))).manifests[0]!.layers[0]!;
    const bytes = await readFile(blobPath(bad, layer.digest));
    bytes[10] = bytes[10]! ^ 0xff;
    await writeFile(blobPath(bad, layer.digest), bytes);
    const dst = out("enc");
    await expect(encryptLayout(bad, dst, [await readPublicKeyFile(rsa.pub)])).rejects.toBeInstanceOf(
      DigestMismatchError,
    );
    await expect(stat(dst)).rejects.toThrow();
    await noTempLeft();
  });

  it("refuses to encrypt an already encrypted image", async () => {
    const enc = out("enc");
    await encryptLayout(plain, enc, [await readPublicKeyFile(rsa.pub)]);
    await expect(encryptLayout(enc, out("enc"), [await readPublicKeyFile(ec.pub)])).rejects.toBeInstanceOf(
      UnsupportedError,
    );
    await noTempLeft();
  });
});

describe("image indexes", () => {
  it("encrypts every manifest of an image index and decrypts back to the same index digest", async () => {
    const dir = out("index");
    await copyDir(plain, dir);
    const src = await openOciLayout(dir);
    const index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{ ...src.root, annotations: undefined, platform: { architecture: "amd64", os: "linux" } }],
    };
    const bytes = JSON.stringify(index);
    const digest = sha256Digest(bytes);
    await writeFile(blobPath(dir, digest), bytes);
    const entry = { mediaType: index.mediaType, digest, size: Buffer.byteLength(bytes) };
    await writeFile(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));

    const enc = out("enc");
    await encryptLayout(dir, enc, [await readPublicKeyFile(ec.pub)]);
    const info = await inspectImage(await openOciLayout(enc));
    expect(info.root.mediaType).toBe(index.mediaType);
    expect(info.manifests[0]!.platform).toEqual({ architecture: "amd64", os: "linux" });
    expect(info.encryption).toBe("encrypted");
    const dec = out("dec");
    await decryptLayout(enc, dec, [await readPrivateKeyFile(ec.priv)]);
    expect(await rootDigest(dec)).toBe(digest);
  });
});
