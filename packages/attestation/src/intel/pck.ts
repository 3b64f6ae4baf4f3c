// The SGX extension of PCK certificates (Intel "SGX PCK Certificate and CRL Profile", OID 1.2.840.113741.1.13.1).
import { decodeOid, derChildren, derUint, toHex } from "../bytes.js";
import { fail } from "../errors.js";
import type { X509 } from "../x509.js";

const SGX_EXT = "1.2.840.113741.1.13.1";

export interface PckExtensions {
  ppid: string;
  /** SGX TCB component SVNs 1..16 as the PCK certificate states them. */
  tcbComponents: number[];
  pceSvn: number;
  cpuSvn: Uint8Array;
  pceId: string;
  fmspc: string;
  sgxType: number;
}

export function parsePckExtensions(pck: X509): PckExtensions {
  const ext = pck.extension(SGX_EXT);
  if (!ext) fail("CERT_MISMATCH", "PCK certificate has no SGX extension", "pck.sgxExtensions");
  try {
    const seq = derChildren(ext)[0];
    if (seq?.tag !== 0x30) throw new Error("not a SEQUENCE");
    const fields = new Map<string, { tag: number; value: Uint8Array }>();
    for (const item of derChildren(seq.value)) {
      const [oid, value] = derChildren(item.value);
      if (oid?.tag === 0x06 && value) fields.set(decodeOid(oid.value), value);
    }
    const get = (n: number) => {
      const v = fields.get(`${SGX_EXT}.${n}`);
      if (!v) throw new Error(`missing field ${n}`);
      return v;
    };
    const tcb = new Map<string, Uint8Array>();
    for (const item of derChildren(get(2).value)) {
      const [oid, value] = derChildren(item.value);
      if (oid?.tag === 0x06 && value) tcb.set(decodeOid(oid.value), value.value);
    }
    const tcbField = (n: number) => {
      const v = tcb.get(`${SGX_EXT}.2.${n}`);
      if (!v) throw new Error(`missing TCB field ${n}`);
      return v;
    };
    return {
      ppid: toHex(get(1).value),
      tcbComponents: Array.from({ length: 16 }, (_, i) => derUint(tcbField(i + 1))),
      pceSvn: derUint(tcbField(17)),
      cpuSvn: tcbField(18),
      pceId: toHex(get(3).value),
      fmspc: toHex(get(4).value),
      sgxType: derUint(get(5).value),
    };
  } catch (err) {
    return fail(
      "CERT_MISMATCH",
      `PCK certificate SGX extension is malformed: ${(err as Error).message}`,
      "pck.sgxExtensions",
    );
  }
}
