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

/** Cuts text to `max` characters, ending in "…" when it had to cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** "0x1234…abcd": an address or id short enough for a table, still recognizable. */
export function shortHex(hex: string, head = 6, tail = 4): string {
  return hex.length <= head + tail + 1 ? hex : `${hex.slice(0, head)}…${hex.slice(-tail)}`;
}

/**
 * An aligned text table: a header row, then one line per row, columns padded to their widest cell. `max` caps
 * a column's width (cells beyond it are truncated with "…") so a long name cannot push the others out of line.
 */
export function formatTable(headers: string[], rows: string[][], max: (number | undefined)[] = []): string[] {
  const cells = [headers, ...rows].map((r) =>
    headers.map((_, i) => {
      const cap = max[i];
      const text = (r[i] ?? "").replace(/\s+/g, " ");
      return cap === undefined ? text : truncate(text, cap);
    }),
  );
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}
