/**
 * The daemon's state in SQLite (node:sqlite, WAL) in the data dir: pods, an operations journal for crash
 * recovery, the replay cache's nonces, and the one schema and its migrations, billing's `billing_*` tables
 * included (`migrateState`). The one connection is shared: other modules (billing's BillingStore) keep their rows
 * on it and use this module's `transaction`, so a transaction opened by one joins the other's instead of failing.
 * Tools outside the daemon read it through `openReadOnly`.
 */
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { NonceRecord, NonceStore } from "@trustedpods/p2p";
import { type Address, getAddress, type Hex } from "viem";
import type { PodStopReason } from "../gateway/types.js";

export type PodPhaseName = "pending" | "running" | "stopped" | "failed" | "deleted";
export type OperationKind = "provision" | "update" | "delete";
export type OperationStatus = "pending" | "done" | "failed";

export interface EndpointRecord {
  container: string;
  containerPort: number;
  protocol: "http" | "tcp" | "udp";
  /** http: the hostname routed by the gateway, tcp: "host:port". */
  hostname?: string;
  url?: string;
  tcpAddress?: string;
  /** udp: "host:port" to send datagrams to. */
  udpAddress?: string;
  /** tcp and udp: the host port the engine published it on, asked for again on update and restart so it stays. */
  hostPort?: number;
}

export interface StoredPod {
  /** Engine pod id, derived from (publisher, pod id). */
  id: string;
  publisher: Address;
  podId: Hex;
  /** The Pod message's protobuf bytes as the publisher sent them. */
  manifest: Uint8Array;
  phase: PodPhaseName;
  message: string;
  /** Channel reference (JSON of ChannelRef: chainId, paymentsContract). */
  channel: { chainId: string; paymentsContract: string } | null;
  endpoints: EndpointRecord[];
  /** Engine image refs per container, for recovery and cleanup. */
  images: Record<string, string>;
  /** Why billing stopped the pod (phase "stopped"): the gateway answers it for the pod's hostnames. */
  stopReason: PodStopReason | null;
  createdAt: number;
  updatedAt: number;
}

export interface OperationRecord {
  id: number;
  podKey: string;
  kind: OperationKind;
  status: OperationStatus;
  /** For update: the Pod bytes being applied. */
  manifest: Uint8Array | null;
  error: string | null;
  startedAt: number;
  updatedAt: number;
}

type Row = Record<string, unknown>;

/** The state database's file in a data dir. */
export function stateFile(dataDir: string): string {
  return path.join(dataDir, "state.sqlite");
}

/**
 * Runs `fn` in one SQLite transaction on `db`. Nesting-safe: inside an open transaction `fn` joins it, so the
 * outermost caller commits or rolls back everything (SQLite has no nested BEGIN).
 */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  if (db.isTransaction) return fn();
  db.exec("BEGIN IMMEDIATE");
  try {
    const out = fn();
    db.exec("COMMIT");
    return out;
  } catch (err) {
    db.exec("ROLLBACK");
    throw err;
  }
}

