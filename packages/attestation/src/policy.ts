// Acceptance policy: which genuine evidence a verifier accepts. Every rejection names the rule that failed.
import { parse as parseYaml } from "yaml";
import { equalBytes, fromHex, toHex } from "./bytes.js";
import { AttestationError, fail } from "./errors.js";
import type { SnpTcb } from "./snp/report.js";
import { decodeTcb } from "./snp/report.js";
import type { TcbStatus, TeeKind, VerifiedEvidence } from "./types.js";

export interface SnpPolicy {
  /** Accepted MEASUREMENT values (hex, 48 bytes); absent or empty = any. */
  measurements?: string[];
  /** Minimum REPORTED_TCB security patch levels, per component. */
  minTcb?: Partial<SnpTcb>;
  /** Accepted signers (default both). */
  signers?: ("vcek" | "vlek")[];
  minGuestSvn?: number;
  /** Accepted HOST_DATA values (hex, 32 bytes). */
  hostData?: string[];
}

export interface TdxPolicy {
  mrtd?: string[];
  rtmr0?: string[];
  rtmr1?: string[];
  rtmr2?: string[];
  rtmr3?: string[];
  mrConfigId?: string[];
  /** Accepted TCB statuses (default: UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded). */
  acceptedTcbStatus?: TcbStatus[];
}

export interface SgxPolicy {
  mrenclave?: string[];
  mrsigner?: string[];
  minIsvSvn?: number;
  acceptedTcbStatus?: TcbStatus[];
}

export interface Policy {
  /** TEE types accepted; default snp, tdx, sgx (never insecure-dev unless allowInsecureDev). */
  tee?: TeeKind[];
  /** Debuggable guests expose their memory to the host: forbidden unless true. */
  allowDebug?: boolean;
  /** Accept insecure-dev evidence (development only). */
  allowInsecureDev?: boolean;
  /** Expected report data (hex, 64 bytes), for callers that know it up front. */
  reportData?: string;
  snp?: SnpPolicy;
  tdx?: TdxPolicy;
  sgx?: SgxPolicy;
  /**
   * "required": the evidence's launch measurement must belong to a published, non-revoked release in the
   * network's release registry; "any": no release is needed. Checked by the publisher SDK, which reads the
   * chain (applyPolicy cannot). Default: "required" wherever the publisher SDK picks the policy for a network.
   */
  releases?: "required" | "any";
}

export const DEFAULT_ACCEPTED_TCB_STATUS: readonly TcbStatus[] = [
  "UpToDate",
  "SWHardeningNeeded",
  "ConfigurationNeeded",
  "ConfigurationAndSWHardeningNeeded",
];

const TCB_STATUSES = new Set<string>([
  ...DEFAULT_ACCEPTED_TCB_STATUS,
  "OutOfDate",
  "OutOfDateConfigurationNeeded",
  "Revoked",
  "Unknown",
]);
const TEES = new Set<string>(["snp", "tdx", "sgx", "insecure-dev"]);

function reject(field: string, message: string): never {
  throw new AttestationError("POLICY_VIOLATION", message, `policy.${field}`);
}

