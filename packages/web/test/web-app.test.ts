// The web app, built with Vite and served by serveWebApp, driven in headless Chromium against a real devnet:
// anvil with the contracts, the REAL provider daemon (Podman engine, insecure-dev attester) listening on
// WebSockets, a marketplace listing, and a payment channel the publisher opened. Screenshots of every page, wide
// and 375 px narrow, go to packages/web/test-results/ for review.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import {
  accrued,
  balanceOf,
  claim,
  createListing,
  getChannel,
  openChannel,
  Resource,
  refund,
  registerProvider,
  royaltiesHash,
  signQuoteFor,
  specHash,
} from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { run as tpod } from "@trustedpods/cli";
import { type BlockHttpServer, type IpfsNode, putSecret, serveBlocksOverHttp } from "@trustedpods/ipfs";
import { createP2PNode } from "@trustedpods/p2p";
import { formatTokenAmount } from "@trustedpods/protocol";
import { Daemon, loadConfig, type PodmanEngine } from "@trustedpods/provider";
import { DEVNET_POLICY, openedChannels, verifyProvider, type WebAppConfig } from "@trustedpods/publisher";
import {
  authorizeListingProvider,
  loadOrCreateDeveloperKey,
  publishListing,
  writeDevnetState,
} from "@trustedpods/publisher/node";
import type { BrowserContext, Locator, Page } from "playwright-core";
import { erc20Abi } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, type HeadlessChromium, launchChromium } from "../../../test-support/chromium.js";
import {
  buildBusyboxLayout,
  type PushedImage,
  providerConfigYaml,
  pushLayout,
  startPublisherIpfs,
} from "../../../test-support/provider-world.js";
import { buildWebApp, serveWebApp, type WebAppServer } from "../src/node/index.js";

const exec = promisify(execFile);
const HAVE = [CHROMIUM, "/usr/bin/podman", "/usr/bin/buildah", "/bin/busybox"].every((p) => existsSync(p));
if (!HAVE) console.warn(`SKIP: the web app test needs ${CHROMIUM}, Podman, buildah and busybox-static`);

const SHOTS = resolve(import.meta.dirname, "../test-results");
const uid = randomBytes(4).toString("hex");
const TOKEN = 10n ** 18n;
const IMAGE = `localhost/tpod-web-${uid}:latest`;
const savedHome = process.env.TPOD_HOME;

let tmp: string;
let chain: DevChain;
let daemon: Daemon;
let server: WebAppServer;
let deadServer: WebAppServer;
let browser: HeadlessChromium | undefined;
let context: BrowserContext;
let podId: `0x${string}`;
let pubIpfs: IpfsNode;
let blocks: BlockHttpServer | undefined;
/** busybox with /www/index.html, pushed to the publisher's IPFS node: what a browser can deploy by CID. */
let ipfsImage: PushedImage;
/** A real marketplace listing: an encrypted busybox site the provider is authorized for, with a sample manifest. */
let realListing: bigint;
const LISTING_FEE = 5000n;
/** The developer's sample: written before the listing existed, so its listing reference is a placeholder. */
const listingSample = `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: busybox-site
spec:
  containers:
    - name: site
      image:
        listing: "the id this listing gets"
      args: ["sh", "-c", "exec httpd -f -p 8080 -h /www"]
      ports:
        - containerPort: 8080
          http: {}
      resources: {cpu: 100m, memory: 32Mi}
`;
/** The pod `tpod deploy` started (the browser cannot deploy yet: the SDK's deploy() is Node-only). */
let deployed: { podId: `0x${string}`; endpoints: { http: string[] } };