export class StateDb {
  readonly db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.db = db;
  }

  static open(dataDir: string): StateDb {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const db = new DatabaseSync(stateFile(dataDir));
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
    db.exec("PRAGMA busy_timeout = 5000");
    migrateState(db);
    return new StateDb(db);
  }

  /**
   * The state of a data dir for reading while the daemon runs (WAL lets readers in); no migrations run.
   * Undefined when the daemon never ran there.
   */
  static openReadOnly(dataDir: string): StateDb | undefined {
    const file = stateFile(dataDir);
    if (!existsSync(file)) return undefined;
    const db = new DatabaseSync(file, { readOnly: true });
    db.exec("PRAGMA busy_timeout = 5000");
    return new StateDb(db);
  }

  /** Runs `fn` in one transaction; nested calls (from any module on this connection) join the outer one. */
  transaction<T>(fn: () => T): T {
    return transaction(this.db, fn);
  }

  /** Whether a table exists (a read-only view of a state the daemon created with an older schema). */
  hasTable(name: string): boolean {
    return (
      this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined
    );
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }

  // ------------------------------------------------------------------------------------------------ pods

  insertPod(p: Omit<StoredPod, "createdAt" | "updatedAt" | "stopReason">): void {
    const now = Date.now();
    this.db
      .prepare(
        `INSERT INTO pods (id, publisher, pod_id, manifest, phase, message, channel, endpoints, images, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET manifest = excluded.manifest, phase = excluded.phase, message = excluded.message,
           channel = excluded.channel, endpoints = excluded.endpoints, images = excluded.images, updated_at = excluded.updated_at`,
      )
      .run(
        p.id,
        p.publisher,
        p.podId,
        p.manifest,
        p.phase,
        p.message,
        p.channel ? JSON.stringify(p.channel) : null,
        JSON.stringify(p.endpoints),
        JSON.stringify(p.images),
        now,
        now,
      );
  }

  getPod(id: string): StoredPod | undefined {
    const row = this.db.prepare("SELECT * FROM pods WHERE id = ?").get(id) as Row | undefined;
    return row ? podFromRow(row) : undefined;
  }

  listPods(phases?: PodPhaseName[]): StoredPod[] {
    const rows = this.db.prepare("SELECT * FROM pods ORDER BY created_at").all() as Row[];
    const pods = rows.map(podFromRow);
    return phases ? pods.filter((p) => phases.includes(p.phase)) : pods;
  }

  countActivePods(): number {
    const row = this.db
      .prepare("SELECT COUNT(*) AS n FROM pods WHERE phase IN ('pending', 'running', 'stopped')")
      .get() as Row;
    return Number(row.n);
  }

  updatePod(
    id: string,
    fields: Partial<
      Pick<StoredPod, "phase" | "message" | "endpoints" | "images" | "manifest" | "stopReason">
    >,
  ): void {
    const sets: string[] = [];
    const values: (string | number | Uint8Array | null)[] = [];
    if (fields.phase !== undefined) sets.push("phase = ?") && values.push(fields.phase);
    if (fields.message !== undefined) sets.push("message = ?") && values.push(fields.message);
    if (fields.endpoints !== undefined)
      sets.push("endpoints = ?") && values.push(JSON.stringify(fields.endpoints));
    if (fields.images !== undefined) sets.push("images = ?") && values.push(JSON.stringify(fields.images));
    if (fields.manifest !== undefined) sets.push("manifest = ?") && values.push(fields.manifest);
    // Leaving "stopped" forgets why it stopped.
    if (fields.stopReason !== undefined || (fields.phase !== undefined && fields.phase !== "stopped"))
      sets.push("stop_reason = ?") && values.push(fields.stopReason ?? null);
    sets.push("updated_at = ?");
    values.push(Date.now());
    this.db.prepare(`UPDATE pods SET ${sets.join(", ")} WHERE id = ?`).run(...values, id);
  }

  podCountsByPhase(): Record<PodPhaseName, number> {
    const out: Record<PodPhaseName, number> = { pending: 0, running: 0, stopped: 0, failed: 0, deleted: 0 };
    for (const row of this.db.prepare("SELECT phase, COUNT(*) AS n FROM pods GROUP BY phase").all() as Row[])
      out[row.phase as PodPhaseName] = Number(row.n);
    return out;
  }

  /** Hostnames routed to pods other than `exceptId` that are not deleted or failed. */
  hostnamesInUse(exceptId: string): Set<string> {
    const out = new Set<string>();
    for (const p of this.listPods(["pending", "running", "stopped"]))
      if (p.id !== exceptId) for (const e of p.endpoints) if (e.hostname) out.add(e.hostname);
    return out;
  }

  // ------------------------------------------------------------------------------------------------ journal

  beginOperation(podKey: string, kind: OperationKind, manifest: Uint8Array | null = null): number {
    const now = Date.now();
    const r = this.db
      .prepare(
        "INSERT INTO operations (pod_key, kind, status, manifest, started_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?)",
      )
      .run(podKey, kind, manifest, now, now);
    return Number(r.lastInsertRowid);
  }

  finishOperation(id: number, status: "done" | "failed", error: string | null = null): void {
    this.db
      .prepare("UPDATE operations SET status = ?, error = ?, updated_at = ? WHERE id = ?")
      .run(status, error, Date.now(), id);
  }

  pendingOperations(): OperationRecord[] {
    return (
      this.db.prepare("SELECT * FROM operations WHERE status = 'pending' ORDER BY id").all() as Row[]
    ).map(opFromRow);
  }

  operations(podKey: string): OperationRecord[] {
    return (
      this.db.prepare("SELECT * FROM operations WHERE pod_key = ? ORDER BY id").all(podKey) as Row[]
    ).map(opFromRow);
  }
}

/** Raised when the database was written by a newer daemon than this one (a step this daemon does not know). */
export class SchemaTooNewError extends Error {
  override readonly name = "SchemaTooNewError";
  readonly code = "STATE_SCHEMA_TOO_NEW";
}

/**
 * Brings `db` to this daemon's schema: every module's not-yet-applied steps in order, each in a transaction,
 * recorded in `schema_migrations` (module, version). Idempotent and cheap when nothing is due, so a module handed
 * a bare connection (billing's store in tests) may call it too. Steps are append-only: never edit a released
 * step, add a new one. Refuses a database a newer daemon wrote rather than run on a schema it does not know.
 */
