import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { PassOpts } from "../options/keys.js";

export type { PassOpts } from "../options/keys.js";

// Definitions only; the keystore code (publisher SDK, scrypt) loads on use from ../actions/keys.js.

const PASSWORD_HELP =
  "file whose first line is the passphrase (default: TPOD_PASSWORD, else asked on the terminal; never an argument)";

const actions = () => import("../actions/keys.js");

export function registerKeys(program: Command, ctx: CommandContext): void {
  const keys = program
    .command("keys")
    .description("the local encrypted keystore ($TPOD_HOME/keys, Ethereum v3 keystore files)");

  keys
    .command("new")
    .description("create a new key, encrypted with a passphrase; prints its address")
    .option("--label <label>", "a name shown by `tpod keys list`")
    .option("--password-file <file>", PASSWORD_HELP)
    .option("--json", "print {address, label, file} as JSON")
    .action(async (opts: PassOpts) => (await actions()).keysNew(ctx, opts));

  keys
    .command("import")
    .description(
      "import a key from a file: a raw hex private key, or another tool's v3 keystore (opened with its passphrase and kept under it)",
    )
    .argument("<file>", "raw hex private key file, or v3 keystore JSON")
    .option("--label <label>", "a name shown by `tpod keys list`")
    .option("--password-file <file>", PASSWORD_HELP)
    .option("--json", "print {address, label, file} as JSON")
    .action(async (file: string, opts: PassOpts) => (await actions()).keysImport(ctx, file, opts));

  keys
    .command("list")
    .description("list the keystore's addresses and labels")
    .option("--json", "print [{address, label, file}] as JSON")
    .action(async (opts: { json?: boolean }) => (await actions()).keysList(ctx, opts));

  keys
    .command("show")
    .description("show one key's address, label, file and encryption parameters (never the key itself)")
    .argument("<address>", "the key's address")
    .option("--json", "print as JSON")
    .action(async (address: string, opts: { json?: boolean }) =>
      (await actions()).keysShow(ctx, address, opts),
    );
}
