// A data dir written before the state module owned billing's schema: billing kept its own version in
// `billing_meta` beside the core's `schema_migrations`. The old layout is written here with the SQL of that time
// (not this daemon's), filled with a row of every kind, then opened by this daemon: nothing may be lost, billing's
// version moves into schema_migrations, and only the steps it did not have run.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { getAddress } from "viem";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BillingStore } from "../src/billing/store.js";
import { StateDb, stateFile } from "../src/state/db.js";

const PUBLISHER = "0x00000000000000000000000000000000000000Aa";
const POD_ID = `0x${"11".repeat(32)}`;
const CHANNEL = `0x${"44".repeat(32)}`;

/** The core tables and schema_migrations as daemons wrote them (core steps 1 and 2). */
const OLD_CORE = `
  CREATE TABLE schema_migrations (module TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL, PRIMARY KEY (module, version));
  CREATE TABLE pods (id TEXT PRIMARY KEY, publisher TEXT NOT NULL, pod_id TEXT NOT NULL, manifest BLOB NOT NULL, phase TEXT NOT NULL CHECK (phase IN ('pending', 'running', 'stopped', 'failed', 'deleted')), message TEXT NOT NULL DEFAULT '', channel TEXT, endpoints TEXT NOT NULL DEFAULT '[]', images TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, UNIQUE (publisher, pod_id));
  CREATE TABLE operations (id INTEGER PRIMARY KEY AUTOINCREMENT, pod_key TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('provision', 'update', 'delete')), status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')), manifest BLOB, error TEXT, started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
  CREATE INDEX operations_pending ON operations (status) WHERE status = 'pending';
  CREATE TABLE nonces (publisher TEXT NOT NULL, nonce TEXT NOT NULL, expiry INTEGER NOT NULL, PRIMARY KEY (publisher, nonce));
  CREATE INDEX nonces_expiry ON nonces (expiry);
  ALTER TABLE pods ADD COLUMN stop_reason TEXT CHECK (stop_reason IN ('funds', 'closed', 'underpaid'));
  INSERT INTO schema_migrations VALUES ('core', 1, 1), ('core', 2, 2);`;

/** Billing's own step 1, with its own version table. */
const OLD_BILLING_1 = `
  CREATE TABLE billing_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE billing_pods (pod_key TEXT PRIMARY KEY, pod_id TEXT NOT NULL, publisher TEXT NOT NULL, provider TEXT NOT NULL, channel_id TEXT NOT NULL, token TEXT NOT NULL, rate TEXT NOT NULL, reserved TEXT NOT NULL, state TEXT NOT NULL, stopped_at TEXT, remove_at TEXT, provider_closed INTEGER NOT NULL DEFAULT 0, observed TEXT, warnings TEXT NOT NULL DEFAULT '[]', last_error TEXT, updated_ms INTEGER NOT NULL);
  CREATE INDEX billing_pods_state ON billing_pods(state);
  CREATE TABLE billing_claims (id INTEGER PRIMARY KEY AUTOINCREMENT, pod_key TEXT NOT NULL, channel_id TEXT NOT NULL, cumulative TEXT NOT NULL, status TEXT NOT NULL, tx_hash TEXT, error TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
  CREATE INDEX billing_claims_pod ON billing_claims(pod_key, status);
  CREATE TABLE billing_reservations (id INTEGER PRIMARY KEY AUTOINCREMENT, pod_key TEXT NOT NULL, start_time TEXT, end_time TEXT);
  CREATE INDEX billing_reservations_pod ON billing_reservations(pod_key);
  CREATE TABLE billing_usage_samples (pod_key TEXT NOT NULL, time_ms INTEGER NOT NULL, cpu_seconds REAL NOT NULL, memory_bytes REAL NOT NULL, rx_bytes REAL NOT NULL, tx_bytes REAL NOT NULL);
  CREATE INDEX billing_usage_samples_pod ON billing_usage_samples(pod_key, time_ms);
  CREATE TABLE billing_usage_totals (pod_key TEXT PRIMARY KEY, cpu_seconds REAL NOT NULL DEFAULT 0, rx_bytes REAL NOT NULL DEFAULT 0, tx_bytes REAL NOT NULL DEFAULT 0, memory_bytes REAL NOT NULL DEFAULT 0, memory_max REAL NOT NULL DEFAULT 0, last_cpu REAL, last_rx REAL, last_tx REAL, samples INTEGER NOT NULL DEFAULT 0, last_ms INTEGER);
  INSERT INTO billing_meta VALUES ('schema_version', '1');`;

