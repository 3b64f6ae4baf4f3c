// Config validation, key files, SQLite state (journal, nonces, migrations) and log redaction: no containers.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { ReplayCache, RpcError } from "@trustedpods/p2p";
import { getAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, defaultConfigText, loadConfig, parseConfig } from "../src/config.js";
import { KeyError, loadAccountKey, loadOrCreateEncryptionKey } from "../src/keys.js";
import { createLogger } from "../src/log.js";
import { enginePodId, recordedHostPorts } from "../src/provision/translate.js";
import { SqliteNonceStore, StateDb } from "../src/state/db.js";

const run = promisify(execFile);
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-daemon-config-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function errorsOf(text: string): string[] {
  try {
    parseConfig(text, "p.yaml");
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("provider config", () => {
  it("the default written by tpod provider init parses, with its defaults", () => {
    const c = parseConfig(
      defaultConfigText({ payments: "0x5FbDB2315678afecb367f032d93F642f64180aa3" }),
      path.join(tmp, "provider.yaml"),
    );
    expect(c.dataDir).toBe(path.join(tmp, "data"));
    expect(c.chain.accountKeyFile).toBe(path.join(tmp, "data", "account.key"));
    expect(c.p2p.listen).toEqual(["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/tcp/4002/ws"]);
    expect(c.attester).toBe("insecure-dev");
    expect(c.pricing.prices.cpu).toBe(10_000_000_000n);
    expect(c.ipfs).toMatchObject({ kind: "helia", network: "devnet" });
    expect(c.metrics.listen).toBe("127.0.0.1:9464");
    expect(c.billing).toEqual({ minNoticeSeconds: 3600, minDepositSeconds: 3600, quoteTtlSeconds: 300 });
    expect(c.gateway).toEqual({ listen: "0.0.0.0:8080", baseDomain: "pods.localhost", dataPlane: "auto" });
  });

  it("reads the gateway's data plane, nginx binary and workers, and refuses bad ones where they are", () => {
    const base = defaultConfigText({ payments: "0x5FbDB2315678afecb367f032d93F642f64180aa3" });
    const withGateway = (g: string) => base.replace(/^gateway:\n(?: {2}.*\n)+/m, `gateway:\n${g}`);
    const ok = parseConfig(
      withGateway("  dataPlane: nginx\n  nginx: /opt/nginx/sbin/nginx\n  workers: 3\n"),
      path.join(tmp, "provider.yaml"),
    );
    expect(ok.gateway).toMatchObject({ dataPlane: "nginx", nginx: "/opt/nginx/sbin/nginx", workers: 3 });
    const text = withGateway("  dataPlane: envoy\n  nginx: sbin/nginx\n  workers: 0\n");
    const line = text.split("\n").findIndex((l) => l.includes("dataPlane")) + 1;
    expect(errorsOf(text)).toEqual([
      `p.yaml:${line}:14: gateway.dataPlane must be one of auto, nginx, node`,
      `p.yaml:${line + 1}:10: gateway.nginx "sbin/nginx" must be an absolute path to the nginx binary`,
      `p.yaml:${line + 2}:12: gateway.workers must be an integer from 1 to 64`,
    ]);
  });

  it("reads billing.tokenUnitsPerEther exactly (a string above 2^53), and refuses a fraction or zero", () => {
    const base = defaultConfigText({ payments: "0x5FbDB2315678afecb367f032d93F642f64180aa3" });
    expect(parseConfig(base, path.join(tmp, "p.yaml")).billing.tokenUnitsPerEther).toBeUndefined();
    const withPrice = (v: string) => base.replace(/^billing:\n/m, `billing:\n  tokenUnitsPerEther: ${v}\n`);
    expect(
      parseConfig(withPrice('"3000000000000000000000001"'), path.join(tmp, "p.yaml")).billing
        .tokenUnitsPerEther,
    ).toBe(3_000_000_000_000_000_000_000_001n);
    expect(parseConfig(withPrice("3000000000"), path.join(tmp, "p.yaml")).billing.tokenUnitsPerEther).toBe(
      3_000_000_000n,
    );
    for (const bad of ["1.5", "0", '"-3"', "3e30"])
      expect(errorsOf(withPrice(bad)).join()).toContain(
        "billing.tokenUnitsPerEther must be a positive integer",
      );
  });

  it("reports every error at once, located, in file order", () => {
    const text = [
      "dataDir: 3",
      "chain: {rpcUrl: foo, payments: '0x12'}",
      "engin: {}",
      "metrics: {listen: '0.0.0.0:9464'}",
      "attester: sgx-magic",
      "pricing:",
      "  token: '0x5FbDB2315678afecb367f032d93F642f64180aa3'",
      "  symbol: T",
      "  decimals: 18",
      "  prices: {cpu: -1}",
      "limits: {maxPods: 0}",
      "ipfs: {kubo: {url: ftp://x}}",
    ].join("\n");
    expect(errorsOf(text)).toEqual([
      "p.yaml:1:10: dataDir must be a non-empty string",
      'p.yaml:2:17: chain.rpcUrl "foo" is not an http(s) or ws(s) URL',
      'p.yaml:2:32: chain.payments "0x12" is not an address (0x and 40 hex digits; quote it)',
      'p.yaml:3:1: unknown key "engin" in the config (did you mean "engine"?)',
      'p.yaml:4:19: metrics.listen "0.0.0.0:9464" must be a loopback HOST:PORT (127.0.0.1, localhost or [::1])',
      "p.yaml:5:11: attester must be one of insecure-dev, configfs-tsm",
      'p.yaml:10:17: pricing: price of cpu must be a whole number of token base units, not "-1"',
      "p.yaml:11:19: limits.maxPods must be an integer from 1 to 100000",
      'p.yaml:12:20: ipfs.kubo.url "ftp://x" is not an http(s) URL',
    ]);
  });

  it("requires chain and pricing, and rejects YAML syntax errors", () => {
    expect(errorsOf("dataDir: x\n")).toEqual([
      'p.yaml:1:1: the config needs "chain"',
      'p.yaml:1:1: the config needs "pricing" (or "pricingFile")',
    ]);
    expect(errorsOf("a: [\n")[0]).toMatch(/^p\.yaml:\d+:\d+: /);
    expect(errorsOf("chain: 1\nchain: 2\n")[0]).toMatch(/^p\.yaml:2:1: .*[Uu]nique/);
  });
});

const tpod = path.resolve(import.meta.dirname, "../../cli/bin/tpod");
const cliBuilt = existsSync(path.resolve(import.meta.dirname, "../../cli/dist/main.js"));

describe.skipIf(!cliBuilt)("tpod provider init", () => {
  it("writes a config that parses and a 0600 account key, and refuses to overwrite", async () => {
    const dir = path.join(tmp, "init");
    await mkdir(dir);
    const { stdout } = await run(
      tpod,
      ["provider", "init", "--payments", "0x5FbDB2315678afecb367f032d93F642f64180aa3"],
      { cwd: dir },
    );
    expect(stdout.trim()).toMatch(/^0x[0-9a-fA-F]{40}$/);
    const c = loadConfig(path.join(dir, "provider.yaml"));
    expect(c.chain.payments).toBe("0x5FbDB2315678afecb367f032d93F642f64180aa3");
    expect((await stat(c.chain.accountKeyFile)).mode & 0o777).toBe(0o600);
    expect((await loadAccountKey(c.chain.accountKeyFile)).address).toBe(stdout.trim());
    const again = await run(tpod, ["provider", "init"], { cwd: dir }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(again).toMatchObject({ code: 1 });
    const bad = await run(tpod, ["provider", "serve", "--config", path.join(dir, "nope.yaml")], {
      cwd: dir,
    }).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stderr: string }).stderr).toContain("cannot read");
  }, 180000);
});

