// X.509 certificates and CRLs, parsed with @peculiar/asn1-x509 (pure JS) and verified with WebCrypto.

import { RsaSaPssParams } from "@peculiar/asn1-rsa";
import { AsnConvert } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier, Certificate, CertificateList, type Name } from "@peculiar/asn1-x509";
import { derFirstChild, equalBytes, toHex } from "./bytes.js";
import {
  type Curve,
  ecdsaDerToRaw,
  type HashName,
  importEcdsaSpki,
  importRsaSpki,
  verifyEcdsa,
  verifyRsa,
} from "./crypto.js";
import { AttestationError, fail } from "./errors.js";

const OID = {
  ecPublicKey: "1.2.840.10045.2.1",
  p256: "1.2.840.10045.3.1.7",
  p384: "1.3.132.0.34",
  ecdsaSha256: "1.2.840.10045.4.3.2",
  ecdsaSha384: "1.2.840.10045.4.3.3",
  rsaEncryption: "1.2.840.113549.1.1.1",
  rsaPss: "1.2.840.113549.1.1.10",
  sha256Rsa: "1.2.840.113549.1.1.11",
  sha384Rsa: "1.2.840.113549.1.1.12",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",
} as const;

const HASH_BY_OID: Record<string, HashName> = {
  [OID.sha256]: "SHA-256",
  [OID.sha384]: "SHA-384",
  [OID.sha512]: "SHA-512",
};

const NAME_KEYS: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
};

function nameToString(name: Name): string {
  return name
    .map((rdn) => rdn.map((atv) => `${NAME_KEYS[atv.type] ?? atv.type}=${atv.value.toString()}`).join("+"))
    .join(", ");
}

/** Signature algorithm of a certificate or CRL, reduced to what WebCrypto needs. */
interface SigAlg {
  kind: "ECDSA" | "RSA-PSS" | "RSASSA-PKCS1-v1_5";
  hash: HashName;
  saltLength: number;
}

function sigAlgOf(alg: { algorithm: string; parameters?: ArrayBuffer | null }, what: string): SigAlg {
  switch (alg.algorithm) {
    case OID.ecdsaSha256:
      return { kind: "ECDSA", hash: "SHA-256", saltLength: 0 };
    case OID.ecdsaSha384:
      return { kind: "ECDSA", hash: "SHA-384", saltLength: 0 };
    case OID.sha256Rsa:
      return { kind: "RSASSA-PKCS1-v1_5", hash: "SHA-256", saltLength: 0 };
    case OID.sha384Rsa:
      return { kind: "RSASSA-PKCS1-v1_5", hash: "SHA-384", saltLength: 0 };
    case OID.rsaPss: {
      if (!alg.parameters) fail("UNSUPPORTED", `${what}: RSA-PSS without parameters`, what);
      const p = AsnConvert.parse(alg.parameters, RsaSaPssParams);
      const hash = HASH_BY_OID[p.hashAlgorithm.algorithm];
      const mgfHash = p.maskGenAlgorithm.parameters
        ? HASH_BY_OID[AsnConvert.parse(p.maskGenAlgorithm.parameters, AlgorithmIdentifier).algorithm]
        : undefined;
      if (!hash) fail("UNSUPPORTED", `${what}: RSA-PSS hash ${p.hashAlgorithm.algorithm}`, what);
      // WebCrypto's RSA-PSS always uses MGF1 with the message hash: refuse anything else rather than misverify.
      if (mgfHash !== hash)
        fail("UNSUPPORTED", `${what}: RSA-PSS MGF1 hash differs from the message hash`, what);
      return { kind: "RSA-PSS", hash, saltLength: p.saltLength };
    }
    default:
      return fail("UNSUPPORTED", `${what}: signature algorithm ${alg.algorithm}`, what);
  }
}

/** A parsed certificate; `label` names it in error messages ("vcek", "ask", "pck"...). */
export class X509 {
  readonly cert: Certificate;
  readonly tbs: Uint8Array;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialHex: string;
  readonly spki: Uint8Array;
  readonly keyAlgorithm: string;
  readonly curve: Curve | undefined;
  private readonly extensions = new Map<string, Uint8Array>();
  private keyPromise: Promise<CryptoKey> | undefined;