/** busybox (with applet links) from scratch, committed into the local Podman store under IMAGE. */
async function buildImage(): Promise<void> {
  const ctr = (await exec("buildah", ["from", "scratch"])).stdout.trim();
  try {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["run", ctr, "--", "/bin/busybox", "--install", "-s", "/bin"]);
    await exec("buildah", ["config", "--entrypoint", "[]", "--cmd", '["/bin/sh"]', ctr]);
    await exec("buildah", ["commit", "-q", ctr, IMAGE]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
}

const webManifest = `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: web
spec:
  containers:
    - name: web
      image: ${IMAGE}
      command: [sh, -c]
      args: ["mkdir -p /www && echo 'hello from the browser test' > /www/index.html && echo started-web-${uid} && exec httpd -f -p 8080 -h /www"]
      ports:
        - containerPort: 8080
          http: {}
      resources: {cpu: 100m, memory: 32Mi}
`;

/**
 * Encrypts a busybox site as a developer would (`tpod dev publish`), lists it with a fixed fee and the sample
 * manifest, attests the provider and authorizes it with its key envelope (`tpod dev authorize`).
 */
async function publishRealListing(): Promise<bigint> {
  const layout = await buildBusyboxLayout(
    mkdirSync(join(tmp, "listing"), { recursive: true }) ?? join(tmp, "listing"),
    `localhost/tpod-web-listing-${uid}:latest`,
    "sold on the marketplace\n",
  );
  const key = await loadOrCreateDeveloperKey(join(tmp, "dev", "image-key.pem"));
  const published = await publishListing({
    chain: chain.context(2),
    store: pubIpfs,
    image: layout,
    key,
    name: "Busybox Site",
    description: "a static site, encrypted for authorized providers",
    sampleManifest: listingSample,
    royaltyBps: 1500,
    feeToken: chain.contracts.token,
    fixedFee: LISTING_FEE,
  });
  const node = await createP2PNode({ transports: ["tcp"] });
  try {
    const att = await verifyProvider({ node, multiaddrs: daemon.info().multiaddrs, policy: DEVNET_POLICY });
    await authorizeListingProvider({
      chain: chain.context(2),
      store: pubIpfs,
      listingId: published.listingId,
      provider: daemon.info().provider,
      providerEncryptionKey: att.encryptionPublicKey,
      key: key.privateKey,
    });
  } finally {
    await node.stop();
  }
  return published.listingId;
}

/** Waits for the deploy box to finish; a deploy error fails with its text. */
async function deployOutcome(page: Page, timeout = 150_000): Promise<void> {
  const done = page.locator('[data-testid="deploy-done"]');
  const error = page.locator('[data-testid="deploy-error"]');
  await Promise.race([
    done.waitFor({ timeout }),
    error.waitFor({ timeout }).then(async () => {
      throw new Error(`deploy failed: ${await error.textContent()}`);
    }),
  ]);
}

/** A busybox httpd pod whose image is the one pushed to IPFS, named by its CID and the given digest. */
function ipfsSiteManifest(name: string, digest: string): string {
  return `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: ${name}
spec:
  containers:
    - name: site
      image:
        ipfs: ${ipfsImage.cid}
        digest: ${digest}
      command: [/bin/busybox, httpd, -f, -p, "8080", -h, /www]
      ports:
        - containerPort: 8080
          http: {}
      resources: {cpu: 100m, memory: 32Mi}
`;
}

/** Opens the deployed pod's first URL from the deploy box in a new tab until it answers `text`. */
async function expectSiteSays(done: Locator, text: string, timeout = 30_000): Promise<void> {
  const url = await done.locator("a[target=_blank]").first().getAttribute("href");
  const site = await context.newPage();
  await expect
    .poll(
      async () => {
        const r = await site.goto(url!).catch(() => null);
        return r?.ok() ? (await site.textContent("body"))?.trim() : undefined;
      },
      { timeout },
    )
    .toBe(text);
  await site.close();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** True when nothing is wider than the viewport (no sideways scrolling on a phone). */
async function fitsWidth(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
}

describe.skipIf(!HAVE)("the web app in headless Chromium against a devnet", () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    tmp = await mkdtemp(join(tmpdir(), "tpod-web-"));
    process.env.TPOD_HOME = join(tmp, "home");
    const [www] = await Promise.all([
      buildWebApp({ outDir: join(tmp, "www") }),
      (async () => {
        chain = await startDevChain({ accounts: 3 });
      })(),
      (async () => {
        pubIpfs = await startPublisherIpfs(join(tmp, "pub-ipfs"));
      })(),
      buildImage(),
    ]);
    const keyFile = join(tmp, "provider.key");
    await writeFile(keyFile, `${chain.accounts[1]!.privateKey}\n`, { mode: 0o600 });
    const yaml = providerConfigYaml({
      dataDir: join(tmp, "data"),
      chain,
      accountKeyFile: keyFile,
      owner: `w${uid}`,
      ipfsPeers: pubIpfs.multiaddrs(),
    })
      .replace("chain:\n", "chain:\n  confirmations: 0\n")
      .replace(
        // Browsers reach providers over WebSockets: listen on ws too.
        'listen: ["/ip4/127.0.0.1/tcp/0"]\n  inbound',
        'listen: ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]\n  inbound',
      );
    const cfgFile = join(tmp, "provider.yaml");
    await writeFile(cfgFile, yaml);
    daemon = await Daemon.start(loadConfig(cfgFile), {});
    expect(daemon.info().multiaddrs.some((a) => a.includes("/ws/"))).toBe(true);
    const provider = chain.context(1);
    await registerProvider(provider, {
      name: "devnet-provider",
      regions: ["local"],
      multiaddrs: daemon.info().multiaddrs,
      metadataCid: "",
      teeTypes: ["insecure-dev"],
      token: chain.contracts.token,
      minNoticeSeconds: 600,
      prices: [
        { resource: Resource.cpu, pricePerUnitSecond: 1000n },
        { resource: Resource.memory, pricePerUnitSecond: 200n },
        { resource: Resource.storage, pricePerUnitSecond: 3000n },
      ],
    });
    // A developer's listing (royalty 10 %), for the marketplace page and the deploy warning. Its metadata is on
    // an IPFS node the browser reads through that node's HTTP block gateway (as on the devnet).
    const metadataCid = await putSecret(
      pubIpfs,
      new TextEncoder().encode(
        JSON.stringify({
          type: "trusted-pods/listing/v1",
          name: "Busybox Pro",
          description: "a tiny web server, sold by its developer",
          image: { cid: "bafkreiexampleimage", digest: `sha256:${"ab".repeat(32)}` },
        }),
      ),
    );
    blocks = await serveBlocksOverHttp(pubIpfs, { host: "127.0.0.1", port: 0 });
    await createListing(chain.context(2), {
      manifestDigest: `0x${"ab".repeat(32)}`,
      metadataCid: metadataCid.toString(),
      royaltyBps: 1000,
    });
    // A pod channel the publisher opened (as `tpod deploy` does), for "my pods".
    podId = `0x${randomBytes(32).toString("hex")}`;
    const publisher = chain.accounts[0]!.address;
    const quote = {
      provider: chain.accounts[1]!.address,
      publisher,
      podId,
      token: chain.contracts.token,
      ratePerSecond: 10n ** 12n,
      minNoticeSeconds: 600,
      expiry: BigInt(Math.floor(Date.now() / 1000) + 3600),
      specHash: specHash({ cpu: 100n, memory: 64n, storage: 0n, gpu: 0n }),
      royaltiesHash: royaltiesHash([]),
    };
    const sig = await signQuoteFor(provider, privateKeyToAccount(chain.accounts[1]!.privateKey), quote);
    await openChannel(chain.context(0), {
      quote,
      quoteSignature: sig,
      podId,
      deposit: 5n * TOKEN,
      noticeSeconds: 600,
    });
    // A real pod, deployed as `tpod deploy` does on the devnet (publisher = dev account 0, the app's dev key).
    await writeDevnetState(process.env.TPOD_HOME!, {
      version: 1,
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      contracts: chain.contracts,
      publisherKey: chain.accounts[0]!.privateKey,
      providers: [
        {
          address: daemon.info().provider,
          peerId: daemon.info().peerId,
          multiaddrs: daemon.info().multiaddrs,
        },
      ],
      ipfs: { multiaddrs: daemon.info().ipfs },
      pid: process.pid,
    });
    ipfsImage = await pushLayout(
      pubIpfs,
      await buildBusyboxLayout(
        // Its own directory: the helper writes www/index.html under it, and tmp/www holds the built app.
        mkdirSync(join(tmp, "image"), { recursive: true }) ?? join(tmp, "image"),
        `localhost/tpod-web-ipfs-${uid}:latest`,
        "deployed from the browser\n",
      ),
    );
    realListing = await publishRealListing();
    const manifestFile = join(tmp, "web.yaml");
    await writeFile(manifestFile, webManifest);
    let out = "";
    let err = "";
    const code = await tpod(["deploy", manifestFile, "--json", "--funds", "0.001"], {
      out: (t) => {
        out += t;
      },
      err: (t) => {
        err += t;
      },
    });
    if (code !== 0) throw new Error(`tpod deploy failed (${code}): ${err}`);
    deployed = JSON.parse(out);
    const config: WebAppConfig = {
      version: 1,
      name: "devnet",
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      contracts: chain.contracts,
      devnet: true,
      devKey: chain.accounts[0]!.privateKey,
      ipfsGateways: [blocks.url],
    };
    server = await serveWebApp({ config, root: www });
    // The same app pointed at a chain that is not there: the user must read what to do.
    deadServer = await serveWebApp({ config: { ...config, rpcUrl: "http://127.0.0.1:9/" }, root: www });
    browser = await launchChromium({ viewport: { width: 1280, height: 900 } });
    context = browser.context;
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await deadServer?.close();
    await blocks?.close();
    if (daemon) {
      const engine = daemon.engine as PodmanEngine;
      for (const m of await engine.listPods()) await engine.remove(m.podId, { images: true });
      await daemon.stop();
    }
    await pubIpfs?.stop();
    await chain?.stop();
    await exec("buildah", ["rmi", "-f", IMAGE]).catch(() => {});
    if (savedHome === undefined) delete process.env.TPOD_HOME;
    else process.env.TPOD_HOME = savedHome;
    if (tmp) await rm(tmp, { recursive: true, force: true });
    await rm(`/dev/shm/tpod-secrets-w${uid}`, { recursive: true, force: true });
  }, 120_000);

  it("providers page: the registered provider, its prices and an in-browser verified insecure-dev badge", async () => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${server.url}#/providers`);
    const card = page.locator('[data-testid="provider"]');
    await card.first().waitFor({ timeout: 30_000 });
    expect(await card.count()).toBe(1);
    expect(await card.getAttribute("data-address")).toBe(chain.accounts[1]!.address);
    await expect.poll(() => card.textContent(), { timeout: 5000 }).toContain("devnet-provider");
    // 1000 per millicore-second = 3.6 TPT... per core-hour: 1000 × 1000 × 3600 = 3.6e9 base units.
    const prices = await card.locator('[data-testid="prices"]').textContent();
    expect(prices).toContain("per CPU core-hour");
    expect(prices).toContain("TPT");
    const badge = card.locator('[data-testid="attestation"]');
    await page.waitForSelector('[data-testid="attestation"]:not([data-state="checking"])', {
      timeout: 30_000,
    });
    expect(await badge.getAttribute("data-state")).toBe("verified");
    expect(await badge.textContent()).toContain("insecure-dev");
    // Verified in this browser against the release registry: the devnet release, in words.
    expect(await badge.textContent()).toContain("release devnet-insecure-dev");
    expect(await card.locator('[data-testid="release"]').textContent()).toMatch(
      /^devnet-insecure-dev \(image sha256 0x/,
    );
    const verified = await card.locator('[data-testid="verified-lines"]').textContent();
    expect(verified).toContain("hardware: NONE");
    expect(verified).toContain("binding: the evidence's report data commits to this session's fresh nonce");
    expect(await page.locator('[data-testid="account"]').textContent()).toContain("dev key");
    await shot(page, "providers-wide");
    await page.setViewportSize({ width: 375, height: 800 });
    expect(await fitsWidth(page)).toBe(true);
    await shot(page, "providers-375");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("marketplace page lists the listing with its name and terms; deploy shows the developer's share and the warning", async () => {
    const page = await context.newPage();
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${server.url}#/market`);
    await page.locator('[data-testid="listing"]').first().waitFor({ timeout: 30_000 });
    // The name and description come from the listing's metadata on IPFS, read over HTTP and checked in the page.
    const listing = page.locator('[data-testid="listing"]').filter({ hasText: "Busybox Pro" });
    await listing.getByRole("heading", { name: /Busybox Pro/ }).waitFor({ timeout: 30_000 });
    const text = await listing.textContent();
    expect(text).toContain("Busybox Pro #1");
    expect(text).toContain("a tiny web server, sold by its developer");
    expect(text).not.toContain("not readable");
    expect(text).toContain("10.00% of every payment");
    expect(text).toContain("fixed (cannot be overridden)");
    expect(await fitsWidth(page)).toBe(true);
    await shot(page, "market-375");
    await listing.getByRole("button", { name: "Deploy this" }).click();
    await page.waitForURL(/#\/deploy$/);
    expect(await page.locator('[data-testid="manifest"]').inputValue()).toContain('listing: "1"');
    await page.locator('[data-testid="price"]').click();
    const warning = page.locator('[data-testid="market-warning"]');
    await warning.waitFor({ timeout: 30_000 });
    expect(await warning.textContent()).toContain("10.00% of every payment goes to the developer");
    const row = page.locator('[data-testid="quote-row"]');
    expect(await row.count()).toBe(1);
    const cells = await row.locator("td").allTextContents();
    // 250 m CPU and 128 MiB: (250 × 1000 + 128 × 200) × 3600 = 992,160,000 per hour; the developer takes 10 %.
    expect(cells[1]).toContain("TPT");
    expect(cells[3]).not.toBe("—");
    expect(await fitsWidth(page)).toBe(true);
    await shot(page, "deploy-listing-375");
    await page.close();
  });

  it("deploy page: a manifest with a mistake is explained by line; the example is priced per provider", async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}#/deploy`);
    const editor = page.locator('[data-testid="manifest"]');
    await editor.waitFor();
    await editor.fill(
      "apiVersion: trustedpods/v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: 3\n",
    );
    await page.locator('[data-testid="price"]').click();
    const alert = page.locator('[data-testid="quote"] .error');
    await alert.waitFor({ timeout: 10_000 });
    expect(await alert.textContent()).toMatch(/line 6/);
    await shot(page, "deploy-error-wide");
    await page.evaluate(() => sessionStorage.clear());
    await page.reload();
    await page.locator('[data-testid="price"]').click();
    const row = page.locator('[data-testid="quote-row"]');
    await row.first().waitFor({ timeout: 30_000 });
    expect(await row.locator("td").nth(1).textContent()).toContain("TPT");
    expect(await page.locator('[data-testid="market-warning"]').count()).toBe(0);
    await shot(page, "deploy-wide");
    await page.close();
  });

  it("deploy page: an uploaded Compose file is imported with its warnings, and priced", async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}#/deploy`);
    await page.locator('[data-testid="manifest"]').waitFor();
    const compose = [
      "name: game",
      "services:",
      "  server:",
      "    build: ./server",
      "    ports:",
      '      - "27015:27015/udp"',
      '      - "8080:8080"',
      "    depends_on: [db]",
      "  db:",
      "    image: postgres:16",
      "    cap_add: []",
      "",
    ].join("\n");
    await page.locator('input[type="file"]').setInputFiles({
      name: "docker-compose.yml",
      mimeType: "application/yaml",
      buffer: Buffer.from(compose),
    });
    const notes = page.locator('[data-testid="compose-import"]');
    await notes.waitFor({ timeout: 10_000 });
    expect(await notes.textContent()).toContain("Imported docker-compose.yml");
    expect(await notes.textContent()).toContain("line 8: depends_on: dropped");
    expect(await page.locator('[data-testid="compose-builds"]').textContent()).toContain(
      "tpod deploy docker-compose.yml",
    );
    const manifest = await page.locator('[data-testid="manifest"]').inputValue();
    expect(manifest).toContain("kind: Pod");
    expect(manifest).toMatch(/containerPort: 27015\n\s+udp: \{\}/);
    await page.locator('[data-testid="price"]').click();
    await page.locator('[data-testid="quote-row"]').first().waitFor({ timeout: 30_000 });
    await shot(page, "deploy-compose-wide");

    // What a pod cannot have is refused with its line, as the CLI refuses it.
    await page
      .locator('[data-testid="manifest"]')
      .fill("services:\n  a:\n    image: x\n    privileged: true\n");
    await page.locator('[data-testid="price"]').click();
    const refused = page.locator('[data-testid="compose-import"] .error');
    await refused.waitFor({ timeout: 10_000 });
    expect(await refused.textContent()).toContain("line 4, column 5: privileged: not supported");
    await page.evaluate(() => sessionStorage.clear());
    await page.close();
  });

  it("deploy page: funds and deploys an IPFS-image pod from the browser with progress; its URL answers", async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}#/deploy`);
    const editor = page.locator('[data-testid="manifest"]');
    await editor.waitFor();
    await editor.fill(ipfsSiteManifest("from-browser", ipfsImage.digest));
    // Too little for the provider's quoted minimum (its config's default, 3600 s): refused before the channel,
    // naming the minimum and the field to fix.
    await page.locator('[data-testid="funds"]').fill("0.0000000001");
    await page.locator('[data-testid="deploy"]').click();
    const refused = page.locator('[data-testid="deploy-error"]');
    await refused.waitFor({ timeout: 60_000 });
    expect(await refused.textContent()).toMatch(
      /^deposit too small: the provider wants 3600 s paid in advance \(.+\), and deploy adds a 60 s margin .+ You offered \d+ s \(.+\); use the Funds field 0\.\d+ \(3660 s, rounded up\) or more\. Without the Funds field, deploy pays for 6 h 0 min\.$/,
    );
    const quoted = await page.locator('[data-testid="deploy-steps"] li').allTextContents();
    expect(quoted.join("\n")).toContain("minimum paid time 3600 s (");
    expect(quoted.join("\n")).not.toContain("channel open");
    await page.locator('[data-testid="funds"]').fill("0.001");
    await page.locator('[data-testid="deploy"]').click();
    await refused.waitFor({ state: "detached", timeout: 10_000 });
    const done = page.locator('[data-testid="deploy-done"]');
    await Promise.race([
      done.waitFor({ timeout: 150_000 }),
      page
        .locator('[data-testid="deploy-error"]')
        .waitFor({ timeout: 150_000 })
        .then(async () => {
          throw new Error(
            `deploy failed: ${await page.locator('[data-testid="deploy-error"]').textContent()}`,
          );
        }),
    ]);
    const steps = await page.locator('[data-testid="deploy-steps"] li').allTextContents();
    // provider, attest, upload (nothing to push: the image is on IPFS), quote, channel, provision.
    expect(steps.map((t) => t.slice(0, 1))).toEqual(["✓", "✓", "✓", "✓", "✓", "✓"]);
    expect(steps.join("\n")).toContain("attested: insecure-dev");
    expect(steps.join("\n")).toContain("minimum paid time 3600 s (");
    const podIdDeployed = (await done.getAttribute("data-pod")) as `0x${string}`;
    const key = {
      publisher: chain.accounts[0]!.address,
      provider: chain.accounts[1]!.address,
      podId: podIdDeployed,
    };
    expect((await getChannel(chain.context(0), key)).deposit).toBe(10n ** 15n);
    await shot(page, "deploy-done-wide");
    await expectSiteSays(done, "deployed from the browser");
    await page.close();
  }, 200_000);

  it("marketplace: 'Deploy this' on a real listing starts from the developer's sample and deploys it from the browser, paying the royalty and the fee", async () => {
    const developer = chain.accounts[2]!.address;
    const feesBefore = await balanceOf(chain.context(2), developer, chain.contracts.token);
    const page = await context.newPage();
    await page.goto(`${server.url}#/market`);
    const listing = page.locator('[data-testid="listing"]').filter({ hasText: "Busybox Site" });
    await listing.getByRole("heading", { name: /Busybox Site/ }).waitFor({ timeout: 30_000 });
    await listing.getByRole("button", { name: "Deploy this" }).click();
    await page.waitForURL(/#\/deploy$/);
    const manifest = await page.locator('[data-testid="manifest"]').inputValue();
    // The developer's sample (its arguments and port), pointed at this listing's id.
    expect(manifest).toContain(`listing: "${realListing}"`);
    expect(manifest).toContain("exec httpd -f -p 8080 -h /www");
    expect(manifest).not.toContain("the id this listing gets");
    await page.locator('[data-testid="funds"]').fill("0.001");
    await page.locator('[data-testid="deploy"]').click();
    await deployOutcome(page);
    const done = page.locator('[data-testid="deploy-done"]');
    const steps = (await page.locator('[data-testid="deploy-steps"] li').allTextContents()).join("\n");
    expect(steps).toContain("warning: This pod uses the Marketplace");
    expect(steps).toContain("✓ provider devnet-provider");
    // The breakdown names the developer's 15 % and its fixed fee.
    const breakdown = await done.locator('[data-testid="deploy-breakdown"] li').allTextContents();
    expect(
      breakdown.some((l) => l.includes(developer) && l.includes("15% of what the provider claims")),
    ).toBe(true);
    // The channel paid the listing's fixed fee to the developer at opening: the royalty list was the listing's.
    expect(await balanceOf(chain.context(2), developer, chain.contracts.token)).toBe(
      feesBefore + LISTING_FEE,
    );
    const podIdDeployed = (await done.getAttribute("data-pod")) as `0x${string}`;
    const ch = await getChannel(chain.context(0), {
      publisher: chain.accounts[0]!.address,
      provider: chain.accounts[1]!.address,
      podId: podIdDeployed,
    });
    expect(ch.deposit).toBe(10n ** 15n);
    await shot(page, "deploy-listing-done-wide");
    await expectSiteSays(done, "sold on the marketplace", 60_000);
    await page.close();
  }, 240_000);

  it("my pods: shows the pod's channel, tops it up from the browser and closes it", async () => {
    const page = await context.newPage();
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${server.url}#/pods`);
    const pod = page.locator(`[data-testid="pod"][data-pod="${podId}"]`);
    await pod.waitFor({ timeout: 30_000 });
    expect(await pod.locator('[data-testid="deposit"]').textContent()).toBe("5 TPT");
    expect(await pod.locator('[data-testid="pod-state"]').textContent()).toBe("open");
    expect(await pod.locator('[data-testid="remaining"]').textContent()).toMatch(/about/);
    expect(await fitsWidth(page)).toBe(true);
    await shot(page, "pods-375");
    await pod.locator('[data-testid="topup-amount"]').fill("2.5");
    await pod.locator('[data-testid="topup"]').click();
    await expect
      .poll(() => pod.locator('[data-testid="deposit"]').textContent(), { timeout: 30_000 })
      .toBe("7.5 TPT");
    const key = { publisher: chain.accounts[0]!.address, provider: chain.accounts[1]!.address, podId };
    expect((await getChannel(chain.context(0), key)).deposit).toBe(7n * TOKEN + TOKEN / 2n);
    // A bad amount is refused before anything is sent, in words.
    await pod.locator('[data-testid="topup-amount"]').fill("abc");
    await pod.locator('[data-testid="topup"]').click();
    await expect
      .poll(() => pod.locator("span.error").textContent(), { timeout: 10_000 })
      .toContain("not a decimal amount");
    await pod.locator('[data-testid="close"]').click();
    await expect
      .poll(() => pod.locator('[data-testid="pod-state"]').textContent(), { timeout: 30_000 })
      .toBe("closing");
    expect((await getChannel(chain.context(0), key)).closeAt).toBeGreaterThan(0n);
    await shot(page, "pods-closing-375");
    await page.close();
  });

  it("my pods: a deployed pod's status, endpoint (opened), streamed logs, top up, delete (channel closing)", async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}#/pods`);
    const pod = page.locator(`[data-testid="pod"][data-pod="${deployed.podId}"]`);
    await pod.waitFor({ timeout: 30_000 });
    await expect
      .poll(() => pod.locator('[data-testid="phase"]').textContent(), { timeout: 30_000 })
      .toMatch(/^running/);
    const url = deployed.endpoints.http[0]!;
    expect(await pod.locator('[data-testid="endpoints"] a').first().getAttribute("href")).toBe(url);
    // Chromium resolves NAME.localhost to loopback: open the pod's URL through the provider's gateway.
    const site = await context.newPage();
    await expect
      .poll(
        async () => {
          const r = await site.goto(url).catch(() => null);
          return r?.ok() ? (await site.textContent("body"))?.trim() : undefined;
        },
        { timeout: 30_000 },
      )
      .toBe("hello from the browser test");
    await shot(site, "pod-site-wide");
    await site.close();
    await pod.locator('[data-testid="logs-toggle"]').click();
    await expect
      .poll(() => pod.locator('[data-testid="logs"]').textContent(), { timeout: 30_000 })
      .toContain(`started-web-${uid}`);
    await shot(page, "pods-deployed-wide");
    await page.setViewportSize({ width: 375, height: 800 });
    expect(await fitsWidth(page)).toBe(true);
    await shot(page, "pods-deployed-375");
    const before = await pod.locator('[data-testid="deposit"]').textContent();
    await pod.locator('[data-testid="topup-amount"]').fill("0.002");
    await pod.locator('[data-testid="topup"]').click();
    await expect
      .poll(() => pod.locator('[data-testid="deposit"]').textContent(), { timeout: 30_000 })
      .not.toBe(before);
    await pod.locator('[data-testid="delete"]').click();
    await expect
      .poll(() => pod.locator('[data-testid="phase"]').textContent(), { timeout: 60_000 })
      .toMatch(/^deleted/);
    const engine = daemon.engine as PodmanEngine;
    await expect
      .poll(async () => (await engine.listPods()).some((m) => m.podId === deployed.podId), {
        timeout: 30_000,
      })
      .toBe(false);
    await shot(page, "pods-deleted-375");
    // Deleting makes the provider start the channel's close on chain (its final claim reaches the close time):
    // after a refresh the card says "closing" and offers no close or top-up.
    const key = {
      publisher: chain.accounts[0]!.address,
      provider: chain.accounts[1]!.address,
      podId: deployed.podId,
    };
    await expect
      .poll(async () => (await getChannel(chain.context(0), key)).closeAt, { timeout: 30_000 })
      .not.toBe(0n);
    await page.getByRole("button", { name: "Refresh" }).click();
    await expect
      .poll(
        () =>
          page
            .locator(`[data-testid="pod"][data-pod="${deployed.podId}"] [data-testid="pod-state"]`)
            .textContent(),
        {
          timeout: 30_000,
        },
      )
      .toBe("closing");
    expect(await pod.locator('[data-testid="close"]').count()).toBe(0);
    await shot(page, "pods-deleted-375");
    await page.close();
  }, 180_000);

  it("earnings page shows the publisher's Payments balance per token and its roles", async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}#/earnings`);
    const row = page.locator('[data-testid="earning"]');
    await row.first().waitFor({ timeout: 30_000 });
    expect(await row.first().textContent()).toContain("TPT");
    expect(await page.locator('[data-testid="provider-earnings"]').textContent()).toContain(
      "not a registered provider",
    );
    expect(await page.locator('[data-testid="developer-earnings"]').textContent()).toContain(
      "no marketplace listing",
    );
    await shot(page, "earnings-wide");
    await page.close();
  });

  it("provider earnings through a browser wallet (EIP-1193): balance after a claim, withdrawn from the browser", async () => {
    const key = { publisher: chain.accounts[0]!.address, provider: chain.accounts[1]!.address, podId };
    const earned = await accrued(chain.context(1), key);
    expect(earned).toBeGreaterThan(0n);
    await claim(chain.context(1), key.publisher, podId, earned);
    const provider = chain.accounts[1]!.address;
    // The daemon's billing also claims for the deployed pod: at least our claim is there.
    expect(await balanceOf(chain.context(1), provider, chain.contracts.token)).toBeGreaterThanOrEqual(earned);
    const page = await context.newPage();
    // Stands in for MetaMask: a minimal EIP-1193 provider that forwards to anvil, whose dev accounts are
    // unlocked, and shares the provider's account. The app uses it through viem's custom() transport.
    await page.addInitScript(walletShim(chain.rpcUrl, provider));
    await page.goto(`${server.url}#/earnings`);
    await page.getByRole("button", { name: "Connect wallet" }).click();
    await expect
      .poll(() => page.locator('[data-testid="account"]').textContent(), { timeout: 30_000 })
      .toContain(`wallet ${provider.slice(0, 6)}`);
    const row = page.locator('[data-testid="earning"]');
    await row.first().waitFor({ timeout: 30_000 });
    expect(await page.locator('[data-testid="provider-earnings"]').textContent()).toContain(
      "devnet-provider",
    );
    expect(await row.first().locator('[data-testid="balance"]').textContent()).not.toBe("0 TPT");
    await page.setViewportSize({ width: 375, height: 800 });
    expect(await fitsWidth(page)).toBe(true);
    await shot(page, "earnings-provider-375");
    await row.first().getByRole("button", { name: "Withdraw" }).click();
    await expect
      .poll(() => balanceOf(chain.context(1), provider, chain.contracts.token), { timeout: 30_000 })
      .toBe(0n);
    await expect
      .poll(() => row.first().locator('[data-testid="balance"]').textContent(), { timeout: 30_000 })
      .toBe("0 TPT");
    await page.close();
  });

  it("a chain that does not answer is reported with what to do", async () => {
    const page = await context.newPage();
    await page.goto(`${deadServer.url}#/providers`);
    const alert = page.getByRole("alert");
    await alert.first().waitFor({ timeout: 30_000 });
    const text = await alert.first().textContent();
    expect(text).toContain("cannot reach the chain at http://127.0.0.1:9/");
    expect(text).toContain("tpod devnet up");
    expect(text).not.toContain("..");
    await shot(page, "unreachable-wide");
    await page.close();
  });

  // Moves the chain's clock past its own channel's notice period.
  it("a provision refused after the channel opened is refunded from My pods: Close, then Refund after the notice", async () => {
    const publisher = chain.accounts[0]!.address;
    const page = await context.newPage();
    await page.goto(`${server.url}#/deploy`);
    const editor = page.locator('[data-testid="manifest"]');
    await editor.waitFor();
    // The image is on IPFS, but the digest is not its manifest's: the provider finds out only when it pulls, after
    // the channel opened.
    await editor.fill(ipfsSiteManifest("refused", `sha256:${"0".repeat(64)}`));
    await page.locator('[data-testid="funds"]').fill("0.002");
    await page.locator('[data-testid="deploy"]').click();
    const error = page.locator('[data-testid="deploy-error"]');
    await error.waitFor({ timeout: 150_000 });
    const said = (await error.textContent()) ?? "";
    expect(said).toContain("the provider refused");
    expect(said).toContain("close it under My pods to get the deposit back");
    const channelId = /payment channel (0x[0-9a-f]{64}) is open/.exec(said)?.[1];
    expect(channelId).toBeDefined();
    const opened = (await openedChannels(chain.context(0), { publisher })).find(
      (c) => c.channelId === channelId,
    );
    expect(opened).toBeDefined();
    const key = { publisher, provider: opened!.provider, podId: opened!.podId };
    const deposit = (await getChannel(chain.context(0), key)).deposit;
    expect(deposit).toBe(2n * 10n ** 15n);

    // My pods finds it on chain (the browser keeps no record): Close starts the notice period.
    await page.goto(`${server.url}#/pods`);
    const pod = page.locator(`[data-testid="pod"][data-pod="${opened!.podId}"]`);
    await pod.waitFor({ timeout: 30_000 });
    expect(await pod.locator('[data-testid="pod-state"]').textContent()).toBe("open");
    await pod.locator('[data-testid="close"]').click();
    await expect
      .poll(() => pod.locator('[data-testid="pod-state"]').textContent(), { timeout: 30_000 })
      .toBe("closing");
    // Refund before the notice passed moves nothing and says how long is left.
    const tokenBalance = () =>
      chain.publicClient.readContract({
        address: chain.contracts.token,
        abi: erc20Abi,
        functionName: "balanceOf",
        args: [publisher],
      });
    const before = await tokenBalance();
    await pod.locator('[data-testid="refund"]').click();
    await pod.getByText(/The notice period runs for/).waitFor({ timeout: 30_000 });
    expect(await tokenBalance()).toBe(before);
    const ch = await getChannel(chain.context(0), key);
    const head = (await chain.publicClient.getBlock()).timestamp;
    await chain.publicClient.request({
      method: "evm_increaseTime" as never,
      params: [`0x${(ch.closeAt - head + 1n).toString(16)}`] as never,
    });
    await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await page.reload();
    await pod.waitFor({ timeout: 30_000 });
    await pod.locator('[data-testid="refund"]').click();
    await expect
      .poll(() => pod.locator('[data-testid="pod-state"]').textContent(), { timeout: 30_000 })
      .toBe("closed");
    expect((await getChannel(chain.context(0), key)).finalized).toBe(true);
    const back = (await tokenBalance()) - before;
    // The provider may claim what accrued until the close; everything else came back to the publisher's wallet.
    expect(back).toBeGreaterThan(0n);
    expect(back).toBeLessThanOrEqual(deposit);
    expect(await pod.locator('[data-testid="refunded"]').textContent()).toBe(
      `${formatTokenAmount(back, 18)} TPT`,
    );
    await shot(page, "pods-refunded-wide");
    await page.close();
  }, 240_000);

  // Last: it moves the chain's clock past the closed pod's notice period.
  it("my pods: a settled pod shows as closed, with what the provider got and the refund, not a rate of 0", async () => {
    const key = { publisher: chain.accounts[0]!.address, provider: chain.accounts[1]!.address, podId };
    const ch = await getChannel(chain.context(0), key);
    const head = (await chain.publicClient.getBlock()).timestamp;
    // The refund test before may have moved the clock past this channel's notice already.
    const ahead = ch.closeAt > head ? ch.closeAt - head + 1n : 1n;
    await chain.publicClient.request({
      method: "evm_increaseTime" as never,
      params: [`0x${ahead.toString(16)}`] as never,
    });
    await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    const refunded = (await refund(chain.context(0), key.provider, podId)).result;
    expect((await getChannel(chain.context(0), key)).finalized).toBe(true);
    const page = await context.newPage();
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${server.url}#/pods`);
    const pod = page.locator(`[data-testid="pod"][data-pod="${podId}"]`);
    await pod.waitFor({ timeout: 30_000 });
    expect(await pod.locator('[data-testid="pod-state"]').textContent()).toBe("closed");
    expect(await pod.locator('[data-testid="deposit"]').textContent()).toBe("7.5 TPT");
    expect(await pod.locator('[data-testid="refunded"]').textContent()).toBe(
      `${formatTokenAmount(refunded, 18)} TPT`,
    );
    expect(await pod.locator('[data-testid="paid"]').textContent()).toBe(
      `${formatTokenAmount(7n * TOKEN + TOKEN / 2n - refunded, 18)} TPT`,
    );
    const text = (await pod.textContent()) ?? "";
    expect(text).not.toContain("per hour");
    expect(text).not.toContain("units");
    await shot(page, "pods-closed-375");
    await page.close();
  });
});

/** Page script: window.ethereum answering with one account and forwarding everything else to the RPC URL. */
function walletShim(rpcUrl: string, account: string): string {
  return `window.ethereum = {
  async request({ method, params }) {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [${JSON.stringify(account)}];
    const res = await fetch(${JSON.stringify(rpcUrl)}, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: params ?? [] }),
    });
    const body = await res.json();
    if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code, data: body.error.data });
    return body.result;
  },
  on() {},
  removeListener() {},
};`;
}
