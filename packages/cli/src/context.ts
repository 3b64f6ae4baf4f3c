// What every command and action gets: where to write, and how to set the exit code.
import type { ExitCode } from "./errors.js";
import type { Io } from "./output.js";

export interface CommandContext {
  io: Io;
  /** Records the exit code for a command that finished without throwing but did not succeed. */
  setExitCode(code: ExitCode): void;
}
