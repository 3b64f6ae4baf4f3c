import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  decryptKeystore,
  encryptKeystore,
  type KeystoreV3,
  nobleScrypt,
  PublisherError,
  parseKeystore,
} from "../src/index.js";
import { getPassphrase, KeyStore, nodeScrypt } from "../src/node/index.js";

// The Web3 Secret Storage Definition's published test vectors (password "testpassword").
const VECTOR_KEY = "0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
const SCRYPT_VECTOR = {
  crypto: {
    cipher: "aes-128-ctr",
    cipherparams: { iv: "83dbcc02d8ccb40e466191a123791e0e" },
    ciphertext: "d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c",
    kdf: "scrypt",
    kdfparams: {
      dklen: 32,
      n: 262144,
      p: 8,
      r: 1,
      salt: "ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19",
    },
    mac: "2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097",
  },
  id: "3198bc9c-6672-5ab3-d995-4942343ae5b6",
  version: 3,
};
const PBKDF2_VECTOR = {
  crypto: {
    cipher: "aes-128-ctr",
    cipherparams: { iv: "6087dab2f9fdbbfaddc31a909735c1e6" },
    ciphertext: "5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
    kdf: "pbkdf2",
    kdfparams: {
      c: 262144,
      dklen: 32,
      prf: "hmac-sha256",
      salt: "ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd",
    },
    mac: "517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2",
  },
  id: "3198bc9c-6672-5ab3-d995-4942343ae5b6",
  version: 3,
};
const FAST = { scryptN: 1 << 10 };

const tmp = mkdtempSync(join(tmpdir(), "tpod-keystore-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PublisherError) return err.code;
    throw err;
  }
  return "no error";
}

describe("Web3 Secret Storage v3", () => {
  it("decrypts the spec's scrypt test vector", async () => {
    const key = await decryptKeystore(JSON.stringify(SCRYPT_VECTOR), "testpassword");
    expect(key.privateKey).toBe(VECTOR_KEY);
    expect(key.account.address).toBe(key.address);
  });

  it("reproduces the scrypt vector's ciphertext and MAC byte for byte when encrypting", async () => {
    const ks = await encryptKeystore(VECTOR_KEY, "testpassword", {
      scryptN: 262144,
      scryptR: 1,
      scryptP: 8,
      salt: Buffer.from(SCRYPT_VECTOR.crypto.kdfparams.salt, "hex"),
      iv: Buffer.from(SCRYPT_VECTOR.crypto.cipherparams.iv, "hex"),
      id: SCRYPT_VECTOR.id,
    });
    expect(ks.crypto.ciphertext).toBe(SCRYPT_VECTOR.crypto.ciphertext);
    expect(ks.crypto.mac).toBe(SCRYPT_VECTOR.crypto.mac);
  }, 180000);

  it("node:crypto's scrypt (the CLI's) derives what the pure-JS one (the browser's) derives", async () => {
    const pw = new TextEncoder().encode("testpassword");
    const salt = new Uint8Array(32).fill(7);
    for (const params of [
      { N: 1 << 14, r: 8, p: 1, dkLen: 32 },
      { N: 1 << 10, r: 1, p: 2, dkLen: 32 },
    ]) {
      expect(Buffer.from(await nodeScrypt(pw, salt, params)).toString("hex")).toBe(
        Buffer.from(await nobleScrypt(pw, salt, params)).toString("hex"),
      );
    }
    const key = await decryptKeystore(SCRYPT_VECTOR, "testpassword", { scrypt: nodeScrypt });
    expect(key.privateKey).toBe(VECTOR_KEY);
  });

  it("decrypts the spec's pbkdf2 test vector", async () => {
    const key = await decryptKeystore(PBKDF2_VECTOR, "testpassword");
    expect(key.privateKey).toBe(VECTOR_KEY);
  });

  it("a wrong passphrase is a typed WRONG_PASSPHRASE error", async () => {
    expect(await code(decryptKeystore(PBKDF2_VECTOR, "wrong"))).toBe("WRONG_PASSPHRASE");
  });

  it("round trips with random salt and IV, writing the address and the label", async () => {
    const ks = await encryptKeystore(VECTOR_KEY, "pässwörd ✓", { ...FAST, label: "ops" });
    expect(ks.version).toBe(3);
    expect(ks.crypto.kdf).toBe("scrypt");
    expect(ks.crypto.cipher).toBe("aes-128-ctr");
    expect(ks.label).toBe("ops");
    expect(ks.address).toBe("008aeeda4d805471df9b2a5b0f38a0c3bcba786b");
    const again = await encryptKeystore(VECTOR_KEY, "pässwörd ✓", FAST);
    expect(again.crypto.ciphertext).not.toBe(ks.crypto.ciphertext);
    const key = await decryptKeystore(JSON.stringify(ks), "pässwörd ✓");
    expect(key.privateKey).toBe(VECTOR_KEY);
    expect(await code(decryptKeystore(ks, "passwörd ✓"))).toBe("WRONG_PASSPHRASE");
  });

  it("detects tampering: a flipped ciphertext bit fails the MAC, a forged address field is malformed", async () => {
    const ks = await encryptKeystore(VECTOR_KEY, "pw", FAST);
    const flipped = structuredClone(ks);
    flipped.crypto.ciphertext = `${ks.crypto.ciphertext[0] === "0" ? "1" : "0"}${ks.crypto.ciphertext.slice(1)}`;
    expect(await code(decryptKeystore(flipped, "pw"))).toBe("WRONG_PASSPHRASE");
    const forged: KeystoreV3 = { ...ks, address: "00".repeat(20) };
    expect(await code(decryptKeystore(forged, "pw"))).toBe("KEYSTORE_MALFORMED");
  });

  it("refuses documents that would make the KDF allocate or spin without bound", async () => {
    const huge = structuredClone(SCRYPT_VECTOR);
    huge.crypto.kdfparams.n = 1 << 22;
    expect(() => parseKeystore(huge)).toThrow(/scrypt|n must/);
    const notPow2 = structuredClone(SCRYPT_VECTOR);
    notPow2.crypto.kdfparams.n = 1000;
    expect(() => parseKeystore(notPow2)).toThrow(/power of two/);
    const cbc = structuredClone(SCRYPT_VECTOR);
    cbc.crypto.cipher = "aes-128-cbc";
    expect(() => parseKeystore(cbc)).toThrow(/aes-128-ctr/);
    expect(() => parseKeystore("{")).toThrow(PublisherError);
    expect(() => parseKeystore({ ...SCRYPT_VECTOR, version: 2 })).toThrow(/version/);
  });
});

