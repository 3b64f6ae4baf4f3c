// Where a keystore passphrase comes from: a file (--password-file), the TPOD_PASSWORD environment variable, or a
// no-echo prompt on the terminal. Never from argv (other users can read it in ps) and never logged.
import { PublisherError } from "../errors.js";
import { type Env, readTextBounded } from "./files.js";

export interface PassphraseOptions {
  /** A file whose first line is the passphrase. */
  passwordFile?: string;
  env?: Env;
  /** Ask on the terminal when neither gives one (default: when stdin and stderr are terminals). */
  interactive?: boolean;
  /** Ask twice and require the same answer (new keys). */
  confirm?: boolean;
  /** Shown in the prompt, e.g. "the new key" or "key 0xAbC…". */
  purpose?: string;
}

export interface Passphrase {
  passphrase: string;
  /** "--password-file FILE", "TPOD_PASSWORD" or "prompt": for messages, never the secret itself. */
  source: string;
}

const MAX_PASSWORD_FILE_BYTES = 4096;

/** Resolves a passphrase from the first source that gives one; NO_PASSPHRASE when none does. */
export async function getPassphrase(o: PassphraseOptions = {}): Promise<Passphrase> {
  if (o.passwordFile !== undefined) {
    const text = await readTextBounded(
      o.passwordFile,
      MAX_PASSWORD_FILE_BYTES,
      "password file",
      "NO_PASSPHRASE",
    );
    if (text === undefined)
      throw new PublisherError("NO_PASSPHRASE", `password file ${o.passwordFile} does not exist`);
    // The first line, without its line ending: `echo secret > file` must give "secret".
    const passphrase = text.split(/\r?\n/, 1)[0] ?? "";
    if (passphrase.length === 0)
      throw new PublisherError("NO_PASSPHRASE", `password file ${o.passwordFile} is empty`);
    return { passphrase, source: `--password-file ${o.passwordFile}` };
  }
  const env = o.env ?? process.env;
  const fromEnv = env.TPOD_PASSWORD;
  if (fromEnv !== undefined && fromEnv.length > 0) return { passphrase: fromEnv, source: "TPOD_PASSWORD" };
  const interactive = o.interactive ?? (process.stdin.isTTY === true && process.stderr.isTTY === true);
  if (!interactive) {
    throw new PublisherError(
      "NO_PASSPHRASE",
      "no passphrase: pass --password-file FILE, set TPOD_PASSWORD, or run in a terminal to be asked",
    );
  }
  const what = o.purpose ? ` for ${o.purpose}` : "";
  const passphrase = await promptHidden(`Passphrase${what}: `);
  if (passphrase.length === 0) throw new PublisherError("NO_PASSPHRASE", "the passphrase must not be empty");
  if (o.confirm) {
    const again = await promptHidden("Repeat the passphrase: ");
    if (again !== passphrase) throw new PublisherError("NO_PASSPHRASE", "the two passphrases differ");
  }
  return { passphrase, source: "prompt" };
}

/**
 * Reads one line from a terminal without echoing it (raw mode), writing the prompt to `output` (stderr, so
 * stdout stays clean for results). Ctrl-C cancels.
 */
export function promptHidden(
  prompt: string,
  input: NodeJS.ReadStream = process.stdin,
  output: NodeJS.WriteStream = process.stderr,
): Promise<string> {
  if (!input.isTTY)
    return Promise.reject(new PublisherError("NO_PASSPHRASE", "standard input is not a terminal"));
  return new Promise((resolve, reject) => {
    const wasRaw = input.isRaw;
    let buf: string[] = [];
    const finish = () => {
      input.off("data", onData);
      input.setRawMode(wasRaw);
      input.pause();
      output.write("\n");
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n" || (ch === "\u0004" && buf.length > 0)) {
          finish();
          resolve(buf.join(""));
          return;
        }
        if (ch === "\u0003" || ch === "\u0004") {
          finish();
          reject(new PublisherError("NO_PASSPHRASE", "cancelled"));
          return;
        }
        if (ch === "\u007f" || ch === "\b") buf = buf.slice(0, -1);
        else if (ch >= " ") buf.push(ch);
      }
    };
    // Raw mode (no echo) before the prompt shows, so nothing typed right after it is echoed.
    input.setRawMode(true);
    input.on("data", onData);
    input.resume();
    output.write(prompt);
  });
}