/** Billing's own step 2. */
const OLD_BILLING_2 = `
  ALTER TABLE billing_pods ADD COLUMN required_rate TEXT;
  ALTER TABLE billing_pods ADD COLUMN waive_since TEXT;
  ALTER TABLE billing_pods ADD COLUMN waive_until TEXT;
  UPDATE billing_meta SET value = '2' WHERE key = 'schema_version';`;

const RATE = (2n ** 90n).toString();

/** One row of every table, as a daemon of that time would have left them. */
function fill(db: DatabaseSync, billingVersion: 1 | 2): void {
  db.prepare(
    "INSERT INTO pods (id, publisher, pod_id, manifest, phase, message, channel, endpoints, images, created_at, updated_at, stop_reason) VALUES ('pod-a', ?, ?, ?, 'stopped', 'out of funds', ?, ?, '{}', 10, 20, 'funds')",
  ).run(
    PUBLISHER,
    POD_ID,
    new Uint8Array([1, 2, 3]),
    JSON.stringify({ chainId: "31337", paymentsContract: "0x01" }),
    JSON.stringify([{ container: "web", containerPort: 80, protocol: "http", hostname: "a.localhost" }]),
  );
  db.prepare(
    "INSERT INTO operations (pod_key, kind, status, manifest, started_at, updated_at) VALUES ('pod-a', 'update', 'pending', ?, 30, 30)",
  ).run(new Uint8Array([4, 5]));
  db.prepare("INSERT INTO nonces VALUES (?, '42', 9999999999)").run(PUBLISHER);
  db.prepare(
    `INSERT INTO billing_pods (pod_key, pod_id, publisher, provider, channel_id, token, rate, reserved, state, stopped_at, provider_closed, warnings, updated_ms${billingVersion === 2 ? ", required_rate, waive_since, waive_until" : ""})
     VALUES ('pod-a', ?, ?, '0x03', ?, '0x05', ?, ?, 'stopped_funds', ?, 1, '["low deposit"]', 40${billingVersion === 2 ? ", '7', '100', '160'" : ""})`,
  ).run(
    POD_ID,
    PUBLISHER,
    CHANNEL,
    RATE,
    JSON.stringify({ cpuMillis: "100", memoryMiB: "128", storageGiB: "1", gpu: "0" }),
    (2n ** 70n).toString(),
  );
  db.prepare(
    "INSERT INTO billing_claims (pod_key, channel_id, cumulative, status, tx_hash, created_ms, updated_ms) VALUES ('pod-a', ?, ?, 'confirmed', '0xabc', 50, 51)",
  ).run(CHANNEL, (2n ** 80n).toString());
  db.exec("INSERT INTO billing_reservations (pod_key, start_time, end_time) VALUES ('pod-a', '100', '160')");
  db.exec("INSERT INTO billing_usage_samples VALUES ('pod-a', 60, 1.5, 1024, 300, 150)");
  db.exec(
    "INSERT INTO billing_usage_totals (pod_key, cpu_seconds, rx_bytes, tx_bytes, memory_bytes, memory_max, samples, last_ms) VALUES ('pod-a', 1.5, 300, 150, 1024, 2048, 1, 60)",
  );
}

function writeOldLayout(dir: string, billingVersion: 1 | 2): void {
  const db = new DatabaseSync(stateFile(dir));
  db.exec(OLD_CORE);
  db.exec(OLD_BILLING_1);
  if (billingVersion === 2) db.exec(OLD_BILLING_2);
  fill(db, billingVersion);
  db.close();
}

function migrations(state: StateDb): unknown[] {
  return state.db.prepare("SELECT module, version FROM schema_migrations ORDER BY module, version").all();
}

