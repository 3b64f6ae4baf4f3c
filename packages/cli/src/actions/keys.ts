import { MAX_KEYSTORE_BYTES, parseKeystore } from "@trustedpods/publisher";
import {
  getPassphrase,
  KeyStore,
  readKeystoreFile,
  readTextBounded,
  tpodHome,
  tpodPaths,
} from "@trustedpods/publisher/node";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { PassOpts } from "../options/keys.js";
import { printJson } from "../output.js";
import { cliError } from "./network.js";

function store(): KeyStore {
  return new KeyStore(tpodPaths(tpodHome()).keys);
}

function checkLabel(label: string | undefined): void {
  if (label !== undefined && (label.length === 0 || label.length > 128 || /\p{Cc}/u.test(label)))
    throw new CliError("--label must be 1 to 128 printable characters", ExitCode.usage);
}

/** `tpod keys new` */
export async function keysNew({ io }: CommandContext, opts: PassOpts): Promise<void> {
  checkLabel(opts.label);
  try {
    const { passphrase } = await getPassphrase({
      ...(opts.passwordFile ? { passwordFile: opts.passwordFile } : {}),
      confirm: true,
      purpose: "the new key",
    });
    io.err("encrypting the new key (scrypt)...");
    const e = await store().create(passphrase, opts.label === undefined ? {} : { label: opts.label });
    if (opts.json) printJson(io, { address: e.address, label: e.label ?? null, file: e.file });
    else {
      io.out(e.address);
      io.err(`saved to ${e.file}`);
    }
  } catch (err) {
    throw cliError(err);
  }
}

/** `tpod keys import FILE` */
export async function keysImport({ io }: CommandContext, file: string, opts: PassOpts): Promise<void> {
  checkLabel(opts.label);
  try {
    const text = await readTextBounded(file, MAX_KEYSTORE_BYTES, "key file", "KEYSTORE_MALFORMED");
    if (text === undefined) throw new CliError(`${file} does not exist`);
    const isKeystore = text.trimStart().startsWith("{");
    const pass = await getPassphrase({
      ...(opts.passwordFile ? { passwordFile: opts.passwordFile } : {}),
      confirm: !isKeystore,
      purpose: isKeystore ? `the keystore ${file}` : "the imported key",
    });
    const label = opts.label === undefined ? {} : { label: opts.label };
    const e = isKeystore
      ? await store().importKeystore(text, pass.passphrase, label)
      : await store().importPrivateKey(text, pass.passphrase, label);
    if (!isKeystore)
      io.err(`note: ${file} still holds the key unencrypted; delete it once you no longer need it`);
    if (opts.json) printJson(io, { address: e.address, label: e.label ?? null, file: e.file });
    else {
      io.out(e.address);
      io.err(`saved to ${e.file}`);
    }
  } catch (err) {
    throw cliError(err);
  }
}

/** `tpod keys list` */
export async function keysList({ io }: CommandContext, opts: { json?: boolean }): Promise<void> {
  const s = store();
  const { keys: list, problems } = await s.list().catch((err) => {
    throw cliError(err);
  });
  for (const p of problems) io.err(`warning: skipped ${p.file}: ${p.reason}`);
  if (opts.json) {
    printJson(
      io,
      list.map((k) => ({ address: k.address, label: k.label ?? null, file: k.file })),
    );
    return;
  }
  if (list.length === 0) {
    io.err(`no keys in ${s.dir} (create one with \`tpod keys new\`)`);
    return;
  }
  for (const k of list) io.out(`${k.address}  ${k.label ?? ""}`.trimEnd());
}

/** `tpod keys show ADDRESS` */
export async function keysShow(
  { io }: CommandContext,
  address: string,
  opts: { json?: boolean },
): Promise<void> {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address))
    throw new CliError(`"${address}" is not an address (0x and 40 hex digits)`, ExitCode.usage);
  try {
    const e = await store().find(address);
    const ks = parseKeystore(await readKeystoreFile(e.file));
    const { salt: _salt, ...kdfparams } = ks.crypto.kdfparams;
    const info = {
      address: e.address,
      label: e.label ?? null,
      file: e.file,
      id: ks.id,
      cipher: ks.crypto.cipher,
      kdf: ks.crypto.kdf,
      kdfparams,
    };
    if (opts.json) return printJson(io, info);
    io.out(`address  ${info.address}`);
    if (e.label) io.out(`label    ${e.label}`);
    io.out(`file     ${info.file}`);
    io.out(
      `cipher   ${info.cipher}, ${info.kdf} ${Object.entries(kdfparams)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}`,
    );
  } catch (err) {
    throw cliError(err);
  }
}
