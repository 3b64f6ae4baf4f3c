// The passphrase prompt on a real terminal: `script` gives tpod a pseudo-terminal; the test types the passphrase
// when the prompt appears and checks that it was never echoed and that it opens the new key.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { KeyStore } from "@trustedpods/publisher/node";
import { afterAll, describe, expect, it } from "vitest";

const main = resolve(import.meta.dirname, "../dist/main.js");
const HAVE = existsSync(main) && existsSync("/usr/bin/script");
if (!HAVE) console.warn("SKIP: the prompt test needs a built CLI (npm run build) and /usr/bin/script");
const home = mkdtempSync(join(tmpdir(), "tpod-prompt-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe.skipIf(!HAVE)("the passphrase prompt", () => {
  it("asks twice on the terminal without echoing, and the passphrase opens the key", async () => {
    const secret = "hunter22-not-echoed";
    const child = spawn(
      "/usr/bin/script",
      ["-q", "-e", "-c", `${process.execPath} ${main} keys new --json`, "/dev/null"],
      {
        env: { ...process.env, TPOD_HOME: home, TPOD_PASSWORD: "" },
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    let seen = "";
    let answered = 0;
    child.stdout.on("data", (d: Buffer) => {
      seen += d.toString();
      const prompts = (seen.match(/Passphrase for the new key: |Repeat the passphrase: /g) ?? []).length;
      while (answered < prompts) {
        child.stdin.write(`${secret}\r`);
        answered++;
      }
    });
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    expect(code).toBe(0);
    expect(answered).toBe(2);
    expect(seen).not.toContain(secret);
    const address = /"address": "(0x[0-9a-fA-F]{40})"/.exec(seen)?.[1];
    expect(address).toBeDefined();
    expect(readdirSync(join(home, "keys"))).toHaveLength(1);
    const key = await new KeyStore(join(home, "keys")).unlock(address!, secret);
    expect(key.address).toBe(address);
  }, 60_000);
});
