// Two builds of the same commit give the same image: every file's SHA-256, the dm-verity root hash and the
// image digest. Each build runs mmdebstrap, mksquashfs and veritysetup (as root; about 8 to 9 minutes each
// on the 2-core machine), so the test runs only with TPOD_IMAGE_TESTS=1. The second build is pinned by the
// lock file the repository carries, so this also checks the lock path.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildImage, readManifest } from "../src/index.js";

const ENABLED = process.env.TPOD_IMAGE_TESTS === "1";
const repoRoot = path.resolve(import.meta.dirname, "../../..");
const built = existsSync(path.join(repoRoot, "packages/cli/dist/main.js"));
if (!ENABLED) console.warn("SKIP: image builds take minutes; set TPOD_IMAGE_TESTS=1 to run them");

describe.skipIf(!ENABLED || !built || process.getuid?.() !== 0)("provider image build", () => {
  let dir: string;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "is reproducible: two builds of one commit have the same digests",
    async () => {
      dir = await mkdtemp(path.join(tmpdir(), "tpod-image-repro-"));
      const progress = (m: string) => console.log(`[build] ${m}`);
      const a = await buildImage({ repoRoot, outDir: path.join(dir, "a"), progress });
      const b = await buildImage({ repoRoot, outDir: path.join(dir, "b"), progress });
      console.log(`builds took ${a.seconds} s and ${b.seconds} s; digest ${a.manifest.digest}`);
      expect(b.manifest.files).toEqual(a.manifest.files);
      expect(b.manifest.rootHash).toBe(a.manifest.rootHash);
      expect(b.manifest.cmdline).toBe(a.manifest.cmdline);
      expect(b.manifest.digest).toBe(a.manifest.digest);
      expect((await readManifest(path.join(dir, "b"))).digest).toBe(a.manifest.digest);
      expect(a.manifest.cmdline).toMatch(/tpod\.roothash=[0-9a-f]{64} tpod\.datablocks=\d+$/);
    },
    60 * 60_000,
  );
});
