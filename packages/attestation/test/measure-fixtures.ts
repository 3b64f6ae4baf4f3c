// Locates the SEV launch-measurement reference data: the shared testdata (../shared/testdata/measure/snp
// relative to the repository root; TPOD_SHARED_TESTDATA overrides the testdata directory, e.g. from a git
// worktree whose parent has no shared/) and Debian's ovmf package. Nothing here is copied into the repo.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../../..");
const SHARED = process.env.TPOD_SHARED_TESTDATA ?? resolve(ROOT, "../shared/testdata");
export const SNP_TESTDATA = resolve(SHARED, "measure/snp");
export const HAVE_SNP_TESTDATA = existsSync(resolve(SNP_TESTDATA, "README.md"));
if (!HAVE_SNP_TESTDATA) console.warn(`SKIP: SEV measurement vectors not found at ${SNP_TESTDATA}`);

export const read = (path: string) => new Uint8Array(readFileSync(path));
export const sha256Hex = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

export const fixture = (name: string) => read(resolve(SNP_TESTDATA, name));

/** An optional file (Debian's firmware), with the SHA-256 the recorded digests were computed from. */
export function optionalFile(path: string, sha256: string): { data?: Uint8Array; skip?: string } {
  if (!existsSync(path)) return { skip: `${path} absent (apt-get install ovmf)` };
  const data = read(path);
  const actual = sha256Hex(data);
  if (actual !== sha256)
    return { skip: `${path} is another build (sha256 ${actual}, digests recorded for ${sha256})` };
  return { data };
}