export function migrateState(db: DatabaseSync): void {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (module TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL, PRIMARY KEY (module, version))",
  );
  adoptLegacyBillingVersion(db);
  for (const [module, steps] of Object.entries(MIGRATIONS)) {
    const row = db.prepare("SELECT MAX(version) AS v FROM schema_migrations WHERE module = ?").get(module) as
      | Row
      | undefined;
    const current = Number(row?.v ?? 0);
    if (current > steps.length) throw tooNew(module, current, steps.length);
    for (let v = current + 1; v <= steps.length; v++)
      transaction(db, () => {
        db.exec(steps[v - 1]!);
        recordStep(db, module, v);
      });
  }
}

function tooNew(module: string, found: number, known: number): SchemaTooNewError {
  return new SchemaTooNewError(
    `the state database's ${module} tables have schema version ${found}, newer than this daemon's ${known}: upgrade the daemon`,
  );
}

function recordStep(db: DatabaseSync, module: string, version: number): void {
  db.prepare("INSERT INTO schema_migrations (module, version, applied_at) VALUES (?, ?, ?)").run(
    module,
    version,
    Date.now(),
  );
}

/**
 * Billing once kept its own version in `billing_meta` (key 'schema_version'). A database from then has billing's
 * tables at that version but no "billing" rows in schema_migrations: record the steps it already has, so only
 * the later ones run, and drop the old table. Its rows are left as they are.
 */
function adoptLegacyBillingVersion(db: DatabaseSync): void {
  const hasMeta = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'billing_meta'")
    .get();
  if (!hasMeta) return;
  transaction(db, () => {
    const row = db.prepare("SELECT value FROM billing_meta WHERE key = 'schema_version'").get() as
      | Row
      | undefined;
    const legacy = Number(row?.value ?? 0);
    if (legacy > BILLING_MIGRATIONS.length) throw tooNew("billing", legacy, BILLING_MIGRATIONS.length);
    const known = db
      .prepare("SELECT COUNT(*) AS n FROM schema_migrations WHERE module = 'billing'")
      .get() as Row;
    if (Number(known.n) === 0) for (let v = 1; v <= legacy; v++) recordStep(db, "billing", v);
    db.exec("DROP TABLE billing_meta");
  });
}

const CORE_MIGRATIONS = [
  `CREATE TABLE pods (
     id TEXT PRIMARY KEY,
     publisher TEXT NOT NULL,
     pod_id TEXT NOT NULL,
     manifest BLOB NOT NULL,
     phase TEXT NOT NULL CHECK (phase IN ('pending', 'running', 'stopped', 'failed', 'deleted')),
     message TEXT NOT NULL DEFAULT '',
     channel TEXT,
     endpoints TEXT NOT NULL DEFAULT '[]',
     images TEXT NOT NULL DEFAULT '{}',
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     UNIQUE (publisher, pod_id)
   );
   CREATE TABLE operations (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     pod_key TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('provision', 'update', 'delete')),
     status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
     manifest BLOB,
     error TEXT,
     started_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE INDEX operations_pending ON operations (status) WHERE status = 'pending';
   CREATE TABLE nonces (
     publisher TEXT NOT NULL,
     nonce TEXT NOT NULL,
     expiry INTEGER NOT NULL,
     PRIMARY KEY (publisher, nonce)
   );
   CREATE INDEX nonces_expiry ON nonces (expiry);`,
  "ALTER TABLE pods ADD COLUMN stop_reason TEXT CHECK (stop_reason IN ('funds', 'closed', 'underpaid'))",
] as const;

/**
 * Billing's tables (billing/store.ts reads and writes them). Token amounts and chain times are bigints stored as
 * decimal TEXT (they exceed 2^53). Steps 1 and 2 are the ones billing_meta versioned before this module owned them.
 */
