import type { Command } from "commander";
import type { ExitCode } from "../errors.js";
import type { Io } from "../output.js";
import { registerDoctor } from "./doctor.js";
import { registerImage } from "./image.js";

export interface CommandContext {
  io: Io;
  /** Records the exit code for a command that finished without throwing but did not succeed. */
  setExitCode(code: ExitCode): void;
}

/** Every command group registers itself here; one line per group keeps main.ts free of command logic. */
export function registerCommands(program: Command, ctx: CommandContext): void {
  registerDoctor(program, ctx);
  registerImage(program, ctx);
}
