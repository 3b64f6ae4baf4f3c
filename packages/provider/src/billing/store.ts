import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import type { ChannelState } from "@trustedpods/chain";
import { migrateState, transaction } from "../state/db.js";
import type { Hex } from "./types.js";

/**
 * Durable billing state in the daemon's SQLite file (node:sqlite DatabaseSync, owned by the daemon). Every table
 * is prefixed `billing_`; their schema and migrations live in state/db.ts. Token amounts and chain times are
 * bigints stored as decimal TEXT (they exceed 2^53).
 */

export type PodState =
  /** The channel passed the provision check; the pod is not running yet. */
  | "checked"
  /** Provisioned and billed. */
  | "running"
  /** Stopped because the deposit ran out; volumes kept until the notice period passes without a top-up. */
  | "stopped_funds"
  /** Stopped at the channel's close time; removed after retainAfterCloseSeconds. */
  | "closed"
  /** The publisher deleted the pod; volumes kept until the notice period ends. */
  | "deleted"
  /**
   * Stopped because the channel's rate fell below the price of the spec that runs (a rate change with a quote
   * for another spec): the provider closed the channel; volumes kept until the notice period ends.
   */
  | "stopped_rate"
  /** Removed from the engine; the final claim may still be pending. */
  | "removed"
  /** Nothing left to do. */
  | "settled";

/** Units a pod reserves (billedUnits of the protocol's pricing rules). */
export interface Reserved {
  cpuMillis: bigint;
  memoryMiB: bigint;
  storageGiB: bigint;
  gpu: bigint;
}

/** What the loop last read from chain about a channel: ChannelState's terms at a block. */
export type ObservedChannel = Omit<ChannelState, "id" | "token" | "royaltyCount"> & {
  block: bigint;
  time: bigint;
};

export interface BillingPodRecord {
  podKey: string;
  podId: Hex;
  publisher: Hex;
  provider: Hex;
  channelId: Hex;
  token: Hex;
  ratePerSecond: bigint;
  /** The price the running spec was quoted at: the channel's rate must stay at or above it. */
  requiredRate: bigint;
  reserved: Reserved;
  state: PodState;
  /** Chain second the pod was stopped (run out, close) or deleted at, as the contract sees it. */
  stoppedAt: bigint | null;
  /** Chain second from which removal is allowed (positive evidence still re-read before removing). */
  removeAt: bigint | null;
  providerClosed: boolean;
  /**
   * Accrual the provider owes back (waive): the pod started serving at `until`, later than the channel's accrual
   * anchor `since` (provisioning, or the restart after a top-up). Sent while the channel's anchor is still `since`.
   */
  waiver: { since: bigint; until: bigint } | null;
  observed: ObservedChannel | null;
  warnings: string[];
  lastError: string | null;
  updatedMs: number;
}

export type ClaimStatus = "intent" | "sent" | "confirmed" | "failed" | "dropped";

export interface ClaimRecord {
  id: number;
  podKey: string;
  channelId: Hex;
  cumulative: bigint;
  status: ClaimStatus;
  txHash: Hex | null;
  error: string | null;
  createdMs: number;
  updatedMs: number;
}

export interface UsageSample {
  timeMs: number;
  cpuSeconds: number;
  memoryBytes: number;
  rxBytes: number;
  txBytes: number;
}

export interface UsageTotals {
  cpuSeconds: number;
  rxBytes: number;
  txBytes: number;
  memoryBytes: number;
  memoryMaxBytes: number;
  samples: number;
  lastSampleMs: number | null;
}

export interface Reservation {
  start: bigint | null;
  end: bigint | null;
}

const ACTIVE_STATES: PodState[] = [
  "running",
  "stopped_funds",
  "closed",
  "deleted",
  "stopped_rate",
  "removed",
];

type Row = Record<string, SQLInputValue>;

const big = (v: unknown): bigint => BigInt(v as string);
const bigOrNull = (v: unknown): bigint | null => (v === null || v === undefined ? null : BigInt(v as string));
const str = (v: bigint | null): string | null => (v === null ? null : v.toString());