const BILLING_MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS billing_pods (
     pod_key TEXT PRIMARY KEY,
     pod_id TEXT NOT NULL,
     publisher TEXT NOT NULL,
     provider TEXT NOT NULL,
     channel_id TEXT NOT NULL,
     token TEXT NOT NULL,
     rate TEXT NOT NULL,
     reserved TEXT NOT NULL,
     state TEXT NOT NULL,
     stopped_at TEXT,
     remove_at TEXT,
     provider_closed INTEGER NOT NULL DEFAULT 0,
     observed TEXT,
     warnings TEXT NOT NULL DEFAULT '[]',
     last_error TEXT,
     updated_ms INTEGER NOT NULL
   );
   CREATE INDEX IF NOT EXISTS billing_pods_state ON billing_pods(state);
   CREATE TABLE IF NOT EXISTS billing_claims (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     pod_key TEXT NOT NULL,
     channel_id TEXT NOT NULL,
     cumulative TEXT NOT NULL,
     status TEXT NOT NULL,
     tx_hash TEXT,
     error TEXT,
     created_ms INTEGER NOT NULL,
     updated_ms INTEGER NOT NULL
   );
   CREATE INDEX IF NOT EXISTS billing_claims_pod ON billing_claims(pod_key, status);
   CREATE TABLE IF NOT EXISTS billing_reservations (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     pod_key TEXT NOT NULL,
     start_time TEXT,
     end_time TEXT
   );
   CREATE INDEX IF NOT EXISTS billing_reservations_pod ON billing_reservations(pod_key);
   CREATE TABLE IF NOT EXISTS billing_usage_samples (
     pod_key TEXT NOT NULL,
     time_ms INTEGER NOT NULL,
     cpu_seconds REAL NOT NULL,
     memory_bytes REAL NOT NULL,
     rx_bytes REAL NOT NULL,
     tx_bytes REAL NOT NULL
   );
   CREATE INDEX IF NOT EXISTS billing_usage_samples_pod ON billing_usage_samples(pod_key, time_ms);
   CREATE TABLE IF NOT EXISTS billing_usage_totals (
     pod_key TEXT PRIMARY KEY,
     cpu_seconds REAL NOT NULL DEFAULT 0,
     rx_bytes REAL NOT NULL DEFAULT 0,
     tx_bytes REAL NOT NULL DEFAULT 0,
     memory_bytes REAL NOT NULL DEFAULT 0,
     memory_max REAL NOT NULL DEFAULT 0,
     last_cpu REAL,
     last_rx REAL,
     last_tx REAL,
     samples INTEGER NOT NULL DEFAULT 0,
     last_ms INTEGER
   );`,
  // The price the running spec was quoted at, and a pending waiver of unserved accrual.
  `ALTER TABLE billing_pods ADD COLUMN required_rate TEXT;
   ALTER TABLE billing_pods ADD COLUMN waive_since TEXT;
   ALTER TABLE billing_pods ADD COLUMN waive_until TEXT;`,
] as const;

/** Every module's steps, applied in this order. */
const MIGRATIONS: Record<string, readonly string[]> = { core: CORE_MIGRATIONS, billing: BILLING_MIGRATIONS };

function podFromRow(row: Row): StoredPod {
  return {
    id: String(row.id),
    publisher: getAddress(String(row.publisher)),
    podId: String(row.pod_id) as Hex,
    manifest: new Uint8Array(row.manifest as Uint8Array),
    phase: row.phase as PodPhaseName,
    message: String(row.message),
    channel: row.channel ? (JSON.parse(String(row.channel)) as StoredPod["channel"]) : null,
    endpoints: JSON.parse(String(row.endpoints)) as EndpointRecord[],
    images: JSON.parse(String(row.images)) as Record<string, string>,
    stopReason: (row.stop_reason ?? null) as PodStopReason | null,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function opFromRow(row: Row): OperationRecord {
  return {
    id: Number(row.id),
    podKey: String(row.pod_key),
    kind: row.kind as OperationKind,
    status: row.status as OperationStatus,
    manifest: row.manifest ? new Uint8Array(row.manifest as Uint8Array) : null,
    error: row.error === null ? null : String(row.error),
    startedAt: Number(row.started_at),
    updatedAt: Number(row.updated_at),
  };
}

/** p2p's NonceStore over the nonces table: a restart keeps refusing replays of still-valid requests. */
export class SqliteNonceStore implements NonceStore {
  constructor(private readonly state: StateDb) {}

  async load(nowSeconds: bigint): Promise<NonceRecord[]> {
    const rows = this.state.db
      .prepare("SELECT publisher, nonce, expiry FROM nonces WHERE expiry > ?")
      .all(Number(nowSeconds)) as Row[];
    return rows.map((r) => ({
      publisher: getAddress(String(r.publisher)),
      nonce: BigInt(String(r.nonce)),
      expiry: BigInt(Number(r.expiry)),
    }));
  }

  async add(record: NonceRecord): Promise<void> {
    this.state.db
      .prepare("INSERT OR REPLACE INTO nonces (publisher, nonce, expiry) VALUES (?, ?, ?)")
      .run(record.publisher, record.nonce.toString(), Number(record.expiry));
  }

  async prune(nowSeconds: bigint): Promise<void> {
    this.state.db.prepare("DELETE FROM nonces WHERE expiry <= ?").run(Number(nowSeconds));
  }
}
