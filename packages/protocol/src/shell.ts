/** POSIX-shell word splitting (no expansion), as Compose applies to string `command`/`entrypoint`. */

export class ShellSplitError extends Error {
  override readonly name = "ShellSplitError";
  readonly code = "INVALID_COMMAND";
}

/** `echo "a b" 'c'\ d` → ["echo", "a b", "c d"]. Throws ShellSplitError on an unterminated quote. */
export function shellSplit(input: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < input.length) {
    const ch = input[i]!;
    if (ch === "'") {
      const end = input.indexOf("'", i + 1);
      if (end < 0) throw new ShellSplitError("unterminated single quote");
      word += input.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      i++;
      for (;;) {
        if (i >= input.length) throw new ShellSplitError("unterminated double quote");
        const c = input[i]!;
        if (c === '"') break;
        // Inside double quotes a backslash only escapes $ ` " \ and newline.
        if (c === "\\" && i + 1 < input.length && '$`"\\\n'.includes(input[i + 1]!)) {
          if (input[i + 1] !== "\n") word += input[i + 1];
          i += 2;
        } else {
          word += c;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (ch === "\\") {
      if (i + 1 < input.length && input[i + 1] !== "\n") {
        word += input[i + 1];
        inWord = true;
      }
      i += 2;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else {
      word += ch;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** Parses a .env file (KEY=VALUE lines, `#` comments, optional `export`, single or double quotes). */
export function parseDotEnv(
  text: string,
  outer: (name: string) => string | undefined = () => undefined,
): {
  vars: Record<string, string>;
  errors: { line: number; message: string }[];
} {
  const vars: Record<string, string> = {};
  const errors: { line: number; message: string }[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, idx) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) {
      errors.push({ line: idx + 1, message: `"${line.slice(0, 40)}" is not KEY=VALUE` });
      return;
    }
    const [, key = "", rest = ""] = m;
    let value = rest;
    if (rest.startsWith("'")) {
      const end = rest.indexOf("'", 1);
      value = end > 0 ? rest.slice(1, end) : rest.slice(1);
    } else if (rest.startsWith('"')) {
      const body = /^"((?:[^"\\]|\\.)*)"/.exec(rest)?.[1] ?? rest.slice(1);
      value = expandDotEnv(
        body.replace(/\\(.)/g, (_s, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c)),
        (name) => vars[name] ?? outer(name),
      );
    } else {
      value = expandDotEnv(rest.replace(/\s+#.*$/, "").trim(), (name) => vars[name] ?? outer(name));
    }
    vars[key] = value;
  });
  return { vars, errors };
}

/**
 * Variables in a .env or env_file value, as Compose expands them there: `${VAR}`, `$VAR`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`, from the variables defined above (then `lookup`'s); unset is
 * empty. Single-quoted values are not expanded (the caller does not pass them).
 */
function expandDotEnv(value: string, lookup: (name: string) => string | undefined): string {
  return value.replace(
    /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (
      _m,
      braced: string | undefined,
      colon: string | undefined,
      op: string | undefined,
      arg = "",
      bare?: string,
    ) => {
      const v = lookup(braced ?? bare ?? "");
      if (!op) return v ?? "";
      const set = colon ? v !== undefined && v !== "" : v !== undefined;
      if (op === "-") return set ? v! : arg;
      return set ? arg : "";
    },
  );
}
