/**
 * File-system helpers for Node: reading manifests, pricing files and Compose files from disk.
 * Kept out of the main entry point so the rest of the package runs in browsers (the web app, the
 * attestation bundle).
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ManifestError } from "./diagnostics.js";
import { parseManifest } from "./manifest.js";
import type { Pod } from "./pod.js";
import { type PricingFile, parsePricing } from "./pricing.js";
import { MAX_YAML_BYTES } from "./yaml-reader.js";

/** Reads a YAML file within the size bound, turning I/O failures into a located ManifestError. */
export function readYamlFile(path: string): string {
  try {
    if (statSync(path).size > MAX_YAML_BYTES) {
      throw new ManifestError([
        {
          file: path,
          line: 1,
          col: 1,
          code: "TOO_LARGE",
          severity: "error",
          message: `file is larger than ${MAX_YAML_BYTES} bytes`,
        },
      ]);
    }
    return readFileSync(path, "utf8");
  } catch (err) {
    if (err instanceof ManifestError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : (err as Error).message;
    throw new ManifestError([
      { file: path, line: 1, col: 1, code: "FILE_NOT_FOUND", severity: "error", message },
    ]);
  }
}

/** Reads a manifest file; secret file paths are checked relative to the manifest's directory. */
export function loadManifest(path: string): Pod {
  const text = readYamlFile(path);
  const base = dirname(path);
  return parseManifest(text, path, {
    fileExists: (p) => {
      try {
        return statSync(resolve(base, p)).isFile();
      } catch {
        return false;
      }
    },
  });
}

/** Reads a pricing file from disk; every problem, including a missing file, is a located ManifestError. */
export function loadPricing(path: string): PricingFile {
  return parsePricing(readYamlFile(path), path);
}
