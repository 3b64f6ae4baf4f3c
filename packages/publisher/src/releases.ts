/**
 * The release check a publisher runs on verified evidence: its launch measurement must belong to a published,
 * non-revoked release in the network's release registry (contracts/Releases.sol). Browser-safe.
 */
import { launchMeasurement, toHex, type VerifiedEvidence } from "@trustedpods/attestation";
import {
  type ChainContext,
  getRelease,
  INSECURE_DEV_RELEASE_VALUE,
  type Release,
  type ReleaseInput,
  type ReleaseMeasurement,
  ReleaseStatus,
  ReleaseTee,
  releaseOfMeasurement,
} from "@trustedpods/chain";
import { type Hex, zeroHash } from "viem";
import { PublisherError } from "./errors.js";
import { shortMessage } from "./network.js";

/** Finds the latest release holding a measurement (ReleaseTee id, value), or undefined. */
export type ReleaseLookup = (tee: number, value: Hex) => Promise<Release | undefined>;

export interface ReleaseCheck {
  lookup: ReleaseLookup;
  /** Where the releases come from, for messages (e.g. "release registry 0x… on devnet"). */
  source: string;
  /** The release id the provider declares in its Registry entry (zero or absent: none). */
  declared?: Hex;
}

export interface ReleaseMatch {
  release: Release;
  /** The measured configuration that matched the evidence. */
  measurement: ReleaseMeasurement;
  /** The provider's declared release when it is not the one its evidence matched. */
  declaredMismatch?: Hex;
}

/** The release registry of a chain context; undefined when the network names none. */
export function chainReleaseCheck(
  ctx: ChainContext,
  where: string,
  declared?: Hex,
): ReleaseCheck | undefined {
  const address = ctx.addresses.releases;
  if (!address) return undefined;
  return {
    lookup: (tee, value) => releaseOfMeasurement(ctx, tee, value),
    source: `release registry ${address} on ${where}`,
    ...(declared && declared !== zeroHash ? { declared } : {}),
  };
}

/** "5f3a1b2c9d0e4f61…": enough to recognise a measurement in a message; `details` carries all of it. */
export function shortHex(hex: string, chars = 16): string {
  const h = hex.startsWith("0x") ? hex.slice(2) : hex;
  return h.length > chars ? `${h.slice(0, chars)}…` : h;
}

const TEE_WORDS: Record<string, string> = {
  snp: "SEV-SNP MEASUREMENT",
  tdx: "TDX MRTD, RTMR0..2",
  sgx: "SGX MRENCLAVE",
  "insecure-dev": "insecure-dev label, no TEE",
};

function refused(field: string, message: string, details: Record<string, string>): PublisherError {
  return new PublisherError("ATTESTATION_REFUSED", message, { field, details });
}

/**
 * Accepts evidence whose launch measurement is in a published, non-revoked release; refuses it otherwise with a
 * message that says which (ATTESTATION_REFUSED, field `release.unpublished` or `release.revoked`).
 */
export async function checkRelease(
  ev: VerifiedEvidence,
  check: ReleaseCheck,
  who: string,
): Promise<ReleaseMatch> {
  const launch = launchMeasurement(ev);
  const value = `0x${toHex(launch.value)}` as Hex;
  const tee = ReleaseTee[launch.tee];
  let release: Release | undefined;
  try {
    release = await check.lookup(tee, value);
  } catch (err) {
    throw new PublisherError(
      "NETWORK_UNREACHABLE",
      `cannot read the ${check.source} to check provider ${who}'s release: ${shortMessage(err)}`,
      { cause: err },
    );
  }
  const what = `measurement ${shortHex(value)} (${TEE_WORDS[launch.tee]})`;
  const details: Record<string, string> = { tee: launch.tee, measurement: value };
  if (!release) {
    throw refused(
      "release.unpublished",
      `provider ${who}: ${what} is not a published provider release (${check.source}): ` +
        "no release signer vouched for the software it runs",
      details,
    );
  }
  details.releaseId = release.id;
  details.version = release.version;
  if (release.status === ReleaseStatus.revoked) {
    const when = new Date(Number(release.revokedAt) * 1000).toISOString();
    throw refused(
      "release.revoked",
      `provider ${who}: ${what} is release ${release.version} (${shortHex(release.id)}), ` +
        `which was revoked at ${when} by ${release.revokedBy}${release.revokeReason ? `: ${release.revokeReason}` : ""}`,
      details,
    );
  }
  const measurement = release.measurements.find(
    (m) => m.tee === tee && m.value.toLowerCase() === value.toLowerCase(),
  );
  if (!measurement)
    throw refused(
      "release.unpublished",
      `the ${check.source} named release ${release.version} for ${what}, but that release does not list it`,
      details,
    );
  return {
    release,
    measurement,
    ...(check.declared && check.declared.toLowerCase() !== release.id.toLowerCase()
      ? { declaredMismatch: check.declared }
      : {}),
  };
}

