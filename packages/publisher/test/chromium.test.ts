// The SDK's main entry in a real browser: bundled for the browser with esbuild, loaded in headless Chromium, where
// it opens a v3 keystore, encrypts and decrypts one, and attests the test provider over libp2p WebSockets.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { build, type Plugin } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestProvider, type TestProvider } from "../../../test-support/attest-provider.js";
import {
  CHROMIUM,
  HAVE_CHROMIUM,
  type HeadlessChromium,
  launchChromium,
} from "../../../test-support/chromium.js";

if (!HAVE_CHROMIUM) console.warn(`SKIP: browser test needs ${CHROMIUM} (apt package chromium)`);

/** The SDK's main entry must not reach any Node built-in: each one fails the browser build. */
const refuseNodeBuiltins: Plugin = {
  name: "refuse-node-builtins",
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => ({
      errors: [{ text: `Node built-in ${args.path} imported by ${args.importer}` }],
    }));
  },
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

interface InBrowserResult {
  isBrowser: boolean;
  vectorKey: string;
  roundTrip: string;
  wrong: string;
  attested: { peerId: string; tee: string; encryptionPublicKey: number[] } | { error: string };
  strict: string;
}

function inBrowser(wsAddr: string): string {
  return `(async () => {
  const m = await import("/publisher.js");
  const isBrowser = typeof globalThis.process === "undefined" && typeof globalThis.Buffer === "undefined";
  const vector = ${JSON.stringify(PBKDF2_VECTOR)};
  const vectorKey = (await m.decryptKeystore(vector, "testpassword")).privateKey;
  const ks = await m.encryptKeystore(vectorKey, "browser pw", { scryptN: 1024 });
  const roundTrip = (await m.decryptKeystore(JSON.stringify(ks), "browser pw")).address;
  const wrong = await m.decryptKeystore(ks, "nope").then(() => "opened", (e) => e.code);
  // libp2p in a browser refuses to dial private and loopback addresses unless a gater allows it (the devnet's are).
  const node = await m.createP2PNode({ transports: ["ws"], connectionGater: { denyDialMultiaddr: () => false } });
  let attested;
  try {
    const r = await m.verifyProvider({ node, multiaddrs: [${JSON.stringify(wsAddr)}], policy: m.DEVNET_POLICY });
    attested = { peerId: r.peerId, tee: r.evidence.tee, encryptionPublicKey: [...r.encryptionPublicKey] };
  } catch (e) { attested = { error: String(e && e.message) }; }
  const strict = await m.verifyProvider({ node, multiaddrs: [${JSON.stringify(wsAddr)}], policy: m.STRICT_POLICY })
    .then(() => "accepted", (e) => e.code + " " + e.field);
  await node.stop();
  return { isBrowser, vectorKey, roundTrip, wrong, attested, strict };
})()`;
}

describe.skipIf(!HAVE_CHROMIUM)("the SDK in headless Chromium", () => {
  let server: Server;
  let browser: HeadlessChromium;
  let base: string;
  let provider: TestProvider;

  beforeAll(async () => {
    provider = await startTestProvider();
    const result = await build({
      entryPoints: [resolve(import.meta.dirname, "browser-entry.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "chrome120",
      conditions: ["source"],
      plugins: [refuseNodeBuiltins],
      write: false,
      logLevel: "silent",
    });
    const bundle = result.outputFiles[0]!.contents;
    server = createServer((req, res) => {
      if (req.url === "/")
        res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>tpod</title>");
      else if (req.url === "/publisher.js")
        res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
    await provider?.stop();
  });

  it("opens and writes v3 keystores and attests a provider over WebSockets", async () => {
    const ws = provider.multiaddrs.find((a) => a.includes("/ws/"))!;
    const page = await browser.context.newPage();
    await page.goto(`${base}/`);
    // A string, not a function: vitest rewrites dynamic import() in test code, and this must run untouched.
    const r = (await page.evaluate(inBrowser(ws))) as InBrowserResult;
    expect(r.isBrowser).toBe(true);
    expect(r.vectorKey).toBe("0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d");
    expect(r.roundTrip).toBe("0x008AeEda4D805471dF9b2A5B0f38A0C3bCBA786b");
    expect(r.wrong).toBe("WRONG_PASSPHRASE");
    expect(r.attested).toEqual({
      peerId: provider.peerId,
      tee: "insecure-dev",
      encryptionPublicKey: [...provider.encryptionPublicKey],
    });
    expect(r.strict).toBe("ATTESTATION_REFUSED policy.allowInsecureDev");
  });
});