/** Validates an untrusted policy document; unknown keys are errors so a typo cannot silently loosen a policy. */
export function parsePolicy(doc: unknown): Policy {
  const bad = (field: string, msg: string): never =>
    fail("MALFORMED", `policy ${field}: ${msg}`, `policy.${field}`);
  const obj = (v: unknown, field: string, keys: string[]): Record<string, unknown> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) bad(field, "must be an object");
    const rec = v as Record<string, unknown>;
    for (const k of Object.keys(rec))
      if (!keys.includes(k)) bad(`${field ? `${field}.` : ""}${k}`, "unknown key");
    return rec;
  };
  const hexList = (v: unknown, field: string, bytes: number): string[] | undefined => {
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) bad(field, "must be a list of hex strings");
    return (v as unknown[]).map((x, i) => {
      if (typeof x !== "string" || fromHexSafe(x)?.length !== bytes)
        bad(`${field}[${i}]`, `must be ${bytes} bytes of hex`);
      return (x as string).toLowerCase();
    });
  };
  const statusList = (v: unknown, field: string): TcbStatus[] | undefined => {
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string" || !TCB_STATUSES.has(s)))
      bad(field, `must list TCB statuses (${[...TCB_STATUSES].join(", ")})`);
    return v as TcbStatus[];
  };
  const int = (v: unknown, field: string): number | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff)
      bad(field, "must be a small non-negative integer");
    return v as number;
  };
  const bool = (v: unknown, field: string): boolean | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") bad(field, "must be true or false");
    return v as boolean;
  };
  const root = obj(doc, "", [
    "tee",
    "allowDebug",
    "allowInsecureDev",
    "reportData",
    "snp",
    "tdx",
    "sgx",
    "releases",
  ]);
  const p: Policy = {};
  if (root.tee !== undefined) {
    if (!Array.isArray(root.tee) || root.tee.some((t) => !TEES.has(t as string)))
      bad("tee", "must list snp, tdx, sgx or insecure-dev");
    p.tee = root.tee as TeeKind[];
  }
  if (root.allowDebug !== undefined) p.allowDebug = bool(root.allowDebug, "allowDebug")!;
  if (root.allowInsecureDev !== undefined)
    p.allowInsecureDev = bool(root.allowInsecureDev, "allowInsecureDev")!;
  if (root.releases !== undefined) {
    if (root.releases !== "required" && root.releases !== "any")
      bad("releases", 'must be "required" or "any"');
    p.releases = root.releases as "required" | "any";
  }
  if (root.reportData !== undefined) p.reportData = hexList([root.reportData], "reportData", 64)![0]!;
  if (root.snp !== undefined) {
    const s = obj(root.snp, "snp", ["measurements", "minTcb", "signers", "minGuestSvn", "hostData"]);
    const snp: SnpPolicy = {};
    const m = hexList(s.measurements, "snp.measurements", 48);
    if (m) snp.measurements = m;
    const h = hexList(s.hostData, "snp.hostData", 32);
    if (h) snp.hostData = h;
    if (s.minTcb !== undefined) {
      const t = obj(s.minTcb, "snp.minTcb", ["bootloader", "tee", "snp", "microcode", "fmc"]);
      const minTcb: Partial<SnpTcb> = {};
      for (const k of ["bootloader", "tee", "snp", "microcode", "fmc"] as const) {
        const v = int(t[k], `snp.minTcb.${k}`);
        if (v !== undefined) minTcb[k] = v;
      }
      snp.minTcb = minTcb;
    }
    if (s.signers !== undefined) {
      if (!Array.isArray(s.signers) || s.signers.some((x) => x !== "vcek" && x !== "vlek"))
        bad("snp.signers", "must list vcek and/or vlek");
      snp.signers = s.signers as ("vcek" | "vlek")[];
    }
    const g = int(s.minGuestSvn, "snp.minGuestSvn");
    if (g !== undefined) snp.minGuestSvn = g;
    p.snp = snp;
  }
  if (root.tdx !== undefined) {
    const t = obj(root.tdx, "tdx", [
      "mrtd",
      "rtmr0",
      "rtmr1",
      "rtmr2",
      "rtmr3",
      "mrConfigId",
      "acceptedTcbStatus",
    ]);
    const tdx: TdxPolicy = {};
    for (const k of ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrConfigId"] as const) {
      const v = hexList(t[k], `tdx.${k}`, 48);
      if (v) tdx[k] = v;
    }
    const st = statusList(t.acceptedTcbStatus, "tdx.acceptedTcbStatus");
    if (st) tdx.acceptedTcbStatus = st;
    p.tdx = tdx;
  }
  if (root.sgx !== undefined) {
    const s = obj(root.sgx, "sgx", ["mrenclave", "mrsigner", "minIsvSvn", "acceptedTcbStatus"]);
    const sgx: SgxPolicy = {};
    const e = hexList(s.mrenclave, "sgx.mrenclave", 32);
    if (e) sgx.mrenclave = e;
    const sg = hexList(s.mrsigner, "sgx.mrsigner", 32);
    if (sg) sgx.mrsigner = sg;
    const v = int(s.minIsvSvn, "sgx.minIsvSvn");
    if (v !== undefined) sgx.minIsvSvn = v;
    const st = statusList(s.acceptedTcbStatus, "sgx.acceptedTcbStatus");
    if (st) sgx.acceptedTcbStatus = st;
    p.sgx = sgx;
  }
  return p;
}

function fromHexSafe(s: string): Uint8Array | undefined {
  try {
    return fromHex(s);
  } catch {
    return undefined;
  }
}

/** Parses a policy file's text: YAML (JSON is YAML too). */
export function parsePolicyText(text: string): Policy {
  if (text.length > 256 * 1024) fail("MALFORMED", "policy file is larger than 256 KiB", "policy");
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    fail("MALFORMED", `policy is not valid YAML/JSON: ${(err as Error).message}`, "policy");
  }
  return parsePolicy(doc);
}

