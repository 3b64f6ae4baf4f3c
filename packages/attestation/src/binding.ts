// Binds evidence to one attestation session: the TEE signs report data that commits to the verifier's nonce
// (freshness, no replay) and to the provider's libp2p and encryption keys (no relay: only the attested
// TEE holds the private keys the session then uses).
import { concat, equalBytes, toHex } from "./bytes.js";
import { sha512 } from "./crypto.js";
import { fail } from "./errors.js";

export const REPORT_DATA_DOMAIN = "trusted-pods/attest/v1";
export const MIN_NONCE_BYTES = 16;
export const MAX_NONCE_BYTES = 64;
const MAX_KEY_BYTES = 4096;

export interface SessionBinding {
  nonce: Uint8Array;
  libp2pPublicKey: Uint8Array;
  encryptionPublicKey: Uint8Array;
}

function lengthPrefixed(part: Uint8Array): Uint8Array {
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, part.length, false);
  return concat(len, part);
}

/**
 * SHA-512(lp(domain) || lp(nonce) || lp(libp2pPublicKey) || lp(encryptionPublicKey)), where lp(x) is x's
 * length as a 4-byte big-endian integer followed by x, so no two different inputs concatenate alike.
 */
export async function computeReportData(b: SessionBinding): Promise<Uint8Array> {
  if (b.nonce.length < MIN_NONCE_BYTES || b.nonce.length > MAX_NONCE_BYTES) {
    fail(
      "REPORT_DATA_MISMATCH",
      `nonce must be ${MIN_NONCE_BYTES}..${MAX_NONCE_BYTES} bytes, got ${b.nonce.length}`,
      "nonce",
    );
  }
  for (const [name, key] of [
    ["libp2pPublicKey", b.libp2pPublicKey],
    ["encryptionPublicKey", b.encryptionPublicKey],
  ] as const) {
    if (key.length === 0 || key.length > MAX_KEY_BYTES)
      fail("REPORT_DATA_MISMATCH", `${name} must be 1..${MAX_KEY_BYTES} bytes`, name);
  }
  return sha512(
    concat(
      lengthPrefixed(new TextEncoder().encode(REPORT_DATA_DOMAIN)),
      lengthPrefixed(b.nonce),
      lengthPrefixed(b.libp2pPublicKey),
      lengthPrefixed(b.encryptionPublicKey),
    ),
  );
}

/** Throws REPORT_DATA_MISMATCH unless `reportData` is the binding of this session. */
export async function checkReportData(reportData: Uint8Array, b: SessionBinding): Promise<void> {
  const want = await computeReportData(b);
  if (!equalBytes(reportData, want)) {
    fail(
      "REPORT_DATA_MISMATCH",
      `report data ${toHex(reportData).slice(0, 16)}… is not the binding of this nonce and these keys`,
      "reportData",
    );
  }
}

/** A fresh random nonce for an AttestRequest. */
export function newNonce(bytes = 32): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(bytes));
}
