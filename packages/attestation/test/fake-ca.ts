// Builds a complete but untrusted certificate chain with openssl (apt package), to prove that a chain that
// verifies internally is still rejected when it does not end at a pinned root.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pemBlocks } from "../src/index.js";

export interface FakeChain {
  /** DER: leaf, intermediate, root. */
  certs: Uint8Array[];
  /** PKCS#8 DER of the leaf key. */
  leafKey: Uint8Array<ArrayBuffer>;
  pem: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

/**
 * A root (RSA-PSS for AMD's shape, EC for Intel's), an intermediate and an EC leaf with the given names and
 * optional leaf extensions (openssl config lines).
 */
export function makeFakeChain(opts: {
  rootCn: string;
  intermediateCn: string;
  leafCn: string;
  curve: "secp384r1" | "prime256v1";
  rsaPss: boolean;
  leafExtensions?: string[];
}): FakeChain {
  const dir = mkdtempSync(join(tmpdir(), "tpod-fake-ca-"));
  try {
    const subj = (cn: string) => `/O=Fake Test CA/CN=${cn}`;
    const caKey = (name: string) =>
      opts.rsaPss
        ? openssl(dir, ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", name])
        : openssl(dir, [
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            `ec_paramgen_curve:${opts.curve}`,
            "-out",
            name,
          ]);
    const sigopts = opts.rsaPss
      ? [
          "-sigopt",
          "rsa_padding_mode:pss",
          "-sigopt",
          "rsa_pss_saltlen:48",
          "-sigopt",
          "rsa_mgf1_md:sha384",
          "-sha384",
        ]
      : ["-sha256"];
    caKey("root.key");
    caKey("int.key");
    openssl(dir, [
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      `ec_paramgen_curve:${opts.curve}`,
      "-out",
      "leaf.key",
    ]);
    writeFileSync(join(dir, "ca.ext"), "basicConstraints=critical,CA:true\nkeyUsage=keyCertSign,cRLSign\n");
    writeFileSync(
      join(dir, "leaf.ext"),
      ["basicConstraints=CA:false", ...(opts.leafExtensions ?? [])].join("\n") + "\n",
    );
    openssl(dir, [
      "req",
      "-new",
      "-x509",
      "-key",
      "root.key",
      "-subj",
      subj(opts.rootCn),
      "-days",
      "3650",
      "-out",
      "root.pem",
      ...sigopts,
    ]);
    openssl(dir, ["req", "-new", "-key", "int.key", "-subj", subj(opts.intermediateCn), "-out", "int.csr"]);
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      "int.csr",
      "-CA",
      "root.pem",
      "-CAkey",
      "root.key",
      "-CAcreateserial",
      "-days",
      "3650",
      "-extfile",
      "ca.ext",
      "-out",
      "int.pem",
      ...sigopts,
    ]);
    openssl(dir, ["req", "-new", "-key", "leaf.key", "-subj", subj(opts.leafCn), "-out", "leaf.csr"]);
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "int.pem",
      "-CAkey",
      "int.key",
      "-CAcreateserial",
      "-days",
      "3650",
      "-extfile",
      "leaf.ext",
      "-out",
      "leaf.pem",
      ...sigopts,
    ]);
    openssl(dir, ["pkcs8", "-topk8", "-nocrypt", "-in", "leaf.key", "-outform", "DER", "-out", "leaf.p8"]);
    const pem = ["leaf.pem", "int.pem", "root.pem"].map((f) => readFileSync(join(dir, f), "utf8")).join("");
    return { certs: pemBlocks(pem), leafKey: new Uint8Array(readFileSync(join(dir, "leaf.p8"))), pem };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
