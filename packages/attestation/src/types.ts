import { concat, toHex } from "./bytes.js";
import { sha256 } from "./crypto.js";
import type { IntelQuote } from "./intel/quote.js";
import type { SnpProduct, SnpReport } from "./snp/report.js";
import { verifyChain, X509 } from "./x509.js";

export type TeeKind = "snp" | "tdx" | "sgx" | "insecure-dev";

/**
 * Intel's TCB statuses (as Intel's QVL and PCS name them), plus "Unknown" when no collateral was given
 * (and for SEV-SNP, for which AMD publishes no status: use a policy minimum TCB instead).
 */
export type TcbStatus =
  | "UpToDate"
  | "SWHardeningNeeded"
  | "ConfigurationNeeded"
  | "ConfigurationAndSWHardeningNeeded"
  | "OutOfDate"
  | "OutOfDateConfigurationNeeded"
  | "Revoked"
  | "Unknown";

/** What a successful verification established: genuine evidence from a TEE, not yet judged by a policy. */
export interface VerifiedEvidence {
  tee: TeeKind;
  /** Report or quote format version. */
  version: number;
  /** SNP MEASUREMENT (48 bytes), TDX MRTD (48), SGX MRENCLAVE (32); empty for insecure-dev. */
  measurement: Uint8Array;
  reportData: Uint8Array;
  /** Whether the guest/enclave is debuggable (its memory is readable by the host). */
  debug: boolean;
  /** TCB values: SNP security patch levels, Intel SVNs. */
  tcb: Record<string, number | string>;
  tcbStatus: TcbStatus;
  advisoryIds: string[];
  snp?: { report: SnpReport; product: SnpProduct; signer: "vcek" | "vlek" };
  quote?: IntelQuote;
  /** Non-fatal observations (e.g. the chip id is masked so hwID could not be compared). */
  warnings: string[];
}

export interface VerifyOptions {
  /** Verification time for certificate, CRL and collateral validity (default: now). */
  now?: Date;
  /** Reuse of already verified certificate chains across verifications. */
  cache?: ChainCache;
}

/**
 * Remembers certificate chains whose signatures already verified up to a pinned root, keyed by a hash of
 * their DER. Validity at the verification time is still checked on every use: only signatures are cached.
 */
export class ChainCache {
  private readonly verified = new Map<string, X509>();
  private readonly parsed = new Map<string, X509>();
  constructor(private readonly maxEntries = 1024) {}

  /** Parsing DER is the largest single cost of a verification: reuse parsed certificates by their bytes. */
  certificate(der: Uint8Array, label: string): X509 {
    const key = toHex(der);
    let cert = this.parsed.get(key);
    if (!cert) {
      cert = new X509(der, label);
      if (this.parsed.size >= this.maxEntries) this.parsed.clear();
      this.parsed.set(key, cert);
    }
    return cert.relabel(label);
  }

  async verify(chain: X509[], roots: X509[], now: Date): Promise<X509> {
    const key = toHex(await sha256(concat(...chain.map((c) => c.der), ...roots.map((r) => r.der))));
    const hit = this.verified.get(key);
    if (hit) {
      for (const c of [...chain, hit]) c.checkValidity(now);
      return hit;
    }
    const anchor = await verifyChain(chain, roots, now);
    if (this.verified.size >= this.maxEntries) this.verified.clear();
    this.verified.set(key, anchor);
    return anchor;
  }

  get size(): number {
    return this.verified.size;
  }
}

/** Parses a certificate, through the cache when there is one. */
export function parseCertificate(der: Uint8Array, label: string, cache: ChainCache | undefined): X509 {
  return cache ? cache.certificate(der, label) : new X509(der, label);
}

export function verifyChainWith(
  chain: X509[],
  roots: X509[],
  now: Date,
  cache: ChainCache | undefined,
): Promise<X509> {
  return cache ? cache.verify(chain, roots, now) : verifyChain(chain, roots, now);
}