/** The releases a set of providers declare, by id (null: the id names no release on this registry). */
export async function declaredReleases(ctx: ChainContext, ids: Hex[]): Promise<Map<Hex, Release | null>> {
  const out = new Map<Hex, Release | null>();
  if (!ctx.addresses.releases) return out;
  for (const id of new Set(ids)) {
    if (id === zeroHash) continue;
    out.set(id, await getRelease(ctx, id).catch(() => null));
  }
  return out;
}

/** "1.2.0", "1.2.0 (REVOKED)", "none", "unknown 0x1234…" for a provider's declared release. */
export function releaseLabel(id: Hex, release: Release | null | undefined): string {
  if (id === zeroHash) return "none";
  if (!release) return `unknown ${shortHex(id, 8)}`;
  return release.status === ReleaseStatus.revoked ? `${release.version} (REVOKED)` : release.version;
}

const HEX = /^(0x)?[0-9a-fA-F]*$/;

/**
 * Validates a release file (YAML/JSON document) into the contract's input; unknown keys are errors.
 *
 * ```yaml
 * version: 1.2.0
 * imageDigest: sha256:<64 hex>          # the provider VM image
 * source: git+https://…@<commit>        # optional
 * measurements:
 *   - { tee: snp, config: "milan 4 vCPU", measurement: <96 hex>, firmware: <64 hex> }
 *   - { tee: tdx, config: "spr 4 vCPU", mrtd: <96 hex>, rtmr0: …, rtmr1: …, rtmr2: … }
 *   - { tee: sgx, config: "...", mrenclave: <64 hex> }
 *   - { tee: insecure-dev, config: "devnet" }
 * ```
 */
export function parseReleaseFile(doc: unknown, file = "release file"): ReleaseInput {
  const bad = (field: string, message: string): never => {
    throw new PublisherError("RELEASE_MALFORMED", `${file}: ${field} ${message}`, { field });
  };
  const obj = (v: unknown, field: string, keys: string[]): Record<string, unknown> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) bad(field, "must be an object");
    for (const k of Object.keys(v as object))
      if (!keys.includes(k)) bad(`${field}.${k}`, "is not a known key");
    return v as Record<string, unknown>;
  };
  const hex = (v: unknown, field: string, bytes: number): string => {
    let s = typeof v === "string" ? v.replace(/^sha256:/, "") : "";
    if (!HEX.test(s)) s = "";
    s = s.replace(/^0x/, "").toLowerCase();
    if (s.length !== bytes * 2) bad(field, `must be ${bytes} bytes of hex`);
    return s;
  };
  const d = obj(doc, "document", ["version", "imageDigest", "source", "measurements"]);
  if (typeof d.version !== "string" || d.version.length === 0 || d.version.length > 64)
    bad("version", "must be a string of 1 to 64 characters");
  if (d.source !== undefined && (typeof d.source !== "string" || d.source.length > 256))
    bad("source", "must be a string of at most 256 characters");
  if (!Array.isArray(d.measurements) || d.measurements.length === 0 || d.measurements.length > 16)
    bad("measurements", "must list 1 to 16 measured configurations");
  const measurements = (d.measurements as unknown[]).map((m, i): ReleaseMeasurement => {
    const f = `measurements[${i}]`;
    const e = obj(m, f, [
      "tee",
      "config",
      "measurement",
      "mrtd",
      "rtmr0",
      "rtmr1",
      "rtmr2",
      "mrenclave",
      "firmware",
    ]);
    const tee = e.tee as string;
    if (!(tee in ReleaseTee)) bad(`${f}.tee`, "must be snp, tdx, sgx or insecure-dev");
    if (e.config !== undefined && (typeof e.config !== "string" || e.config.length > 64))
      bad(`${f}.config`, "must be a string of at most 64 characters");
    const allowed: Record<string, string[]> = {
      snp: ["measurement"],
      tdx: ["mrtd", "rtmr0", "rtmr1", "rtmr2"],
      sgx: ["mrenclave"],
      "insecure-dev": [],
    };
    for (const k of ["measurement", "mrtd", "rtmr0", "rtmr1", "rtmr2", "mrenclave"])
      if (e[k] !== undefined && !allowed[tee]!.includes(k)) bad(`${f}.${k}`, `does not apply to ${tee}`);
    let value: string;
    if (tee === "snp") value = hex(e.measurement, `${f}.measurement`, 48);
    else if (tee === "tdx")
      value = ["mrtd", "rtmr0", "rtmr1", "rtmr2"].map((k) => hex(e[k], `${f}.${k}`, 48)).join("");
    else if (tee === "sgx") value = hex(e.mrenclave, `${f}.mrenclave`, 32);
    else value = INSECURE_DEV_RELEASE_VALUE.slice(2);
    return {
      tee: ReleaseTee[tee as keyof typeof ReleaseTee],
      config: (e.config as string | undefined) ?? "",
      value: `0x${value}`,
      firmware: e.firmware === undefined ? zeroHash : `0x${hex(e.firmware, `${f}.firmware`, 32)}`,
    };
  });
  return {
    version: d.version as string,
    imageDigest: `0x${hex(d.imageDigest, "imageDigest", 32)}`,
    source: (d.source as string | undefined) ?? "",
    measurements,
  };
}
