import { execFile } from "node:child_process";
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildBusyboxLayout,
  opensslKeyPair,
  removeImage,
  tempDir,
} from "../../../test-support/oci-images.js";
import { run } from "../src/main.js";

const exec = promisify(execFile);
const bin = resolve(import.meta.dirname, "../bin/tpod");

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

let work: { dir: string; cleanup: () => Promise<void> };
let plain: string;
let name: string;
let a: { pub: string; priv: string };
let b: { pub: string; priv: string };

beforeAll(async () => {
  work = await tempDir("tpod-cli-image-");
  plain = join(work.dir, "plain");
  name = await buildBusyboxLayout(plain);
  [a, b] = await Promise.all([opensslKeyPair(work.dir, "a", "rsa"), opensslKeyPair(work.dir, "b", "p256")]);
});
afterAll(async () => {
  await removeImage(name);
  await work.cleanup();
});

const p = (n: string) => join(work.dir, n);
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

async function inspect(dir: string) {
  const { io, out } = capture();
  expect(await run(["image", "inspect", "--json", dir], io)).toBe(0);
  return JSON.parse(out.join(""));
}

describe("tpod image", () => {
  it("exits 2 on usage errors (missing --recipient, missing DST)", async () => {
    const { io, err } = capture();
    expect(await run(["image", "encrypt", plain, p("x")], io)).toBe(2);
    expect(err.join("")).toMatch(/--recipient/);
    expect(await run(["image", "decrypt", "--key", a.priv, plain], capture().io)).toBe(2);
    expect(await run(["image", "recipients", "add", "--key", a.priv, plain, p("x")], capture().io)).toBe(2);
    expect(await exists(p("x"))).toBe(false);
  });

  it("encrypts, inspects, re-keys and decrypts with the documented exit codes", async () => {
    const { io, out } = capture();
    expect(await run(["image", "encrypt", "-q", "--json", "--recipient", a.pub, plain, p("enc")], io)).toBe(
      0,
    );
    expect(JSON.parse(out.join("")).manifest.digest).toMatch(/^sha256:/);
    const info = await inspect(p("enc"));
    expect(info).toMatchObject({ encryption: "encrypted", recipients: 1 });

    // wrong key: exit 1 and nothing at DST
    const wrong = capture();
    expect(await run(["image", "decrypt", "--key", b.priv, p("enc"), p("dec-wrong")], wrong.io)).toBe(1);
    expect(wrong.err.join("")).toMatch(/NO_MATCHING_KEY/);
    expect(await exists(p("dec-wrong"))).toBe(false);

    // add b, then b can decrypt
    expect(
      await run(
        ["image", "recipients", "add", "--key", a.priv, "--recipient", b.pub, p("enc"), p("enc2")],
        capture().io,
      ),
    ).toBe(0);
    expect(await inspect(p("enc2"))).toMatchObject({ recipients: 2 });
    expect(await run(["image", "decrypt", "-q", "--key", b.priv, p("enc2"), p("dec-b")], capture().io)).toBe(
      0,
    );
    expect(await inspect(p("dec-b"))).toMatchObject({ encryption: "plain" });
    expect((await inspect(p("dec-b"))).root.digest).toBe((await inspect(plain)).root.digest);

    // remove a: a can no longer decrypt
    expect(
      await run(["image", "recipients", "remove", "--recipient", a.pub, p("enc2"), p("enc3")], capture().io),
    ).toBe(0);
    expect(await run(["image", "decrypt", "--key", a.priv, p("enc3"), p("dec-a")], capture().io)).toBe(1);
    expect(await exists(p("dec-a"))).toBe(false);
  });

  it("exits 1 and writes nothing when DST is not empty or SRC is not a layout", async () => {
    await mkdir(p("full"));
    await writeFile(join(p("full"), "f"), "x");
    expect(await run(["image", "encrypt", "--recipient", a.pub, plain, p("full")], capture().io)).toBe(1);
    expect(await readdir(p("full"))).toEqual(["f"]);
    expect(await run(["image", "encrypt", "--recipient", a.pub, work.dir, p("nolayout")], capture().io)).toBe(
      1,
    );
    expect(await exists(p("nolayout"))).toBe(false);
    expect(await run(["image", "inspect", p("missing")], capture().io)).toBe(1);
    expect(
      await run(["image", "encrypt", "--recipient", p("missing.pem"), plain, p("nokey")], capture().io),
    ).toBe(1);
    expect(await exists(p("nokey"))).toBe(false);
  });

  it("inspects oci-archive and docker-archive files too", async () => {
    for (const format of ["oci-archive", "docker-archive"]) {
      const file = p(`${format}.tar`);
      await exec("podman", ["save", "-q", "--format", format, "-o", file, name]);
      const { io, out } = capture();
      expect(await run(["image", "inspect", "--json", file], io)).toBe(0);
      expect(JSON.parse(out.join(""))).toMatchObject({ encryption: "plain", recipients: 0 });
    }
  });

  it("the installed bin encrypts and prints a readable inspect", async () => {
    await exec(bin, ["image", "encrypt", "-q", "--recipient", b.pub, plain, p("bin-enc")]);
    const { stdout } = await exec(bin, ["image", "inspect", p("bin-enc")]);
    expect(stdout).toMatch(/encryption encrypted for 1 recipient/);
    const failed = await exec(bin, ["image", "decrypt", "--key", a.priv, p("bin-enc"), p("bin-dec")]).catch(
      (e: { code: number }) => e,
    );
    expect((failed as { code: number }).code).toBe(1);
    expect(await exists(p("bin-dec"))).toBe(false);
  });
});