describe("the keystore directory", () => {
  const dir = join(tmp, "home", "keys");
  const store = new KeyStore(dir);

  it("creates keys 0600 in a 0700 directory, lists them with labels, unlocks them", async () => {
    const a = await store.create("secret one", { ...FAST, label: "first" });
    const b = await store.importPrivateKey(VECTOR_KEY, "secret two", FAST);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const e of [a, b]) expect(statSync(e.file).mode & 0o777).toBe(0o600);
    // Atomic writes leave no temporary files behind.
    expect(readdirSync(dir).sort()).toEqual([a.file, b.file].map((f) => f.slice(dir.length + 1)).sort());
    const listed = await store.list();
    expect(listed.problems).toEqual([]);
    expect(listed.keys.map((k) => [k.address, k.label])).toEqual(
      expect.arrayContaining([
        [a.address, "first"],
        [b.address, undefined],
      ]),
    );
    expect((await store.unlock(b.address, "secret two")).privateKey).toBe(VECTOR_KEY);
    expect(await code(store.unlock(a.address, "secret two"))).toBe("WRONG_PASSPHRASE");
    expect(await code(store.unlock(`0x${"11".repeat(20)}`, "x"))).toBe("KEY_NOT_FOUND");
  });

  it("never overwrites a key: importing the same key again is KEY_EXISTS", async () => {
    expect(await code(store.importPrivateKey(VECTOR_KEY, "other", FAST))).toBe("KEY_EXISTS");
  });

  it("imports another tool's v3 keystore only with its passphrase", async () => {
    const other = new KeyStore(join(tmp, "other", "keys"));
    expect(await code(other.importKeystore(JSON.stringify(PBKDF2_VECTOR), "nope"))).toBe("WRONG_PASSPHRASE");
    const e = await other.importKeystore(JSON.stringify(PBKDF2_VECTOR), "testpassword", {
      label: "imported",
    });
    expect(e.address).toBe("0x008AeEda4D805471dF9b2A5B0f38A0C3bCBA786b");
    const stored = JSON.parse(readFileSync(e.file, "utf8")) as KeystoreV3;
    expect(stored.crypto.kdf).toBe("scrypt");
    expect(stored.label).toBe("imported");
    expect((await other.unlock(e.address, "testpassword")).privateKey).toBe(VECTOR_KEY);
  });

  it("lists unreadable files as problems and skips keys others can read", async () => {
    writeFileSync(join(dir, "junk.json"), "{}", { mode: 0o600 });
    const loose = await encryptKeystore(`0x${"22".repeat(32)}`, "pw", FAST);
    writeFileSync(join(dir, "loose.json"), JSON.stringify(loose), { mode: 0o644 });
    const { keys, problems } = await store.list();
    expect(keys).toHaveLength(2);
    expect(problems.map((p) => p.file.split("/").pop()).sort()).toEqual(["junk.json", "loose.json"]);
    expect(problems.find((p) => p.file.endsWith("loose.json"))?.reason).toMatch(/chmod 600/);
  });
});

describe("passphrase sources", () => {
  it("reads the first line of --password-file, then TPOD_PASSWORD, and refuses when there is none", async () => {
    const file = join(tmp, "pw.txt");
    writeFileSync(file, "from file\nsecond line\n");
    expect(await getPassphrase({ passwordFile: file, env: { TPOD_PASSWORD: "env" } })).toEqual({
      passphrase: "from file",
      source: `--password-file ${file}`,
    });
    expect((await getPassphrase({ env: { TPOD_PASSWORD: "env" } })).passphrase).toBe("env");
    expect(await code(getPassphrase({ env: {}, interactive: false }))).toBe("NO_PASSPHRASE");
    writeFileSync(join(tmp, "empty.txt"), "\n");
    expect(await code(getPassphrase({ passwordFile: join(tmp, "empty.txt") }))).toBe("NO_PASSPHRASE");
  });
});