describe("state database: a data dir from before state/db.ts owned billing's schema", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "tpod-state-old-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const billingVersion of [1, 2] as const) {
    it(`opens one with billing at its own version ${billingVersion} and loses nothing`, () => {
      writeOldLayout(dir, billingVersion);
      const state = StateDb.open(dir);
      try {
        expect(migrations(state)).toEqual([
          { module: "billing", version: 1 },
          { module: "billing", version: 2 },
          { module: "core", version: 1 },
          { module: "core", version: 2 },
        ]);
        expect(state.hasTable("billing_meta")).toBe(false);

        const pod = state.getPod("pod-a")!;
        expect(pod).toMatchObject({
          publisher: getAddress(PUBLISHER),
          podId: POD_ID,
          phase: "stopped",
          message: "out of funds",
          stopReason: "funds",
          channel: { chainId: "31337", paymentsContract: "0x01" },
          endpoints: [{ container: "web", containerPort: 80, protocol: "http", hostname: "a.localhost" }],
          createdAt: 10,
          updatedAt: 20,
        });
        expect([...pod.manifest]).toEqual([1, 2, 3]);
        expect(state.pendingOperations().map((o) => [o.podKey, o.kind, [...(o.manifest ?? [])]])).toEqual([
          ["pod-a", "update", [4, 5]],
        ]);
        expect(state.db.prepare("SELECT publisher, nonce FROM nonces").all()).toEqual([
          { publisher: PUBLISHER, nonce: "42" },
        ]);

        const billing = new BillingStore(state.db);
        expect(billing.getPod("pod-a")).toMatchObject({
          channelId: CHANNEL,
          ratePerSecond: 2n ** 90n,
          // A row from before billing's step 2 was checked at exactly the pod's price.
          requiredRate: billingVersion === 2 ? 7n : 2n ** 90n,
          waiver: billingVersion === 2 ? { since: 100n, until: 160n } : null,
          reserved: { cpuMillis: 100n, memoryMiB: 128n, storageGiB: 1n, gpu: 0n },
          state: "stopped_funds",
          stoppedAt: 2n ** 70n,
          providerClosed: true,
          warnings: ["low deposit"],
        });
        expect(billing.claims("pod-a").map((c) => [c.cumulative, c.status, c.txHash])).toEqual([
          [2n ** 80n, "confirmed", "0xabc"],
        ]);
        expect(billing.reservations("pod-a")).toEqual([{ start: 100n, end: 160n }]);
        expect(billing.usageSamples("pod-a")).toEqual([
          { timeMs: 60, cpuSeconds: 1.5, memoryBytes: 1024, rxBytes: 300, txBytes: 150 },
        ]);
        expect(billing.usageTotals("pod-a")).toMatchObject({
          cpuSeconds: 1.5,
          memoryMaxBytes: 2048,
          samples: 1,
        });

        // Writable at the new version: billing's step 2 columns exist whichever version the file had.
        billing.updateReserved("pod-a", { cpuMillis: 200n, memoryMiB: 128n, storageGiB: 1n, gpu: 0n }, 9n);
        expect(billing.getPod("pod-a")?.requiredRate).toBe(9n);
      } finally {
        state.close();
      }
      // Opening again runs nothing more.
      const again = StateDb.open(dir);
      expect(migrations(again)).toHaveLength(4);
      again.close();
    });
  }

  it("refuses a file whose billing tables a newer daemon wrote, changing nothing", () => {
    writeOldLayout(dir, 2);
    const db = new DatabaseSync(stateFile(dir));
    db.exec("UPDATE billing_meta SET value = '3' WHERE key = 'schema_version'");
    db.close();
    expect(() => StateDb.open(dir)).toThrow(
      /billing tables have schema version 3, newer than this daemon's 2/,
    );
    const after = new DatabaseSync(stateFile(dir), { readOnly: true });
    expect(after.prepare("SELECT value FROM billing_meta").all()).toEqual([{ value: "3" }]);
    expect(
      after.prepare("SELECT COUNT(*) AS n FROM schema_migrations WHERE module = 'billing'").get(),
    ).toEqual({
      n: 0,
    });
    after.close();
  });
});
