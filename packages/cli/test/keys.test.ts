import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/main.js";

const home = mkdtempSync(join(tmpdir(), "tpod-keys-cli-"));
const saved = { home: process.env.TPOD_HOME, password: process.env.TPOD_PASSWORD };

beforeAll(() => {
  process.env.TPOD_HOME = home;
  delete process.env.TPOD_PASSWORD;
});
afterAll(() => {
  if (saved.home === undefined) delete process.env.TPOD_HOME;
  else process.env.TPOD_HOME = saved.home;
  if (saved.password !== undefined) process.env.TPOD_PASSWORD = saved.password;
  rmSync(home, { recursive: true, force: true });
});

async function tpod(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const line = (t: string) => (t.endsWith("\n") ? t : `${t}\n`);
  const code = await run(args, { out: (t) => out.push(line(t)), err: (t) => err.push(line(t)) });
  return { code, out: out.join(""), err: err.join("") };
}

const pw = join(home, "pw.txt");
const VECTOR_KEY = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
const VECTOR_ADDRESS = "0x008AeEda4D805471dF9b2A5B0f38A0C3bCBA786b";

describe("tpod keys", () => {
  it("new: creates an encrypted 0600 key from --password-file and prints its address", async () => {
    writeFileSync(pw, "correct horse\n");
    const r = await tpod(["keys", "new", "--label", "main", "--password-file", pw, "--json"]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out) as { address: string; label: string; file: string };
    expect(body.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(body.label).toBe("main");
    expect(statSync(body.file).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, "keys")).mode & 0o777).toBe(0o700);
    const doc = JSON.parse(readFileSync(body.file, "utf8"));
    expect(doc).toMatchObject({
      version: 3,
      crypto: { kdf: "scrypt", cipher: "aes-128-ctr" },
      label: "main",
    });
    // The passphrase is nowhere in the output.
    expect(r.out + r.err).not.toContain("correct horse");
  });

  it("import: a raw hex key file (passphrase from TPOD_PASSWORD) and a v3 keystore with its own passphrase", async () => {
    const raw = join(home, "raw.key");
    writeFileSync(raw, `${VECTOR_KEY}\n`, { mode: 0o600 });
    process.env.TPOD_PASSWORD = "from env";
    try {
      const r = await tpod(["keys", "import", raw, "--label", "imported"]);
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe(VECTOR_ADDRESS);
      const again = await tpod(["keys", "import", raw]);
      expect(again.code).toBe(1);
      expect(again.err).toMatch(/already holds/);
    } finally {
      delete process.env.TPOD_PASSWORD;
    }
    const ks = join(home, "other.json");
    writeFileSync(
      ks,
      JSON.stringify({
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
      }),
    );
    writeFileSync(pw, "not it\n");
    const wrong = await tpod(["keys", "import", ks, "--password-file", pw]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/wrong passphrase/);
  });

  it("list and show: addresses and labels, never key material", async () => {
    const list = await tpod(["keys", "list", "--json"]);
    expect(list.code).toBe(0);
    const keys = JSON.parse(list.out) as { address: string; label: string | null }[];
    expect(keys).toHaveLength(2);
    expect(keys.find((k) => k.address === VECTOR_ADDRESS)?.label).toBe("imported");
    const text = await tpod(["keys", "list"]);
    expect(text.out).toMatch(new RegExp(`${VECTOR_ADDRESS}\\s+imported`));
    const show = await tpod(["keys", "show", VECTOR_ADDRESS.toLowerCase(), "--json"]);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.out)).toMatchObject({
      address: VECTOR_ADDRESS,
      kdf: "scrypt",
      cipher: "aes-128-ctr",
    });
    expect(show.out).not.toMatch(/ciphertext|salt|mac/);
    expect(show.out.toLowerCase()).not.toContain(VECTOR_KEY);
  });

  it("exit codes: 1 for a missing key or no passphrase source, 2 for a malformed address", async () => {
    const missing = await tpod(["keys", "show", `0x${"12".repeat(20)}`]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/no key/);
    const bad = await tpod(["keys", "show", "0x12"]);
    expect(bad.code).toBe(2);
    // No --password-file, no TPOD_PASSWORD, and the test runner has no terminal to ask on.
    const nopass = await tpod(["keys", "new"]);
    expect(nopass.code).toBe(1);
    expect(nopass.err).toMatch(/no passphrase: pass --password-file FILE, set TPOD_PASSWORD/);
    const unknown = await tpod(["keys", "new", "--password", "secret"]);
    expect(unknown.code).toBe(2);
  });
});
