// The CLI's table layout and its bounded, best-effort cleanup: small pure pieces the commands rely on.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cleanUp, removeDirStep } from "../src/cleanup.js";
import { formatTable, shortHex, truncate } from "../src/output.js";

describe("formatTable", () => {
  it("puts a header first and lines every column up at its widest cell", () => {
    const lines = formatTable(
      ["POD", "NAME", "LEFT"],
      [
        ["0x12345678", "web", "6 h 0 min"],
        ["0xabcdef01", "a-longer-name", "-"],
      ],
    );
    expect(lines).toEqual([
      "POD         NAME           LEFT",
      "0x12345678  web            6 h 0 min",
      "0xabcdef01  a-longer-name  -",
    ]);
  });

  it("truncates a cell beyond its column's cap with …, and keeps a cell from breaking the line", () => {
    const lines = formatTable(["NAME", "STATUS"], [["a-very-long-pod-name", "unreachable\n(dial)"]], [8]);
    expect(lines).toEqual(["NAME      STATUS", "a-very-…  unreachable (dial)"]);
    expect(truncate("abcdef", 6)).toBe("abcdef");
    expect(shortHex("0x1234567890abcdef1234567890abcdef12345678")).toBe("0x1234…5678");
  });
});

describe("cleanUp", () => {
  it("never hangs and never throws: a step that hangs or fails is a warning, and the steps after it still run", async () => {
    const warnings: string[] = [];
    const ran: string[] = [];
    await cleanUp(
      [
        { what: "stop a node that never stops", run: () => new Promise(() => {}) },
        {
          what: "remove a busy directory",
          run: async () => {
            throw Object.assign(new Error("ENOTEMPTY: directory not empty, rmdir 'x/datastore/peers'"), {
              code: "ENOTEMPTY",
            });
          },
        },
        { what: "close the session", run: async () => ran.push("session") },
      ],
      { timeoutMs: 200, warn: (m) => warnings.push(m) },
    );
    expect(ran).toEqual(["session"]);
    expect(warnings).toEqual([
      "cleanup: could not stop a node that never stops within 0 s; moving on",
      "cleanup: could not remove a busy directory: ENOTEMPTY: directory not empty, rmdir 'x/datastore/peers'",
    ]);
  });

  it("removes a directory tree that is still being written to (retrying while it is not empty)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tpod-cleanup-"));
    await mkdir(join(dir, "datastore", "peers"), { recursive: true });
    // A writer that keeps adding files for a while, as a stopping IPFS node flushes its peer store.
    let n = 0;
    const writer = setInterval(() => {
      writeFile(join(dir, "datastore", "peers", `p${n++}`), "x").catch(() => {});
    }, 1);
    setTimeout(() => clearInterval(writer), 300);
    const warnings: string[] = [];
    await cleanUp([removeDirStep(dir)], { warn: (m) => warnings.push(m) });
    clearInterval(writer);
    expect(existsSync(dir)).toBe(false);
    expect(warnings).toEqual([]);
  });
});
