// The `tpod deploy` options and their parsing, shared by the command definition and its action.
import type { BulkMode } from "@trustedpods/ipfs";
import { CliError, ExitCode } from "../errors.js";
import type { KeyFlags, NetworkFlags } from "./network.js";

export interface SessionFlags extends NetworkFlags, KeyFlags {
  policy?: string;
  json?: boolean;
}

export interface DeployOpts extends SessionFlags {
  provider?: string;
  funds?: string;
  notice?: string;
  ipfsPeer?: string[];
  imageTransfer?: string;
}

/** The upload node's flags, shared by deploy and update. */
export interface UploadFlags {
  ipfsPeer?: string[];
  imageTransfer?: string;
}

/**
 * `--image-transfer` → the bulk channel modes the upload node serves. "plain" gives up the layers' confidentiality
 * on the wire (their digests still guard integrity; see docs/ipfs.md), so a publisher may keep to "tls" or "none".
 */
export function parseImageTransfer(text: string | undefined): BulkMode[] | undefined {
  if (text === undefined) return undefined;
  const words = text.split(",").map((w) => w.trim());
  if (words.length === 1 && words[0] === "none") return [];
  const modes: BulkMode[] = [];
  for (const w of words) {
    if (w !== "plain" && w !== "tls")
      throw new CliError(
        `--image-transfer takes plain, tls, plain,tls or none, got "${text}"`,
        ExitCode.usage,
      );
    if (!modes.includes(w)) modes.push(w);
  }
  return modes;
}