function inList(value: Uint8Array, list: string[] | undefined, field: string, what: string): void {
  if (!list || list.length === 0) return;
  const hex = toHex(value);
  if (!list.includes(hex)) reject(field, `${what} ${hex} is not among the ${list.length} accepted value(s)`);
}

/** Throws POLICY_VIOLATION (field = the rule) unless the verified evidence satisfies the policy. */
export function applyPolicy(ev: VerifiedEvidence, policy: Policy): void {
  if (ev.tee === "insecure-dev") {
    if (policy.allowInsecureDev !== true)
      reject("allowInsecureDev", "insecure-dev evidence (no TEE) is not allowed by this policy");
  } else {
    const tees = policy.tee ?? ["snp", "tdx", "sgx"];
    if (!tees.includes(ev.tee))
      reject("tee", `TEE type ${ev.tee} is not accepted (accepted: ${tees.join(", ")})`);
    if (ev.debug && policy.allowDebug !== true)
      reject("allowDebug", `the ${ev.tee} guest is debuggable (its memory is readable by the host)`);
  }
  if (policy.reportData !== undefined && !equalBytes(ev.reportData, fromHex(policy.reportData))) {
    reject("reportData", `report data ${toHex(ev.reportData)} is not the expected ${policy.reportData}`);
  }
  if (ev.tee === "snp" && ev.snp) {
    const s = policy.snp ?? {};
    inList(ev.measurement, s.measurements, "snp.measurements", "measurement");
    inList(ev.snp.report.hostData, s.hostData, "snp.hostData", "host data");
    if (s.signers && !s.signers.includes(ev.snp.signer))
      reject("snp.signers", `signer ${ev.snp.signer} is not accepted`);
    if (s.minGuestSvn !== undefined && ev.snp.report.guestSvn < s.minGuestSvn) {
      reject("snp.minGuestSvn", `guest SVN ${ev.snp.report.guestSvn} is below ${s.minGuestSvn}`);
    }
    if (s.minTcb) {
      const tcb = decodeTcb(ev.snp.report.reportedTcb, ev.snp.product);
      for (const [k, min] of Object.entries(s.minTcb) as [keyof SnpTcb, number][]) {
        const got = tcb[k];
        if (got === undefined) reject(`snp.minTcb.${k}`, `${ev.snp.product} has no ${k} TCB component`);
        if (got < min) reject(`snp.minTcb.${k}`, `reported TCB ${k} SPL ${got} is below the minimum ${min}`);
      }
    }
  }
  if (ev.tee === "tdx" && ev.quote?.td) {
    const t = policy.tdx ?? {};
    const td = ev.quote.td;
    inList(td.mrTd, t.mrtd, "tdx.mrtd", "MRTD");
    td.rtmrs.forEach((r, i) => {
      inList(r, t[`rtmr${i}` as "rtmr0"], `tdx.rtmr${i}`, `RTMR${i}`);
    });
    inList(td.mrConfigId, t.mrConfigId, "tdx.mrConfigId", "MRCONFIGID");
    checkStatus(ev.tcbStatus, t.acceptedTcbStatus, "tdx.acceptedTcbStatus");
  }
  if (ev.tee === "sgx" && ev.quote?.enclave) {
    const s = policy.sgx ?? {};
    const e = ev.quote.enclave;
    inList(e.mrEnclave, s.mrenclave, "sgx.mrenclave", "MRENCLAVE");
    inList(e.mrSigner, s.mrsigner, "sgx.mrsigner", "MRSIGNER");
    if (s.minIsvSvn !== undefined && e.isvSvn < s.minIsvSvn)
      reject("sgx.minIsvSvn", `ISVSVN ${e.isvSvn} is below ${s.minIsvSvn}`);
    checkStatus(ev.tcbStatus, s.acceptedTcbStatus, "sgx.acceptedTcbStatus");
  }
}

function checkStatus(status: TcbStatus, accepted: TcbStatus[] | undefined, field: string): void {
  const list = accepted ?? DEFAULT_ACCEPTED_TCB_STATUS;
  if (!list.includes(status)) {
    const hint = status === "Unknown" ? " (no collateral was given)" : "";
    reject(field, `TCB status ${status}${hint} is not accepted (accepted: ${list.join(", ")})`);
  }
}
