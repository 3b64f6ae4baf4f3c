/** Where command output goes; injectable so tests can capture it without spawning a process. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: Io = {
  out: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
};

/** Prints a value as one JSON document; bigints become decimal strings so no precision is lost. */
export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2));
}
