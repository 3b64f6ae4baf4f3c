/**
 * The SEV-SNP firmware the image is launched with: the OvmfPkg/AmdSev build that
 * firmware/build-amdsev-ovmf.sh makes from Debian's edk2 source package, and the lock file next to it that pins
 * its inputs (source tarballs, toolchain) and the firmware they give (its SHA-256 and SNP page digest).
 * Measurements name the firmware by SHA-256; this says whether that SHA-256 is the locked, reproducible build.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { ImageError } from "./errors.js";

/** Next to the build script (src/ and dist/ are both one level below the package). */
export const FIRMWARE_LOCK = path.resolve(import.meta.dirname, "../firmware/amdsev-ovmf.lock");
export const FIRMWARE_BUILD_SCRIPT = path.resolve(import.meta.dirname, "../firmware/build-amdsev-ovmf.sh");

export interface FirmwareLock {
  /** The Debian suite and version of the edk2 source package. */
  suite: string;
  version: string;
  /** File name -> SHA-256 of the source tarballs. */
  sources: Record<string, string>;
  /** Debian package -> version of the toolchain the firmware was built with. */
  toolchain: Record<string, string>;
  /** SHA-256 of OVMF.amdsev.fd; undefined until a build has been recorded. */
  firmwareSha256?: string;
  /** The SNP launch digest over the firmware's pages (what `--ovmf-hash` takes). */
  ovmfHash?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX96 = /^[0-9a-f]{96}$/;

/** Lines `key value...`; `#` starts a comment. Unknown keys and malformed values are refused with file:line. */
export function parseFirmwareLock(text: string, file = FIRMWARE_LOCK): FirmwareLock {
  const lock: Partial<FirmwareLock> & Pick<FirmwareLock, "sources" | "toolchain"> = {
    sources: {},
    toolchain: {},
  };
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) return;
    const bad = (why: string) => {
      throw new ImageError("FIRMWARE_LOCK_MALFORMED", `${file}:${i + 1}: ${why}: ${raw.trim()}`);
    };
    const [key, a, b, ...rest] = line.split(/\s+/);
    if (rest.length > 0) bad("too many fields");
    switch (key) {
      case "suite":
      case "version":
        if (!a || b !== undefined) bad(`${key} takes one value`);
        lock[key] = a;
        break;
      case "source-sha256":
        if (!a || !HEX64.test(a) || !b) bad("source-sha256 takes a SHA-256 and a file name");
        lock.sources[b as string] = a as string;
        break;
      case "toolchain":
        if (!a || !b) bad("toolchain takes a package and a version");
        lock.toolchain[a as string] = b as string;
        break;
      case "firmware-sha256":
        if (a !== "unknown" && !(a && HEX64.test(a))) bad("firmware-sha256 takes a SHA-256 (or unknown)");
        if (a !== "unknown") lock.firmwareSha256 = a;
        break;
      case "firmware-ovmf-hash":
        if (a !== "unknown" && !(a && HEX96.test(a)))
          bad("firmware-ovmf-hash takes 48 bytes of hex (or unknown)");
        if (a !== "unknown") lock.ovmfHash = a;
        break;
      default:
        bad(`unknown key ${key}`);
    }
  });
  if (!lock.suite || !lock.version)
    throw new ImageError("FIRMWARE_LOCK_MALFORMED", `${file}: suite and version are required`);
  return lock as FirmwareLock;
}

export function readFirmwareLock(file = FIRMWARE_LOCK): FirmwareLock {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ImageError("FIRMWARE_LOCK_MALFORMED", `${file} cannot be read: ${(err as Error).message}`);
  }
  return parseFirmwareLock(text, file);
}

/** What a firmware SHA-256 is known to be: the locked reproducible build, or something the provider chose. */
export interface FirmwareProvenance {
  /** The SHA-256 equals the lock's firmware-sha256. */
  locked: boolean;
  /** "edk2 2025.02-8+deb13u1 (Debian trixie), OvmfPkg/AmdSev" when locked. */
  build?: string;
}

export function firmwareProvenance(
  sha256: string,
  lock: FirmwareLock = readFirmwareLock(),
): FirmwareProvenance {
  if (lock.firmwareSha256 === undefined || lock.firmwareSha256 !== sha256) return { locked: false };
  return { locked: true, build: `edk2 ${lock.version} (Debian ${lock.suite}), OvmfPkg/AmdSev` };
}
