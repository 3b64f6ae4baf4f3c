import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { run } from "../src/main.js";

const exec = promisify(execFile);
const bin = resolve(import.meta.dirname, "../bin/tpod");

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

describe("tpod", () => {
  it("exits 2 with a message on an unknown command", async () => {
    const { io, err } = capture();
    expect(await run(["no-such-command"], io)).toBe(2);
    expect(err.join("")).toMatch(/unknown command 'no-such-command'/);
  });

  it("exits 2 on an unknown option", async () => {
    const { io, err } = capture();
    expect(await run(["doctor", "--bogus"], io)).toBe(2);
    expect(err.join("")).toMatch(/unknown option '--bogus'/);
  });

  it("doctor --json reports each check with a verdict", async () => {
    const { io, out } = capture();
    const code = await run(["doctor", "--json"], io);
    const report = JSON.parse(out.join(""));
    expect(report.checks.map((c: { name: string }) => c.name)).toEqual([
      "node",
      "podman",
      "buildah",
      "skopeo",
      "containers.conf",
    ]);
    expect(code).toBe(report.ok ? 0 : 1);
    expect(report.checks[0]).toMatchObject({ name: "node", ok: true });
  });

  it("the installed bin runs the built CLI with a Node >= 22", async () => {
    const { stdout } = await exec(bin, ["--version"]);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
