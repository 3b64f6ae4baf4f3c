import { type FileHandle, open } from "node:fs/promises";
import { InvalidImageError } from "./errors.js";

const BLOCK = 512;
/** Archives of images hold a few hundred entries; refuse pathological ones instead of indexing forever. */
const MAX_ENTRIES = 100_000;
const MAX_PAX = 1024 * 1024;

/** A regular file inside a tar archive: where its bytes start and how many there are. */
export interface TarEntry {
  name: string;
  offset: number;
  size: number;
}

function cString(buf: Buffer, start: number, len: number): string {
  const slice = buf.subarray(start, start + len);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul === -1 ? len : nul).toString("utf8");
}

function parseNumber(buf: Buffer, start: number, len: number): number {
  const field = buf.subarray(start, start + len);
  if ((field[0]! & 0x80) !== 0) {
    // GNU base-256: big-endian two's complement with the top bit set; only positive sizes make sense.
    let v = 0;
    for (let i = 1; i < len; i++) v = v * 256 + field[i]!;
    if (!Number.isSafeInteger(v)) throw new InvalidImageError("tar: size too large");
    return v;
  }
  const text = cString(buf, start, len).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new InvalidImageError(`tar: bad numeric field ${JSON.stringify(text)}`);
  return Number.parseInt(text, 8);
}

function checksumOk(header: Buffer): boolean {
  const stored = parseNumber(header, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
  return sum === stored;
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space === -1) break;
    const len = Number.parseInt(data.subarray(pos, space).toString("ascii"), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > data.length) break;
    const record = data.subarray(space + 1, pos + len - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

/** Normalizes an entry name ("./blobs//x" -> "blobs/x") and refuses names that climb out. */
export function normalizeTarName(name: string): string {
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new InvalidImageError(`tar: entry name ${JSON.stringify(name)} climbs out`);
  return parts.join("/");
}

async function readExact(fh: FileHandle, buf: Buffer, position: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/**
 * Indexes the regular files of an uncompressed tar by reading only its headers (ustar, pax and GNU long
 * names): the data is never loaded, so archives of any size index in a few milliseconds.
 */
export async function indexTar(path: string): Promise<Map<string, TarEntry>> {
  const fh = await open(path, "r");
  try {
    const entries = new Map<string, TarEntry>();
    const header = Buffer.alloc(BLOCK);
    let pos = 0;
    let pending: { path?: string; size?: number } = {};
    let count = 0;
    for (;;) {
      const got = await readExact(fh, header, pos);
      if (got === 0) break;
      if (got < BLOCK) throw new InvalidImageError("tar: truncated header");
      if (header.every((b) => b === 0)) break;
      if (!checksumOk(header)) throw new InvalidImageError(`tar: bad header checksum at offset ${pos}`);
      if (++count > MAX_ENTRIES) throw new InvalidImageError("tar: too many entries");
      const type = String.fromCharCode(header[156]!);
      let size = parseNumber(header, 124, 12);
      const dataStart = pos + BLOCK;
      if (type === "x" || type === "L") {
        if (size > MAX_PAX) throw new InvalidImageError("tar: extended header too large");
        const data = Buffer.alloc(size);
        if ((await readExact(fh, data, dataStart)) < size) throw new InvalidImageError("tar: truncated");
        if (type === "x") {
          const pax = parsePax(data);
          if (pax.path !== undefined) pending.path = pax.path;
          if (pax.size !== undefined) pending.size = Number.parseInt(pax.size, 10);
        } else {
          pending.path = cString(data, 0, data.length);
        }
      } else {
        if (pending.size !== undefined) size = pending.size;
        if (type === "0" || type === "\0" || type === "7") {
          const magic = cString(header, 257, 6);
          const prefix = magic.startsWith("ustar") ? cString(header, 345, 155) : "";
          const raw =
            pending.path ?? (prefix ? `${prefix}/${cString(header, 0, 100)}` : cString(header, 0, 100));
          const name = normalizeTarName(raw);
          entries.set(name, { name, offset: dataStart, size });
        }
        pending = {};
      }
      pos = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    }
    return entries;
  } finally {
    await fh.close();
  }
}

/** Streams `size` bytes at `offset` of a file in 1 MiB chunks. */
export async function* readRange(path: string, offset: number, size: number): AsyncGenerator<Uint8Array> {
  const fh = await open(path, "r");
  try {
    let done = 0;
    while (done < size) {
      const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, size - done));
      const got = await readExact(fh, buf, offset + done);
      if (got < buf.length) throw new InvalidImageError("tar: entry truncated");
      done += got;
      yield buf;
    }
  } finally {
    await fh.close();
  }
}

function writeOctal(buf: Buffer, value: number, start: number, len: number): void {
  buf.write(`${value.toString(8).padStart(len - 1, "0")}\0`, start, len, "ascii");
}

/** A ustar header for a regular file or directory; sizes of 8 GiB and more use GNU base-256. */
export function tarHeader(name: string, size: number, type: "file" | "dir" = "file"): Buffer {
  if (Buffer.byteLength(name) > 100) throw new InvalidImageError(`tar: name too long: ${name}`);
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, "utf8");
  writeOctal(h, type === "dir" ? 0o755 : 0o644, 100, 8);
  writeOctal(h, 0, 108, 8);
  writeOctal(h, 0, 116, 8);
  if (size < 8 * 1024 ** 3) {
    writeOctal(h, size, 124, 12);
  } else {
    h[124] = 0x80;
    let v = size;
    for (let i = 135; i > 124; i--) {
      h[i] = v % 256;
      v = Math.floor(v / 256);
    }
  }
  writeOctal(h, 0, 136, 12);
  h.fill(0x20, 148, 156);
  h.write(type === "dir" ? "5" : "0", 156, 1, "ascii");
  h.write("ustar\0", 257, 6, "ascii");
  h.write("00", 263, 2, "ascii");
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
  return h;
}

export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

export const TAR_END = Buffer.alloc(BLOCK * 2);
