// Byte helpers on Uint8Array/DataView only: the verifier core must run in browsers, where Buffer does not exist.
import { fail } from "./errors.js";

export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

export function fromHex(hex: string, field = "hex"): Uint8Array {
  const clean = hex.trim();
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean))
    fail("MALFORMED", `${field} is not hex`, field);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function isZero(a: Uint8Array): boolean {
  return a.every((b) => b === 0);
}

/** Reverses a copy: SEV-SNP stores ECDSA r and s little-endian, WebCrypto wants big-endian. */
export function reversed(a: Uint8Array): Uint8Array {
  return Uint8Array.from(a).reverse();
}

/** A bounds-checked little-endian reader; every read past the end is a MALFORMED error, never a RangeError. */
export class Reader {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    private readonly what: string,
    public offset = 0,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number, field: string): void {
    if (n < 0 || this.offset + n > this.bytes.length) {
      fail(
        "MALFORMED",
        `${this.what} is truncated: ${field} needs ${n} bytes at offset ${this.offset}`,
        field,
      );
    }
  }
  u8(field: string): number {
    this.need(1, field);
    return this.view.getUint8(this.offset++);
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.view.getUint16(this.offset, true);
    this.offset += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return v;
  }
  u64(field: string): bigint {
    this.need(8, field);
    const v = this.view.getBigUint64(this.offset, true);
    this.offset += 8;
    return v;
  }
  take(n: number, field: string): Uint8Array {
    this.need(n, field);
    const v = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  get remaining(): number {
    return this.bytes.length - this.offset;
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function fromBase64(text: string, field = "base64"): Uint8Array {
  const clean = text.replace(/[\s=]/g, "");
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (const ch of clean) {
    const v = B64.indexOf(ch);
    if (v < 0) fail("MALFORMED", `${field} is not base64`, field);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = bytes[i + 1];
    const c = bytes[i + 2];
    s += B64[a >> 2]! + B64[((a & 3) << 4) | ((b ?? 0) >> 4)]!;
    s += b === undefined ? "=" : B64[((b & 15) << 2) | ((c ?? 0) >> 6)]!;
    s += c === undefined ? "=" : B64[c & 63]!;
  }
  return s;
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** All DER blocks of the given PEM label in a text (certificates in a chain file, in order). */
export function pemBlocks(text: string, label = "CERTIFICATE"): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(PEM_RE)) {
    if (m[1] === label) out.push(fromBase64(m[2]!, `PEM ${label}`));
  }
  return out;
}

export function toPem(der: Uint8Array, label = "CERTIFICATE"): string {
  const b64 = toBase64(der).replace(/(.{64})/g, "$1\n");
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END ${label}-----\n`;
}

/**
 * Certificates from a file's bytes: PEM (one or several blocks), or DER (one or several concatenated
 * certificates, as AMD's KDS and some tools write them).
 */
export function certificatesFromBytes(bytes: Uint8Array): Uint8Array[] {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 64 * 1024));
  if (text.includes("-----BEGIN CERTIFICATE-----")) {
    return pemBlocks(new TextDecoder().decode(bytes));
  }
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < bytes.length) {
    const len = derTotalLength(bytes, off);
    out.push(bytes.subarray(off, off + len));
    off += len;
  }
  return out;
}

/** Length of the DER TLV starting at `off` (header included), checked against the buffer. */
export function derTotalLength(bytes: Uint8Array, off: number): number {
  const tag = bytes[off];
  const first = bytes[off + 1];
  if (tag === undefined || first === undefined) fail("MALFORMED", "DER value is truncated", "der");
  let len = first;
  let header = 2;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n < 1 || n > 4) fail("MALFORMED", "DER length is invalid", "der");
    len = 0;
    for (let i = 0; i < n; i++) {
      const b = bytes[off + 2 + i];
      if (b === undefined) fail("MALFORMED", "DER length is truncated", "der");
      len = len * 256 + b;
    }
    header += n;
  }
  if (off + header + len > bytes.length) fail("MALFORMED", "DER value is truncated", "der");
  return header + len;
}

/** The first inner TLV of a DER SEQUENCE: the exact signed bytes of a certificate's TBS or a CRL's TBSCertList. */
export function derFirstChild(bytes: Uint8Array): Uint8Array {
  if (bytes[0] !== 0x30) fail("MALFORMED", "DER value is not a SEQUENCE", "der");
  const outer = derTotalLength(bytes, 0);
  const first = bytes[1]!;
  const header = first & 0x80 ? 2 + (first & 0x7f) : 2;
  const inner = derTotalLength(bytes.subarray(0, outer), header);
  return bytes.subarray(header, header + inner);
}

/** One DER TLV: its tag byte, contents, and the whole encoding. */
export interface Tlv {
  tag: number;
  value: Uint8Array;
}

/** The TLVs inside a constructed DER value's contents (bounds-checked). */
export function derChildren(contents: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let off = 0;
  while (off < contents.length) {
    const total = derTotalLength(contents, off);
    const first = contents[off + 1]!;
    const header = first & 0x80 ? 2 + (first & 0x7f) : 2;
    out.push({ tag: contents[off]!, value: contents.subarray(off + header, off + total) });
    off += total;
  }
  return out;
}

/** Dotted form of a DER OBJECT IDENTIFIER's contents. */
export function decodeOid(v: Uint8Array): string {
  const parts: number[] = [];
  let acc = 0;
  for (const b of v) {
    acc = acc * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(acc);
      acc = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join(".");
}

/** Unsigned value of a DER INTEGER's contents (small integers only, as in Intel's SVN fields). */
export function derUint(v: Uint8Array): number {
  if (v.length === 0 || v.length > 6) fail("MALFORMED", "DER INTEGER out of range", "der");
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}
