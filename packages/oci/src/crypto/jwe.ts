import { FlattenedEncrypt, type FlattenedJWE, flattenedDecrypt } from "jose";
import { InvalidImageError, NoMatchingKeyError } from "../errors.js";
import type { PrivateKey, RecipientKey } from "./keys.js";

/** Annotation with the wrapped layer keys: comma-separated base64 of JWE JSON serializations (ocicrypt). */
export const JWE_KEYS_ANNOTATION = "org.opencontainers.image.enc.keys.jwe";
/** Annotation with the public cipher options (cipher name, HMAC), base64 JSON (ocicrypt). */
export const PUBOPTS_ANNOTATION = "org.opencontainers.image.enc.pubopts";
/** Prefix of every encryption annotation; decryption strips them all. */
export const ENC_ANNOTATION_PREFIX = "org.opencontainers.image.enc.";

const CONTENT_ENCRYPTION = "A256GCM";
const ACCEPTED_KEY_ALGS = ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"];
const ACCEPTED_ENC = ["A128GCM", "A192GCM", "A256GCM"];
/** Bounds what we parse from an annotation; real entries are well under 4 KiB each. */
const MAX_ANNOTATION = 1024 * 1024;
const MAX_ENTRIES = 1024;

/** One recipient slot in the annotation, as a flattened JWE, with where it came from. */
export interface WrappedKeyEntry {
  /** Index of the comma-separated annotation entry. */
  entry: number;
  /** The `kid` this package records (JWK thumbprint); absent in entries other tools wrote. */
  kid?: string;
  alg?: string;
  jwe: FlattenedJWE;
}

/**
 * Wraps the private layer options (JSON with the symmetric key) for each recipient: one flattened JWE per
 * recipient, each its own comma-separated entry, so recipients can later be added and removed one by one.
 */
export async function wrapKeys(optsData: Uint8Array, recipients: RecipientKey[]): Promise<string[]> {
  const entries: string[] = [];
  for (const r of recipients) {
    const jwe = await new FlattenedEncrypt(optsData)
      .setProtectedHeader({ alg: r.alg, enc: CONTENT_ENCRYPTION, kid: r.kid })
      .encrypt(r.key);
    entries.push(Buffer.from(JSON.stringify(jwe)).toString("base64"));
  }
  return entries;
}

function decodeHeader(b64url: string | undefined): Record<string, unknown> {
  if (!b64url) return {};
  try {
    return JSON.parse(Buffer.from(b64url, "base64url").toString("utf8")) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** Splits the annotation into one flattened JWE per recipient (general serializations are split up). */
export function parseWrappedKeys(annotation: string): WrappedKeyEntry[] {
  if (annotation.length > MAX_ANNOTATION) throw new InvalidImageError("wrapped-key annotation too large");
  const parts = annotation.split(",").filter((p) => p.length > 0);
  if (parts.length > MAX_ENTRIES) throw new InvalidImageError("too many wrapped-key entries");
  const out: WrappedKeyEntry[] = [];
  parts.forEach((part, entry) => {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(Buffer.from(part, "base64").toString("utf8")) as Record<string, unknown>;
    } catch (err) {
      throw new InvalidImageError(`wrapped-key entry ${entry} is not base64 JSON`, { cause: err });
    }
    const common = {
      protected: parsed.protected,
      unprotected: parsed.unprotected,
      iv: parsed.iv,
      ciphertext: parsed.ciphertext,
      tag: parsed.tag,
      aad: parsed.aad,
    };
    const recipients = Array.isArray(parsed.recipients)
      ? (parsed.recipients as Record<string, unknown>[])
      : [{ header: parsed.header, encrypted_key: parsed.encrypted_key }];
    const protectedHeader = decodeHeader(parsed.protected as string | undefined);
    for (const r of recipients) {
      const jwe = Object.fromEntries(
        Object.entries({ ...common, header: r.header, encrypted_key: r.encrypted_key }).filter(
          ([, v]) => v !== undefined,
        ),
      ) as unknown as FlattenedJWE;
      const header = {
        ...protectedHeader,
        ...(parsed.unprotected as object | undefined),
        ...(r.header as object | undefined),
      } as Record<string, unknown>;
      const item: WrappedKeyEntry = { entry, jwe };
      if (typeof header.kid === "string") item.kid = header.kid;
      if (typeof header.alg === "string") item.alg = header.alg;
      out.push(item);
    }
  });
  return out;
}

/** Tries every private key on every recipient slot; returns the first plaintext that unwraps. */
export async function unwrapKey(annotation: string, keys: PrivateKey[]): Promise<Uint8Array> {
  const entries = parseWrappedKeys(annotation);
  // Slots that name one of our keys go first, so the common case costs one private-key operation.
  const ours = new Set(keys.map((k) => k.kid));
  entries.sort((a, b) => Number(ours.has(b.kid ?? "")) - Number(ours.has(a.kid ?? "")));
  for (const e of entries) {
    for (const k of keys) {
      if (e.kid !== undefined && e.kid !== k.kid) continue;
      try {
        const { plaintext } = await flattenedDecrypt(e.jwe, k.key, {
          keyManagementAlgorithms: ACCEPTED_KEY_ALGS,
          contentEncryptionAlgorithms: ACCEPTED_ENC,
        });
        return plaintext;
      } catch {
        // wrong key for this slot: try the next
      }
    }
  }
  throw new NoMatchingKeyError(
    `none of the ${keys.length} private key(s) unwraps any of the ${entries.length} wrapped layer key(s)`,
  );
}

/** Removes the slots whose kid is in `kids`; returns the new annotation and how many slots went. */
export function removeWrappedKeys(
  annotation: string,
  kids: Set<string>,
): { annotation: string; removed: number } {
  const parts = annotation.split(",").filter((p) => p.length > 0);
  const entries = parseWrappedKeys(annotation);
  const byEntry = new Map<number, WrappedKeyEntry[]>();
  for (const e of entries) byEntry.set(e.entry, [...(byEntry.get(e.entry) ?? []), e]);
  const kept: string[] = [];
  let removed = 0;
  parts.forEach((part, i) => {
    const slots = byEntry.get(i) ?? [];
    const drop = slots.filter((s) => s.kid !== undefined && kids.has(s.kid));
    if (drop.length === 0) {
      kept.push(part);
      return;
    }
    removed += drop.length;
    const keep = slots.filter((s) => !drop.includes(s));
    // A multi-recipient entry keeps its other recipients: each slot is a complete flattened JWE.
    for (const s of keep) kept.push(Buffer.from(JSON.stringify(s.jwe)).toString("base64"));
  });
  return { annotation: kept.join(","), removed };
}
