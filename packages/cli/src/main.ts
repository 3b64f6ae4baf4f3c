#!/usr/bin/env node
// First: silences node:sqlite's ExperimentalWarning before any command can load it.
import "./quiet-warnings.js";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { type CommandContext, registerCommands } from "./commands/index.js";
import { CliError, ExitCode } from "./errors.js";
import { type Io, processIo } from "./output.js";

const VERSION = "0.1.0";

export function buildProgram(io: Io = processIo, setExitCode: (code: ExitCode) => void = () => {}): Command {
  const program = new Command("tpod")
    .description("Trusted Pods: run confidential pods on attested providers, paid through payment channels")
    .version(VERSION)
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();
  const ctx: CommandContext = { io, setExitCode };
  registerCommands(program, ctx);
  // Subcommands inherit exitOverride and output so usage errors exit 2 everywhere.
  for (const cmd of allCommands(program)) {
    cmd.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  }
  return program;
}

function allCommands(cmd: Command): Command[] {
  return cmd.commands.flatMap((c) => [c, ...allCommands(c)]);
}

/** Runs tpod with the given arguments (without node and script) and resolves to the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  let exitCode: ExitCode = ExitCode.ok;
  const program = buildProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(args, { from: "user" });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      const benign = ["commander.helpDisplayed", "commander.version", "commander.help"];
      return benign.includes(err.code) ? ExitCode.ok : ExitCode.usage;
    }
    if (err instanceof CliError) {
      io.err(`error: ${err.message}`);
      return err.exitCode;
    }
    io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
    return ExitCode.failure;
  }
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = await run(process.argv.slice(2));
}