  constructor(
    readonly der: Uint8Array,
    readonly label = "certificate",
  ) {
    const parsed = parseOr(
      () => ({ cert: AsnConvert.parse(der, Certificate), tbs: derFirstChild(der) }),
      `${label} is not a DER X.509 certificate`,
      label,
    );
    this.cert = parsed.cert;
    this.tbs = parsed.tbs;
    const tbs = this.cert.tbsCertificate;
    this.subject = nameToString(tbs.subject);
    this.issuer = nameToString(tbs.issuer);
    this.notBefore = tbs.validity.notBefore.getTime();
    this.notAfter = tbs.validity.notAfter.getTime();
    this.serialHex = normalizeSerial(new Uint8Array(tbs.serialNumber));
    this.spki = new Uint8Array(AsnConvert.serialize(tbs.subjectPublicKeyInfo));
    this.keyAlgorithm = tbs.subjectPublicKeyInfo.algorithm.algorithm;
    const params = tbs.subjectPublicKeyInfo.algorithm.parameters;
    if (this.keyAlgorithm === OID.ecPublicKey && params) {
      const p = new Uint8Array(params);
      const curveOid = toHex(p);
      // DER OIDs of the two curves Intel and AMD use.
      this.curve =
        curveOid === "06082a8648ce3d030107" ? "P-256" : curveOid === "06052b81040022" ? "P-384" : undefined;
    } else {
      this.curve = undefined;
    }
    for (const ext of tbs.extensions ?? []) {
      this.extensions.set(ext.extnID, new Uint8Array(ext.extnValue.buffer));
    }
  }

  /** The raw extnValue contents (the DER inside the OCTET STRING) of an extension, if present. */
  extension(oid: string): Uint8Array | undefined {
    return this.extensions.get(oid);
  }

  get commonName(): string {
    const m = /(?:^|, )CN=([^,]*)/.exec(this.subject);
    return m?.[1] ?? "";
  }

  isSelfIssued(): boolean {
    return this.subject === this.issuer;
  }

  /** Throws EXPIRED when `now` is outside notBefore..notAfter. */
  checkValidity(now: Date): void {
    if (now < this.notBefore) {
      fail(
        "EXPIRED",
        `${this.label} (${this.commonName}) is not valid before ${this.notBefore.toISOString()}`,
        this.label,
      );
    }
    if (now > this.notAfter) {
      fail(
        "EXPIRED",
        `${this.label} (${this.commonName}) expired at ${this.notAfter.toISOString()}`,
        this.label,
      );
    }
  }

  /** Whether this certificate is signed by `issuer`'s key (names must chain too). */
  async isSignedBy(issuer: X509): Promise<boolean> {
    if (this.issuer !== issuer.subject) return false;
    return verifySignature(
      issuer,
      this.cert.signatureAlgorithm,
      new Uint8Array(this.cert.signatureValue),
      this.tbs,
      this.label,
    );
  }

  /** Imports this certificate's EC public key for verifying data it signed. */
  ecKey(): Promise<CryptoKey> {
    if (!this.curve) fail("UNSUPPORTED", `${this.label} does not hold a P-256 or P-384 key`, this.label);
    this.keyPromise ??= importEcdsaSpki(this.spki, this.curve);
    return this.keyPromise;
  }

  /** The same parsed certificate under another name for error messages (shares the imported key). */
  relabel(label: string): X509 {
    if (label === this.label) return this;
    return Object.assign(Object.create(X509.prototype) as X509, this, { label });
  }

  sameAs(other: X509): boolean {
    return equalBytes(this.der, other.der);
  }
}

/** Runs a parser; any exception from the ASN.1 library becomes a MALFORMED error naming the input. */
function parseOr<T>(f: () => T, message: string, label: string): T {
  try {
    return f();
  } catch (err) {
    const detail = err instanceof AttestationError ? `: ${err.message}` : "";
    return fail("MALFORMED", `${message}${detail}`, label);
  }
}

function normalizeSerial(bytes: Uint8Array): string {
  const hex = toHex(bytes).replace(/^0+/, "");
  return hex === "" ? "0" : hex;
}

