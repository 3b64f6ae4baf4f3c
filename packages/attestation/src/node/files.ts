// Loading evidence, certificates, collateral and policies from disk (Node only), with size bounds.
import { readFile, stat } from "node:fs/promises";
import { certificatesFromBytes } from "../bytes.js";
import { fail } from "../errors.js";
import { type Policy, parsePolicyText } from "../policy.js";

export async function readBounded(path: string, maxBytes: number, what: string): Promise<Uint8Array> {
  const st = await stat(path).catch(() => fail("MALFORMED", `${what} ${path} cannot be read`, what));
  if (!st.isFile()) fail("MALFORMED", `${what} ${path} is not a file`, what);
  if (st.size > maxBytes) fail("MALFORMED", `${what} ${path} is larger than ${maxBytes} bytes`, what);
  return new Uint8Array(await readFile(path));
}

/** DER or PEM certificate files, one or several certificates each, in the order given. */
export async function loadCertificates(paths: string[]): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const p of paths)
    out.push(...certificatesFromBytes(await readBounded(p, 256 * 1024, "certificate file")));
  return out;
}

export async function loadPolicy(path: string): Promise<Policy> {
  return parsePolicyText(new TextDecoder().decode(await readBounded(path, 256 * 1024, "policy file")));
}

export async function loadCollateral(path: string): Promise<string> {
  return new TextDecoder().decode(await readBounded(path, 1024 * 1024, "collateral file"));
}
