// The Linux configfs-tsm attester (Documentation/ABI/testing/configfs-tsm): one interface for SEV-SNP
// (provider "sev_guest") and TDX (provider "tdx_guest") guests. Create a report directory, write the 64-byte
// inblob, read outblob (and auxblob: the SNP certificate table), and make sure no other writer changed the
// request in between by checking the generation counter.
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { toHex } from "../bytes.js";
import { AttestationError, fail } from "../errors.js";
import type { Attester, EvidenceEnvelope } from "../evidence.js";
import type { TeeKind } from "../types.js";

export const TSM_REPORT_ROOT = "/sys/kernel/config/tsm/report";

/** The file operations the attester needs; injectable so a fake kernel can stand in where there is no TEE. */
export interface TsmFs {
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
}

export const nodeTsmFs: TsmFs = {
  mkdir: async (p) => {
    await mkdir(p);
  },
  rmdir: (p) => rmdir(p),
  readFile: async (p) => new Uint8Array(await readFile(p)),
  writeFile: (p, d) => writeFile(p, d),
};

export interface ConfigfsTsmOptions {
  root?: string;
  fs?: TsmFs;
  /** SEV-SNP: certificates (DER, VCEK first) to attach when the host provides no auxblob certificate table. */
  certificates?: Uint8Array[];
  /** TDX: DCAP collateral JSON to attach, if the provider fetched it. */
  collateralJson?: string;
  /** SEV-SNP VMPL to request (privlevel); default: leave the kernel's. */
  privlevel?: number;
  /** Retries when another writer raced us (generation changed). */
  retries?: number;
}

const PROVIDERS: Record<string, TeeKind> = { sev_guest: "snp", tdx_guest: "tdx" };

// GUIDs of the SEV-SNP certificate table (GHCB spec, "SNP Extended Guest Request").
const SNP_CERT_GUIDS: Record<string, string> = {
  "63da758d-e664-4564-adc5-f4b93be8accd": "vcek",
  "a8074bc2-a25a-483e-aae6-39c045a0b8a1": "vlek",
  "4ab7b379-bbac-4fe4-a02f-05aef327c782": "ask",
  "c0b406a4-a803-4952-9743-3fb6014cd0ae": "ark",
};

function guidString(b: Uint8Array): string {
  // Mixed-endian GUID layout: the first three groups are little-endian.
  const h = (i: number, n: number, le: boolean) => {
    const part = Array.from(b.subarray(i, i + n));
    return toHex(Uint8Array.from(le ? part.reverse() : part));
  };
  return `${h(0, 4, true)}-${h(4, 2, true)}-${h(6, 2, true)}-${h(8, 2, false)}-${h(10, 6, false)}`;
}

/** Parses the SEV-SNP certificate table from auxblob into DER certificates, VCEK/VLEK first. */
export function parseSnpCertTable(aux: Uint8Array): Uint8Array[] {
  const view = new DataView(aux.buffer, aux.byteOffset, aux.byteLength);
  const found: { kind: string; der: Uint8Array }[] = [];
  for (let off = 0; off + 24 <= aux.length; off += 24) {
    const guid = aux.subarray(off, off + 16);
    if (guid.every((x) => x === 0)) break;
    const start = view.getUint32(off + 16, true);
    const len = view.getUint32(off + 20, true);
    if (start + len > aux.length)
      fail("MALFORMED", "SEV-SNP certificate table entry points outside auxblob", "auxblob");
    const kind = SNP_CERT_GUIDS[guidString(guid)];
    if (kind) found.push({ kind, der: aux.slice(start, start + len) });
  }
  const order = ["vcek", "vlek", "ask", "ark"];
  return found.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind)).map((c) => c.der);
}

export class GenerationRaceError extends AttestationError {
  constructor(message: string) {
    super("UNSUPPORTED", message, "generation");
  }
}

function parseGeneration(bytes: Uint8Array): number {
  const n = Number.parseInt(new TextDecoder().decode(bytes).trim(), 10);
  if (!Number.isSafeInteger(n)) fail("MALFORMED", "configfs-tsm generation is not a number", "generation");
  return n;
}

export function configfsTsmAttester(opts: ConfigfsTsmOptions = {}): Attester {
  const root = opts.root ?? TSM_REPORT_ROOT;
  const fs = opts.fs ?? nodeTsmFs;
  const retries = opts.retries ?? 3;

  async function once(reportData: Uint8Array): Promise<EvidenceEnvelope> {
    const name = `tpod-${toHex(globalThis.crypto.getRandomValues(new Uint8Array(8)))}`;
    const dir = join(root, name);
    await fs.mkdir(dir).catch((err: Error) => {
      // The errno (ENXIO: no TEE driver registered) stays on `cause` for teeGuestAttester's diagnosis.
      throw Object.assign(
        new AttestationError(
          "UNSUPPORTED",
          `configfs-tsm is not available at ${root} (no SEV-SNP/TDX guest, or configfs not mounted): ${err.message}`,
          "configfs-tsm",
        ),
        { cause: err },
      );
    });
    try {
      const provider = new TextDecoder().decode(await fs.readFile(join(dir, "provider"))).trim();
      const tee = PROVIDERS[provider];
      if (!tee) fail("UNSUPPORTED", `configfs-tsm provider ${provider} is not supported`, "provider");
      if (opts.privlevel !== undefined)
        await fs.writeFile(join(dir, "privlevel"), new TextEncoder().encode(String(opts.privlevel)));
      const before = parseGeneration(await fs.readFile(join(dir, "generation")));
      await fs.writeFile(join(dir, "inblob"), reportData);
      const raw = await fs.readFile(join(dir, "outblob"));
      const after = parseGeneration(await fs.readFile(join(dir, "generation")));
      // Our inblob write is exactly one generation; anything else means another writer changed the request.
      if (after !== before + 1)
        throw new GenerationRaceError(
          `configfs-tsm generation went ${before} → ${after}: another writer raced this report`,
        );
      let certificates = opts.certificates ?? [];
      if (tee === "snp") {
        const aux = await fs.readFile(join(dir, "auxblob")).catch(() => new Uint8Array(0));
        if (aux.length > 0) certificates = parseSnpCertTable(aux);
      }
      return {
        tee,
        raw,
        certificates,
        ...(opts.collateralJson ? { collateralJson: opts.collateralJson } : {}),
        provider: `configfs-tsm:${provider}`,
      };
    } finally {
      await fs.rmdir(dir).catch(() => {});
    }
  }

  return {
    kind: "configfs-tsm",
    async attest(reportData) {
      if (reportData.length !== 64) fail("MALFORMED", "report data must be 64 bytes", "reportData");
      for (let attempt = 0; ; attempt++) {
        try {
          return await once(reportData);
        } catch (err) {
          if (!(err instanceof GenerationRaceError) || attempt >= retries) throw err;
        }
      }
    },
  };
}