describe("keys", () => {
  it("creates the encryption key once, 0600, and loads the same key again", async () => {
    const f = path.join(tmp, "k", "encryption.jwk");
    const a = await loadOrCreateEncryptionKey(f);
    expect((await stat(f)).mode & 0o777).toBe(0o600);
    const b = await loadOrCreateEncryptionKey(f);
    expect(b.kid).toBe(a.kid);
    expect(a.publicJwk).toMatchObject({ kty: "EC", crv: "P-256", kid: a.kid });
    expect(a.publicJwk).not.toHaveProperty("d");
    await chmod(f, 0o644);
    await expect(loadOrCreateEncryptionKey(f)).rejects.toMatchObject({ code: "KEY_FILE_PERMISSIONS" });
  });

  it("loads the account key only from a private file holding one key", async () => {
    const f = path.join(tmp, "account.key");
    await writeFile(f, "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n", {
      mode: 0o600,
    });
    expect((await loadAccountKey(f)).address).toBe("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    await chmod(f, 0o640);
    await expect(loadAccountKey(f)).rejects.toBeInstanceOf(KeyError);
    await writeFile(path.join(tmp, "bad.key"), "hello", { mode: 0o600 });
    await expect(loadAccountKey(path.join(tmp, "bad.key"))).rejects.toMatchObject({
      code: "KEY_FILE_MALFORMED",
    });
    await expect(loadAccountKey(path.join(tmp, "none.key"))).rejects.toMatchObject({
      code: "KEY_FILE_MISSING",
    });
  });
});

describe("state", () => {
  it("persists nonces so a restarted daemon still refuses a replay", async () => {
    const dir = path.join(tmp, "state1");
    const publisher = getAddress("0x70997970c51812dc3a010c7d01b50e0d17dc79c8");
    const expiry = BigInt(Math.floor(Date.now() / 1000) + 300);
    let db = StateDb.open(dir);
    let cache = await ReplayCache.open(new SqliteNonceStore(db));
    await cache.remember(publisher, 42n, expiry);
    db.close();
    db = StateDb.open(dir);
    cache = await ReplayCache.open(new SqliteNonceStore(db));
    const err = await cache.remember(publisher, 42n, expiry).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).reason).toBe("replayed");
    await cache.remember(publisher, 43n, expiry);
    await new SqliteNonceStore(db).prune(expiry);
    expect(await new SqliteNonceStore(db).load(0n)).toEqual([]);
    db.close();
  });

  it("runs every module's migrations once, in the state module", () => {
    const dir = path.join(tmp, "state2");
    let db = StateDb.open(dir);
    db.db
      .prepare(
        "INSERT INTO billing_claims (pod_key, channel_id, cumulative, status, created_ms, updated_ms) VALUES ('p', '0x01', '1', 'intent', 0, 0)",
      )
      .run();
    db.close();
    db = StateDb.open(dir);
    const rows = db.db
      .prepare("SELECT module, version FROM schema_migrations ORDER BY module, version")
      .all();
    expect(rows).toEqual([
      { module: "billing", version: 1 },
      { module: "billing", version: 2 },
      { module: "core", version: 1 },
      { module: "core", version: 2 },
    ]);
    expect(db.db.prepare("SELECT pod_key, cumulative FROM billing_claims").all()).toEqual([
      { pod_key: "p", cumulative: "1" },
    ]);
    expect(db.db.prepare("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    db.close();
  });

  it("journals operations and keeps pods per (publisher, pod id)", () => {
    const db = StateDb.open(path.join(tmp, "state3"));
    const podId = `0x${"11".repeat(32)}` as const;
    const a = enginePodId("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", podId);
    const b = enginePodId("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", podId);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^p[0-9a-f]{32}$/);
    db.insertPod({
      id: a,
      publisher: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      podId,
      manifest: new Uint8Array([1]),
      phase: "pending",
      message: "",
      channel: null,
      endpoints: [],
      images: {},
    });
    const op = db.beginOperation(a, "provision");
    expect(db.pendingOperations().map((o) => o.id)).toEqual([op]);
    db.finishOperation(op, "done");
    expect(db.pendingOperations()).toEqual([]);
    expect(db.getPod(a)?.phase).toBe("pending");
    db.updatePod(a, {
      phase: "running",
      endpoints: [{ container: "web", containerPort: 80, protocol: "http", hostname: "x.test" }],
    });
    expect(db.hostnamesInUse("other")).toEqual(new Set(["x.test"]));
    expect(db.podCountsByPhase().running).toBe(1);
    db.close();
  });

  it("remembers why billing stopped a pod across a reopen, and forgets it once the pod runs again", () => {
    const dir = path.join(tmp, "state4");
    let db = StateDb.open(dir);
    const id = enginePodId("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", `0x${"22".repeat(32)}`);
    db.insertPod({
      id,
      publisher: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      podId: `0x${"22".repeat(32)}`,
      manifest: new Uint8Array([1]),
      phase: "running",
      message: "",
      channel: null,
      endpoints: [{ container: "db", containerPort: 5432, protocol: "tcp", tcpAddress: "127.0.0.1:40001" }],
      images: {},
    });
    expect(db.getPod(id)?.stopReason).toBeNull();
    db.updatePod(id, { phase: "stopped", message: "out of funds", stopReason: "funds" });
    db.close();
    // What recovery reads after a restart: the gateway answers 402 for it again.
    db = StateDb.open(dir);
    expect(db.getPod(id)).toMatchObject({ phase: "stopped", stopReason: "funds" });
    expect(() => db.updatePod(id, { stopReason: "broke" as never })).toThrow(/CHECK constraint/);
    db.updatePod(id, { phase: "running", message: "" });
    expect(db.getPod(id)?.stopReason).toBeNull();
    db.close();
  });

  it("reads a tcp endpoint's host port from records made before hostPort was kept", () => {
    expect(
      recordedHostPorts([
        { container: "db", containerPort: 5432, protocol: "tcp", tcpAddress: "127.0.0.1:40001" },
        { container: "db", containerPort: 6379, protocol: "tcp", tcpAddress: "[::1]:40002", hostPort: 40003 },
        { container: "web", containerPort: 80, protocol: "http", hostname: "x.test" },
        { container: "q", containerPort: 1, protocol: "tcp" },
      ]),
    ).toEqual(
      new Map([
        ["db/5432", 40001],
        ["db/6379", 40003],
      ]),
    );
  });
});

describe("logs", () => {
  it("redacts secrets, keys and bodies", () => {
    let out = "";
    const sink = new Writable({
      write(chunk, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const log = createLogger("info", sink);
    log.info(
      { pod: "p1", secret: "hunter2", req: { body: "raw-bytes", privateKey: "0xabc" }, env: { A: "b" } },
      "x",
    );
    expect(out).toContain('"pod":"p1"');
    for (const leaked of ["hunter2", "raw-bytes", "0xabc", '"A"']) expect(out).not.toContain(leaked);
  });
});