function observedToJson(o: ObservedChannel | null): string | null {
  if (!o) return null;
  return JSON.stringify(o, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
}

function observedFromJson(s: unknown): ObservedChannel | null {
  if (typeof s !== "string") return null;
  const o = JSON.parse(s) as Record<string, string | boolean>;
  return {
    block: big(o.block),
    time: big(o.time),
    deposit: big(o.deposit),
    claimed: big(o.claimed),
    ratePerSecond: big(o.ratePerSecond),
    since: big(o.since),
    accruedBefore: big(o.accruedBefore),
    closeAt: big(o.closeAt),
    noticeSeconds: big(o.noticeSeconds),
    exists: o.exists === true,
    finalized: o.finalized === true,
  };
}

export class BillingStore {
  /** Prepared statements by SQL text: the tick runs the same few per pod, and preparing costs more than running. */
  private readonly statements = new Map<string, StatementSync>();

  constructor(readonly db: DatabaseSync) {
    // The tables are the state module's (state/db.ts owns every migration); a bare connection gets them here.
    migrateState(db);
  }

  private sql(text: string): StatementSync {
    let st = this.statements.get(text);
    if (!st) {
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st;
  }

  /** Runs `fn` in one SQLite transaction (nested calls, the daemon's included, join the outer one). */
  transaction<T>(fn: () => T): T {
    return transaction(this.db, fn);
  }

  // ---------------------------------------------------------------- pods

  /** Records a checked channel for a pod key, replacing an earlier check that never ran. */
  putChecked(
    p: Omit<
      BillingPodRecord,
      | "state"
      | "stoppedAt"
      | "removeAt"
      | "providerClosed"
      | "waiver"
      | "warnings"
      | "lastError"
      | "updatedMs"
    >,
  ): void {
    const existing = this.getPod(p.podKey);
    if (existing && existing.state !== "checked" && existing.state !== "settled")
      throw new Error(`pod ${p.podKey} is already billed (state ${existing.state})`);
    this.transaction(() => {
      this.sql("DELETE FROM billing_pods WHERE pod_key = ?").run(p.podKey);
      this.sql(
        `INSERT INTO billing_pods (pod_key, pod_id, publisher, provider, channel_id, token, rate, required_rate,
             reserved, state, observed, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'checked', ?, ?)`,
      ).run(
        p.podKey,
        p.podId,
        p.publisher,
        p.provider,
        p.channelId,
        p.token,
        p.ratePerSecond.toString(),
        p.requiredRate.toString(),
        JSON.stringify(p.reserved, (_k, v) => (typeof v === "bigint" ? v.toString() : v)),
        observedToJson(p.observed),
        Date.now(),
      );
    });
  }

  /** An update changed what the pod reserves and the price its channel must pay. */
  updateReserved(podKey: string, reserved: Reserved, requiredRate: bigint): void {
    this.sql("UPDATE billing_pods SET reserved = ?, required_rate = ?, updated_ms = ? WHERE pod_key = ?").run(
      JSON.stringify(reserved, (_k, v) => (typeof v === "bigint" ? v.toString() : v)),
      requiredRate.toString(),
      Date.now(),
      podKey,
    );
  }

  getPod(podKey: string): BillingPodRecord | undefined {
    const row = this.sql("SELECT * FROM billing_pods WHERE pod_key = ?").get(podKey) as Row | undefined;
    return row ? this.toPod(row) : undefined;
  }

  /** Pods the loop still has work for. */
  activePods(): BillingPodRecord[] {
    const marks = ACTIVE_STATES.map(() => "?").join(",");
    const rows = this.sql(`SELECT * FROM billing_pods WHERE state IN (${marks}) ORDER BY pod_key`).all(
      ...ACTIVE_STATES,
    ) as Row[];
    return rows.map((r) => this.toPod(r));
  }

  allPods(): BillingPodRecord[] {
    return (this.sql("SELECT * FROM billing_pods ORDER BY pod_key").all() as Row[]).map((r) => this.toPod(r));
  }

  updatePod(
    podKey: string,
    patch: Partial<
      Pick<
        BillingPodRecord,
        | "state"
        | "stoppedAt"
        | "removeAt"
        | "providerClosed"
        | "observed"
        | "warnings"
        | "lastError"
        | "ratePerSecond"
        | "waiver"
      >
    >,
  ): void {
    const sets: string[] = [];
    const args: SQLInputValue[] = [];
    const set = (col: string, v: SQLInputValue) => {
      sets.push(`${col} = ?`);
      args.push(v);
    };
    if (patch.state !== undefined) set("state", patch.state);
    if (patch.stoppedAt !== undefined) set("stopped_at", str(patch.stoppedAt));
    if (patch.removeAt !== undefined) set("remove_at", str(patch.removeAt));
    if (patch.providerClosed !== undefined) set("provider_closed", patch.providerClosed ? 1 : 0);
    if (patch.observed !== undefined) set("observed", observedToJson(patch.observed));
    if (patch.warnings !== undefined) set("warnings", JSON.stringify(patch.warnings));
    if (patch.lastError !== undefined) set("last_error", patch.lastError);
    if (patch.ratePerSecond !== undefined) set("rate", patch.ratePerSecond.toString());
    if (patch.waiver !== undefined) {
      set("waive_since", str(patch.waiver?.since ?? null));
      set("waive_until", str(patch.waiver?.until ?? null));
    }
    set("updated_ms", Date.now());
    this.sql(`UPDATE billing_pods SET ${sets.join(", ")} WHERE pod_key = ?`).run(...args, podKey);
  }

  private toPod(r: Row): BillingPodRecord {
    const reserved = JSON.parse(r.reserved as string) as Record<string, string>;
    return {
      podKey: r.pod_key as string,
      podId: r.pod_id as Hex,
      publisher: r.publisher as Hex,
      provider: r.provider as Hex,
      channelId: r.channel_id as Hex,
      token: r.token as Hex,
      ratePerSecond: big(r.rate),
      // Rows from before schema 2 were checked at exactly the pod's price.
      requiredRate: big(r.required_rate ?? r.rate),
      reserved: {
        cpuMillis: big(reserved.cpuMillis),
        memoryMiB: big(reserved.memoryMiB),
        storageGiB: big(reserved.storageGiB),
        gpu: big(reserved.gpu),
      },
      state: r.state as PodState,
      stoppedAt: bigOrNull(r.stopped_at),
      removeAt: bigOrNull(r.remove_at),
      providerClosed: r.provider_closed === 1,
      waiver:
        r.waive_since === null || r.waive_since === undefined
          ? null
          : { since: big(r.waive_since), until: big(r.waive_until) },
      observed: observedFromJson(r.observed),
      warnings: JSON.parse(r.warnings as string) as string[],
      lastError: (r.last_error as string | null) ?? null,
      updatedMs: Number(r.updated_ms),
    };
  }

  // ---------------------------------------------------------------- reservations (chain time)

  /** Opens a reservation interval; `start` null means "fill in at the next chain read". */
  openReservation(podKey: string, start: bigint | null): void {
    const open = this.sql("SELECT id FROM billing_reservations WHERE pod_key = ? AND end_time IS NULL").get(
      podKey,
    );
    if (open) return;
    this.sql("INSERT INTO billing_reservations (pod_key, start_time) VALUES (?, ?)").run(podKey, str(start));
  }

  /** Fills in the start of an interval opened while the chain was unreachable. */
  fillReservationStart(podKey: string, start: bigint): void {
    this.sql("UPDATE billing_reservations SET start_time = ? WHERE pod_key = ? AND start_time IS NULL").run(
      start.toString(),
      podKey,
    );
  }

  closeReservation(podKey: string, end: bigint): void {
    const open = this.sql(
      "SELECT id, start_time FROM billing_reservations WHERE pod_key = ? AND end_time IS NULL",
    ).get(podKey) as Row | undefined;
    if (!open) return;
    // An interval never ends before it starts: a stop detected late can name a time before a late-filled start.
    const start = bigOrNull(open.start_time) ?? end;
    const stop = end < start ? start : end;
    this.sql("UPDATE billing_reservations SET start_time = ?, end_time = ? WHERE id = ?").run(
      start.toString(),
      stop.toString(),
      Number(open.id),
    );
  }

  reservations(podKey: string): Reservation[] {
    return (
      this.sql("SELECT start_time, end_time FROM billing_reservations WHERE pod_key = ? ORDER BY id").all(
        podKey,
      ) as Row[]
    ).map((r) => ({ start: bigOrNull(r.start_time), end: bigOrNull(r.end_time) }));
  }

  // ---------------------------------------------------------------- claims

  /** Persists the intent to claim `cumulative` before anything is sent. */
  addClaimIntent(podKey: string, channelId: Hex, cumulative: bigint): number {
    const now = Date.now();
    const r = this.sql(
      `INSERT INTO billing_claims (pod_key, channel_id, cumulative, status, created_ms, updated_ms)
         VALUES (?, ?, ?, 'intent', ?, ?)`,
    ).run(podKey, channelId, cumulative.toString(), now, now);
    return Number(r.lastInsertRowid);
  }

  updateClaim(id: number, status: ClaimStatus, patch: { txHash?: Hex; error?: string } = {}): void {
    this.sql(
      "UPDATE billing_claims SET status = ?, tx_hash = COALESCE(?, tx_hash), error = ?, updated_ms = ? WHERE id = ?",
    ).run(status, patch.txHash ?? null, patch.error ?? null, Date.now(), id);
  }

  pendingClaims(podKey: string): ClaimRecord[] {
    return (
      this.sql(
        "SELECT * FROM billing_claims WHERE pod_key = ? AND status IN ('intent', 'sent') ORDER BY id",
      ).all(podKey) as Row[]
    ).map(toClaim);
  }

  claims(podKey: string): ClaimRecord[] {
    return (this.sql("SELECT * FROM billing_claims WHERE pod_key = ? ORDER BY id").all(podKey) as Row[]).map(
      toClaim,
    );
  }

  // ---------------------------------------------------------------- usage

  /**
   * Records an engine sample and folds it into the totals. Engine counters are cumulative per container run and
   * restart from zero when a container is recreated, so a counter that went down counts from zero.
   */
  addUsageSample(podKey: string, s: UsageSample, keep: number): void {
    this.transaction(() => {
      this.sql(
        `INSERT INTO billing_usage_samples (pod_key, time_ms, cpu_seconds, memory_bytes, rx_bytes, tx_bytes)
           VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(podKey, s.timeMs, s.cpuSeconds, s.memoryBytes, s.rxBytes, s.txBytes);
      const t = this.sql("SELECT * FROM billing_usage_totals WHERE pod_key = ?").get(podKey) as
        | Row
        | undefined;
      const delta = (now: number, last: unknown) =>
        last === null || last === undefined ? now : now >= Number(last) ? now - Number(last) : now;
      if (!t) {
        this.sql(
          `INSERT INTO billing_usage_totals (pod_key, cpu_seconds, rx_bytes, tx_bytes, memory_bytes, memory_max,
               last_cpu, last_rx, last_tx, samples, last_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`,
        ).run(
          podKey,
          s.cpuSeconds,
          s.rxBytes,
          s.txBytes,
          s.memoryBytes,
          s.memoryBytes,
          s.cpuSeconds,
          s.rxBytes,
          s.txBytes,
          s.timeMs,
        );
      } else {
        this.sql(
          `UPDATE billing_usage_totals SET cpu_seconds = cpu_seconds + ?, rx_bytes = rx_bytes + ?,
               tx_bytes = tx_bytes + ?, memory_bytes = ?, memory_max = MAX(memory_max, ?), last_cpu = ?,
               last_rx = ?, last_tx = ?, samples = samples + 1, last_ms = ? WHERE pod_key = ?`,
        ).run(
          delta(s.cpuSeconds, t.last_cpu),
          delta(s.rxBytes, t.last_rx),
          delta(s.txBytes, t.last_tx),
          s.memoryBytes,
          s.memoryBytes,
          s.cpuSeconds,
          s.rxBytes,
          s.txBytes,
          s.timeMs,
          podKey,
        );
      }
      this.sql(
        `DELETE FROM billing_usage_samples WHERE pod_key = ?1 AND time_ms < (
             SELECT time_ms FROM billing_usage_samples WHERE pod_key = ?1 ORDER BY time_ms DESC LIMIT 1 OFFSET ?2)`,
      ).run(podKey, keep - 1);
    });
  }

  /** A stopped container's counters restart from zero: forget the last raw values so the next run counts fully. */
  resetUsageBaseline(podKey: string): void {
    this.sql(
      "UPDATE billing_usage_totals SET last_cpu = NULL, last_rx = NULL, last_tx = NULL, memory_bytes = 0 WHERE pod_key = ?",
    ).run(podKey);
  }

  usageTotals(podKey: string): UsageTotals {
    const t = this.sql("SELECT * FROM billing_usage_totals WHERE pod_key = ?").get(podKey) as Row | undefined;
    if (!t)
      return {
        cpuSeconds: 0,
        rxBytes: 0,
        txBytes: 0,
        memoryBytes: 0,
        memoryMaxBytes: 0,
        samples: 0,
        lastSampleMs: null,
      };
    return {
      cpuSeconds: Number(t.cpu_seconds),
      rxBytes: Number(t.rx_bytes),
      txBytes: Number(t.tx_bytes),
      memoryBytes: Number(t.memory_bytes),
      memoryMaxBytes: Number(t.memory_max),
      samples: Number(t.samples),
      lastSampleMs: t.last_ms === null ? null : Number(t.last_ms),
    };
  }

  usageSamples(podKey: string): UsageSample[] {
    return (
      this.sql(
        "SELECT time_ms, cpu_seconds, memory_bytes, rx_bytes, tx_bytes FROM billing_usage_samples WHERE pod_key = ? ORDER BY time_ms",
      ).all(podKey) as Row[]
    ).map((r) => ({
      timeMs: Number(r.time_ms),
      cpuSeconds: Number(r.cpu_seconds),
      memoryBytes: Number(r.memory_bytes),
      rxBytes: Number(r.rx_bytes),
      txBytes: Number(r.tx_bytes),
    }));
  }
}

function toClaim(r: Row): ClaimRecord {
  return {
    id: Number(r.id),
    podKey: r.pod_key as string,
    channelId: r.channel_id as Hex,
    cumulative: big(r.cumulative),
    status: r.status as ClaimStatus,
    txHash: (r.tx_hash as Hex | null) ?? null,
    error: (r.error as string | null) ?? null,
    createdMs: Number(r.created_ms),
    updatedMs: Number(r.updated_ms),
  };
}
