// Test-only, shared by packages/provider-image and packages/cli tests (imported by relative path).
// A synthetic image directory (small random kernel and initrd, a real manifest) for the fast tests, and the
// shared SEV-SNP OVMF fixtures (the last 4 KiB of edk2-stable202405 AmdSev and OvmfX64 builds; see
// packages/attestation/test/measure-fixtures.ts), found at ../shared/testdata or TPOD_SHARED_TESTDATA.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { type ImageManifest, imageDigest, MANIFEST_FILE } from "@trustedpods/provider-image";

const ROOT = path.resolve(import.meta.dirname, "..");
const SHARED = process.env.TPOD_SHARED_TESTDATA ?? path.resolve(ROOT, "../shared/testdata");
const SNP = path.resolve(SHARED, "measure/snp");
export const HAVE_SNP_TESTDATA = existsSync(path.resolve(SNP, "README.md"));
if (!HAVE_SNP_TESTDATA) console.warn(`SKIP: SEV measurement fixtures not found at ${SNP}`);
export const snpFixture = (name: string) => new Uint8Array(readFileSync(path.resolve(SNP, name)));
/** SNP digest over the pages of the full AmdSev build the suffix fixture ends (sev-snp-measure's vector). */
export const AMDSEV_OVMF_HASH =
  "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

/** Writes vmlinuz, initrd.img, root.img, packages.lock, cmdline and manifest.json as the builder would. */
export async function syntheticImage(
  dir: string,
  rootHash = randomBytes(32).toString("hex"),
): Promise<ImageManifest> {
  await mkdir(dir, { recursive: true });
  const files: Record<string, Uint8Array | string> = {
    vmlinuz: randomBytes(64 * 1024),
    "initrd.img": randomBytes(16 * 1024),
    "root.img": randomBytes(8 * 4096),
    "packages.lock": "top podman 4.3.1+ds1-8+deb12u1+b3\n",
  };
  for (const [name, data] of Object.entries(files)) await writeFile(path.join(dir, name), data);
  const cmdline = `console=ttyS0 panic=-1 tpod.roothash=${rootHash} tpod.datablocks=6`;
  await writeFile(path.join(dir, "cmdline"), `${cmdline}\n`);
  const digests = Object.fromEntries(
    Object.entries(files).map(([n, d]) => [
      n,
      { sha256: sha256(d), size: typeof d === "string" ? d.length : d.length },
    ]),
  );
  const partial = {
    format: 1 as const,
    name: "tpod-provider" as const,
    commit: "0".repeat(40),
    dirty: false,
    sourceDateEpoch: 1_700_000_000,
    cmdline,
    rootHash,
    dataBlocks: 6,
    kernel: "6.1.0-test",
    node: "22.0.0",
    files: digests,
  };
  const manifest: ImageManifest = { ...partial, digest: imageDigest(partial) };
  await writeFile(path.join(dir, MANIFEST_FILE), JSON.stringify(manifest));
  return manifest;
}
