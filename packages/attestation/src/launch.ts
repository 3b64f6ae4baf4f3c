// The launch measurement a release registry lists: what identifies the software a TEE guest booted, per TEE.
import { concat } from "./bytes.js";
import { fail } from "./errors.js";
import { INSECURE_DEV_MAGIC } from "./insecure.js";
import type { TeeKind, VerifiedEvidence } from "./types.js";

export interface LaunchMeasurement {
  tee: TeeKind;
  /**
   * SEV-SNP: MEASUREMENT (48 bytes: firmware, and with a measured direct boot kernel, initrd and command line).
   * TDX: MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 (192 bytes: firmware, its configuration, kernel, command line and initrd;
   * RTMR3 is left to the running system). SGX: MRENCLAVE (32). insecure-dev: its 32-byte label, which says
   * nothing about the software and is accepted on a devnet only.
   */
  value: Uint8Array;
}

/** The launch measurement of verified evidence, as a release lists it. */
export function launchMeasurement(ev: VerifiedEvidence): LaunchMeasurement {
  switch (ev.tee) {
    case "snp":
      return { tee: "snp", value: ev.measurement };
    case "tdx": {
      const td = ev.quote?.td;
      if (!td) return fail("MALFORMED", "TDX evidence without a TD report", "evidence");
      return { tee: "tdx", value: concat(td.mrTd, td.rtmrs[0]!, td.rtmrs[1]!, td.rtmrs[2]!) };
    }
    case "sgx":
      return { tee: "sgx", value: ev.measurement };
    case "insecure-dev":
      return { tee: "insecure-dev", value: INSECURE_DEV_MAGIC };
  }
}
