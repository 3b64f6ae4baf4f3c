// The state module's contract: one connection, one nesting-safe transaction shared by the daemon's tables and
// billing's, and a read-only view for tools outside the daemon (tpod provider pods).
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BillingStore } from "../src/billing/store.js";
import { StateDb } from "../src/state/db.js";

const PUBLISHER = "0x00000000000000000000000000000000000000aa" as const;
const POD_ID = `0x${"11".repeat(32)}` as const;

function pod(id: string) {
  return {
    id,
    publisher: PUBLISHER,
    podId: POD_ID,
    manifest: new Uint8Array([1, 2, 3]),
    phase: "pending" as const,
    message: "provisioning",
    channel: null,
    endpoints: [],
    images: {},
  };
}

describe("state database", () => {
  let dir: string;
  let state: StateDb;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "tpod-state-"));
    state = StateDb.open(dir);
  });
  afterEach(async () => {
    state.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("nests: billing's transaction inside the daemon's joins it, and a failure rolls back both", () => {
    const billing = new BillingStore(state.db);
    expect(() =>
      state.transaction(() => {
        state.insertPod(pod("p1"));
        billing.transaction(() => state.updatePod("p1", { phase: "running" }));
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(state.getPod("p1")).toBeUndefined();
    expect(state.db.isTransaction).toBe(false);

    state.transaction(() => {
      state.insertPod(pod("p2"));
      state.transaction(() => state.updatePod("p2", { phase: "running" }));
    });
    expect(state.getPod("p2")?.phase).toBe("running");
  });

  it("opens read-only for tools while the daemon holds it, and refuses writes there", () => {
    state.insertPod(pod("p3"));
    const ro = StateDb.openReadOnly(dir)!;
    try {
      expect(ro.hasTable("pods")).toBe(true);
      expect(ro.listPods().map((p) => p.id)).toEqual(["p3"]);
      expect(() => ro.insertPod(pod("p4"))).toThrow(/readonly/i);
    } finally {
      ro.close();
    }
    expect(StateDb.openReadOnly(path.join(dir, "nowhere"))).toBeUndefined();
  });
});
