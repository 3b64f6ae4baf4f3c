// Test-only, shared by the oci, cli and ipfs tests: scratch directories, real busybox images built with buildah
// (no registry) and pushed as OCI layouts, and key pairs made with openssl as a user would.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);

export async function tempDir(prefix = "tpod-oci-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function uniqueName(prefix = "tpod-oci-test"): string {
  return `localhost/${prefix}-${randomBytes(5).toString("hex")}`;
}

/**
 * Builds a real busybox image with buildah (from scratch, no registry) and pushes it as an OCI layout.
 * `extraFiles` adds one more layer per entry (a file of the given size of random bytes) for multi-layer tests.
 */
export async function buildBusyboxLayout(
  dest: string,
  opts: { name?: string; extraLayers?: number[] } = {},
): Promise<string> {
  const name = opts.name ?? uniqueName();
  await buildImage(name, "scratch", async (ctr) => {
    await exec("buildah", ["copy", ctr, "/bin/busybox", "/bin/busybox"]);
    await exec("buildah", ["config", "--entrypoint", '["/bin/busybox"]', "--cmd", "sh", ctr]);
  });
  // Each commit of a fresh container on top of the previous image adds exactly one layer.
  for (const [i, size] of (opts.extraLayers ?? []).entries()) {
    const { dir, cleanup } = await tempDir();
    try {
      const file = join(dir, `data${i}`);
      await exec("sh", ["-c", `head -c ${size} /dev/urandom > ${file}`]);
      await buildImage(name, name, (ctr) => exec("buildah", ["copy", ctr, file, `/data${i}`]));
    } finally {
      await cleanup();
    }
  }
  await exec("buildah", ["push", "-q", name, `oci:${dest}:${name}`]);
  return name;
}

async function buildImage(
  name: string,
  from: string,
  fill: (ctr: string) => Promise<unknown>,
): Promise<void> {
  const { stdout } = await exec("buildah", ["from", "--pull-never", from]);
  const ctr = stdout.trim();
  try {
    await fill(ctr);
    await exec("buildah", ["commit", "-q", ctr, name]);
  } finally {
    await exec("buildah", ["rm", ctr]).catch(() => {});
  }
}

export async function removeImage(name: string): Promise<void> {
  await exec("buildah", ["rmi", "-f", name]).catch(() => {});
}

export interface KeyPairFiles {
  pub: string;
  priv: string;
}

/** Generates a key pair with openssl (PKCS#8 private key, SPKI public key), as a user would. */
export async function opensslKeyPair(
  dir: string,
  name: string,
  kind: "rsa" | "p256" | "p384",
): Promise<KeyPairFiles> {
  const priv = join(dir, `${name}.pem`);
  const pub = join(dir, `${name}.pub.pem`);
  const args =
    kind === "rsa"
      ? ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", priv]
      : [
          "genpkey",
          "-algorithm",
          "EC",
          "-pkeyopt",
          `ec_paramgen_curve:${kind === "p256" ? "P-256" : "P-384"}`,
          "-out",
          priv,
        ];
  await exec("openssl", args);
  await exec("openssl", ["pkey", "-in", priv, "-pubout", "-out", pub]);
  return { pub, priv };
}