/** Verifies `sig` over `data` with the signer certificate's key under the given algorithm identifier. */
async function verifySignature(
  signer: X509,
  algId: { algorithm: string; parameters?: ArrayBuffer | null },
  sig: Uint8Array,
  data: Uint8Array,
  what: string,
): Promise<boolean> {
  const alg = sigAlgOf(algId, what);
  if (alg.kind === "ECDSA") {
    if (!signer.curve) return false;
    const raw = ecdsaDerToRaw(sig, signer.curve === "P-256" ? 32 : 48);
    return verifyEcdsa(await signer.ecKey(), alg.hash, raw, data);
  }
  if (signer.keyAlgorithm !== OID.rsaEncryption) return false;
  const key = await importRsaSpki(signer.spki, alg.kind, alg.hash);
  return verifyRsa(key, alg.kind, alg.saltLength, sig, data);
}

/** A parsed CRL with its signed bytes. */
export class Crl {
  readonly list: CertificateList;
  readonly tbs: Uint8Array;
  readonly issuer: string;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  readonly revoked: ReadonlySet<string>;

  constructor(
    readonly der: Uint8Array,
    readonly label = "crl",
  ) {
    const parsed = parseOr(
      () => ({ list: AsnConvert.parse(der, CertificateList), tbs: derFirstChild(der) }),
      `${label} is not a DER CRL`,
      label,
    );
    this.list = parsed.list;
    this.tbs = parsed.tbs;
    const t = this.list.tbsCertList;
    this.issuer = nameToString(t.issuer);
    this.thisUpdate = t.thisUpdate.getTime();
    this.nextUpdate = t.nextUpdate?.getTime();
    this.revoked = new Set(
      (t.revokedCertificates ?? []).map((r) => normalizeSerial(new Uint8Array(r.userCertificate))),
    );
  }

  /** Checks the CRL's signature by `issuer` and that `now` is inside thisUpdate..nextUpdate. */
  async check(issuer: X509, now: Date): Promise<void> {
    if (this.issuer !== issuer.subject) {
      fail(
        "COLLATERAL_INVALID",
        `${this.label} is issued by ${this.issuer}, not ${issuer.subject}`,
        this.label,
      );
    }
    const ok = await verifySignature(
      issuer,
      this.list.signatureAlgorithm,
      new Uint8Array(this.list.signature),
      this.tbs,
      this.label,
    );
    if (!ok)
      fail(
        "COLLATERAL_INVALID",
        `${this.label} signature does not verify with ${issuer.commonName}`,
        this.label,
      );
    if (now < this.thisUpdate || (this.nextUpdate && now > this.nextUpdate)) {
      fail(
        "EXPIRED",
        `${this.label} is valid ${this.thisUpdate.toISOString()}..${this.nextUpdate?.toISOString()}, not at ${now.toISOString()}`,
        this.label,
      );
    }
  }

  isRevoked(cert: X509): boolean {
    return cert.issuer === this.issuer && this.revoked.has(cert.serialHex);
  }
}

/**
 * Verifies that `chain` (leaf first) chains by signatures to one of `roots`, each certificate valid at `now`.
 * The chain may end with the root itself or with a certificate the root signed; any other end is
 * UNTRUSTED_ROOT. Returns the pinned root that anchors the chain.
 */
export async function verifyChain(chain: X509[], roots: X509[], now: Date | undefined): Promise<X509> {
  if (chain.length === 0) fail("CHAIN_INVALID", "no certificates", "chain");
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i]!;
    const parent = chain[i + 1]!;
    if (!(await child.isSignedBy(parent))) {
      fail(
        "CHAIN_INVALID",
        `${child.label} (${child.commonName}) is not signed by ${parent.label} (${parent.commonName})`,
        child.label,
      );
    }
  }
  const last = chain[chain.length - 1]!;
  let anchor: X509 | undefined = roots.find((r) => r.sameAs(last));
  if (!anchor) {
    if (last.isSelfIssued()) {
      fail("UNTRUSTED_ROOT", `${last.label} (${last.commonName}) is a root that is not pinned`, last.label);
    }
    for (const r of roots) {
      if (await last.isSignedBy(r)) {
        anchor = r;
        break;
      }
    }
  }
  if (!anchor)
    fail("UNTRUSTED_ROOT", `${last.label} (${last.commonName}) does not chain to a pinned root`, last.label);
  // The pinned root must still sign itself: a pin is a certificate, not just a name.
  if (!(await anchor.isSignedBy(anchor)))
    fail("UNTRUSTED_ROOT", "pinned root does not verify itself", "root");
  if (now) for (const c of [...chain, anchor]) c.checkValidity(now);
  return anchor;
}
