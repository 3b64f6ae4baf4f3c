/** Exit codes every tpod command follows: scripts rely on them. */
export const ExitCode = {
  ok: 0,
  /** The command ran and failed (invalid input, rejected evidence, network or chain error). */
  failure: 1,
  /** The command line itself is wrong (unknown option, missing argument). */
  usage: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error the CLI reports as its message alone (no stack), exiting with the given code. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.failure,
  ) {
    super(message);
  }
}
