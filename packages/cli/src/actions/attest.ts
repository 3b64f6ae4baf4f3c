import {
  AttestationError,
  applyPolicy,
  type Policy,
  summarize,
  type TeeKind,
  verifyEvidence,
} from "@trustedpods/attestation";
import { loadCertificates, loadCollateral, loadPolicy, readBounded } from "@trustedpods/attestation/node";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { AttestVerifyOpts } from "../options/attest.js";
import { printJson } from "../output.js";

const TYPES = ["snp", "tdx", "sgx"] as const;

function parseNow(s: string | undefined): Date {
  if (s === undefined) return new Date();
  // ISO 8601 date or date-time; Date.parse alone accepts too much.
  if (
    !/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(s) ||
    Number.isNaN(Date.parse(s))
  ) {
    throw new CliError(`--now must be an ISO 8601 date or date-time, got ${s}`, ExitCode.usage);
  }
  return new Date(s);
}

/** `tpod attest verify FILE` */
export async function attestVerify(
  { io, setExitCode }: CommandContext,
  file: string,
  opts: AttestVerifyOpts,
): Promise<void> {
  if (!(TYPES as readonly string[]).includes(opts.type)) {
    throw new CliError(`--type must be one of ${TYPES.join(", ")}, got ${opts.type}`, ExitCode.usage);
  }
  if (opts.type !== "snp" && opts.cert.length > 0) {
    throw new CliError(
      "--cert applies to --type snp only (TDX and SGX quotes carry their PCK chain)",
      ExitCode.usage,
    );
  }
  if (opts.type === "snp" && opts.collateral) {
    throw new CliError("--collateral applies to --type tdx and sgx only", ExitCode.usage);
  }
  const now = parseNow(opts.now);
  try {
    const raw = await readBounded(file, 64 * 1024, "evidence file");
    const certificates = await loadCertificates(opts.cert);
    const collateralJson = opts.collateral ? await loadCollateral(opts.collateral) : undefined;
    const policy: Policy | undefined = opts.policy ? await loadPolicy(opts.policy) : undefined;
    const ev = await verifyEvidence(
      { tee: opts.type as TeeKind, raw, certificates, ...(collateralJson ? { collateralJson } : {}) },
      { now },
    );
    if (policy) applyPolicy(ev, policy);
    if (policy?.releases === "required")
      io.err(
        "note: the policy's `releases: required` is not checked here (no chain): `tpod verify PROVIDER` checks it against the network's release registry",
      );
    const summary = summarize(ev);
    if (opts.json) printJson(io, { ...summary, policy: opts.policy ? "accepted" : "none" });
    else {
      io.out(`valid ${ev.tee} v${ev.version} measurement ${summary.measurement}`);
      io.out(`reportData ${summary.reportData}`);
      io.out(
        `tcbStatus ${ev.tcbStatus}${ev.advisoryIds.length ? ` advisories ${ev.advisoryIds.join(",")}` : ""}`,
      );
      for (const w of ev.warnings) io.err(`warning: ${w}`);
    }
  } catch (err) {
    if (!(err instanceof AttestationError)) throw err;
    io.err(`rejected: ${err.code}${err.field ? ` (${err.field})` : ""}: ${err.message}`);
    if (opts.json)
      printJson(io, {
        valid: false,
        tee: opts.type,
        code: err.code,
        field: err.field ?? null,
        reason: err.message,
      });
    setExitCode(ExitCode.failure);
  }
}
