// Every example in examples/ builds with its own build.sh and deploys on one devnet (chain, IPFS, the real
// provider daemon with billing, gateway and Podman), and answers as docs/manifest.md says. A pod whose
// container cannot start is refused with the class of the failure and the engine's reason.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cp, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliDevnet, cli, getUrl, startCliDevnet } from "../../../test-support/cli-devnet.js";
import { haveTools, waitFor } from "../../../test-support/provider-world.js";
import { redis } from "../../../test-support/redis-resp.js";

const exec = promisify(execFile);
const EXAMPLES = resolve(import.meta.dirname, "../../../examples");
const uid = randomBytes(4).toString("hex");
// Unique tags: other test runs on this machine build the examples' default tags at the same time.
const BUSYBOX = `localhost/tpod-ex-busybox-${uid}:latest`;
const REDIS = `localhost/tpod-ex-redis-${uid}:latest`;
const BUSYBOX_2 = `localhost/tpod-ex-busybox2-${uid}:latest`;
let tmp: string;
let world: CliDevnet;

/** An example's build.sh with a tag of ours; it prints the tag it built. */
async function build(example: string, tag: string): Promise<string> {
  const { stdout } = await exec("bash", [join(EXAMPLES, example, "build.sh"), tag], { timeout: 300_000 });
  return stdout.trim().split("\n").at(-1)!;
}

/** A copy of the example's directory whose pod.yaml runs our tag instead of the default one. */
async function exampleManifest(example: string, from: string, to: string): Promise<string> {
  const dir = join(tmp, example);
  await cp(join(EXAMPLES, example), dir, { recursive: true });
  const file = join(dir, "pod.yaml");
  const text = await readFile(file, "utf8");
  expect(text).toContain(`image: ${from}`);
  await writeFile(file, text.replaceAll(`image: ${from}`, `image: ${to}`));
  return file;
}

interface Deployed {
  podId: string;
  endpoints: { http: string[]; tcp: { container: string; port: number; address: string }[] };
}

async function deploy(manifest: string): Promise<Deployed> {
  const d = await cli(["deploy", manifest, "--json"]);
  expect(d.code, d.err).toBe(0);
  return JSON.parse(d.out) as Deployed;
}

async function bodyOnce(url: string, contains: string): Promise<string | false> {
  const r = await getUrl(url).catch(() => undefined);
  return r?.status === 200 && r.body.includes(contains) && r.body;
}

beforeAll(async () => {
  if (!haveTools) return;
  // One devnet for every example; the images build meanwhile (each example's own script).
  world = await startCliDevnet({
    tmpPrefix: "tpod-examples-test-",
    engineOwner: `ex${uid}`,
    alongside: [
      build("hello", BUSYBOX).then((t) => expect(t).toBe(BUSYBOX)),
      build("two-container", BUSYBOX_2).then((t) => expect(t).toBe(BUSYBOX_2)),
      build("kv", REDIS).then((t) => expect(t).toBe(REDIS)),
    ],
  });
  ({ tmp } = world);
}, 400_000);

afterAll(async () => {
  if (!haveTools) return;
  await world?.stop();
  await exec("podman", ["rmi", "-f", BUSYBOX, BUSYBOX_2, REDIS]).catch(() => {});
}, 120_000);

describe.skipIf(!haveTools)("examples", () => {
  it("hello: its URL answers the page", async () => {
    const d = await deploy(await exampleManifest("hello", "localhost/tpod-busybox:latest", BUSYBOX));
    const body = await waitFor("hello", () => bodyOnce(d.endpoints.http[0]!, "Hello"), 60_000);
    expect(body.trim()).toBe("<h1>Hello from Trusted Pods</h1>");
  }, 180_000);

  it("two-container: the frontend serves what it fetched from the backend over localhost", async () => {
    const d = await deploy(
      await exampleManifest("two-container", "localhost/tpod-busybox:latest", BUSYBOX_2),
    );
    const body = await waitFor("frontend", () => bodyOnce(d.endpoints.http[0]!, "backend up since"), 60_000);
    expect(body).toMatch(/^<p>backend up since .+<\/p>\s*$/);
  }, 180_000);

  it("kv: Redis on its TCP endpoint takes the secret's password, then a SET and a GET", async () => {
    const d = await deploy(await exampleManifest("kv", "localhost/tpod-redis:latest", REDIS));
    expect(d.endpoints.tcp).toHaveLength(1);
    const address = d.endpoints.tcp[0]!.address;
    const password = (await readFile(join(EXAMPLES, "kv", "redis-auth.conf"), "utf8")).match(
      /requirepass (\S+)/,
    )![1]!;
    // Without the password Redis refuses: the secret file really is its config.
    const refused = await waitFor(
      "redis",
      () => redis(address, [["GET", "k"]], 1).catch(() => undefined),
      60_000,
    );
    expect(refused[0]).toMatch(/^-NOAUTH/);
    const value = `v-${uid}`;
    const replies = await redis(
      address,
      [
        ["AUTH", password],
        ["SET", "k", value],
        ["GET", "k"],
      ],
      3,
    );
    expect(replies).toEqual(["+OK", "+OK", value]);
  }, 180_000);

  it("a container that cannot start: the CLI says ENGINE_FAILED and why, not a bare INTERNAL", async () => {
    const file = await exampleManifest("hello", "localhost/tpod-busybox:latest", BUSYBOX);
    const text = await readFile(file, "utf8");
    await writeFile(
      file,
      text
        .replace("command: [/bin/busybox, sh, -c]", "command: [/no/such/entrypoint]")
        .replace("name: hello", "name: broken"),
    );
    const d = await cli(["deploy", file, "--json"]);
    expect(d.code).not.toBe(0);
    expect(d.err).toContain("(ENGINE_FAILED)");
    expect(d.err).toContain(
      "the container engine could not start the pod: container web: its command /no/such/entrypoint does not exist in the image",
    );
    expect(d.err).not.toContain("provisioning failed");
    // Nothing of the provider's own directories in what the publisher reads.
    expect(d.err).not.toContain(join(tmp, "home"));
    const out = JSON.parse(d.out) as { error: { code: string; details: Record<string, string> } };
    expect(out.error.code).toBe("PROVIDER_REFUSED");
    expect(out.error.details.providerCode).toBe("ENGINE_FAILED");
  }, 180_000);
});
