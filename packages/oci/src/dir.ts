import {
  addRecipients,
  type CryptoOptions,
  decryptImage,
  encryptImage,
  removeRecipients,
} from "./crypto/image.js";
import type { PrivateKey, RecipientKey } from "./crypto/keys.js";
import { type OciLayoutSource, type OciLayoutWriter, openOciLayout, withLayoutWriter } from "./layout.js";
import { REF_NAME_ANNOTATION } from "./types.js";

/** Options for the directory-to-directory operations the CLI runs. */
export interface LayoutOpOptions extends CryptoOptions {
  /** Picks the image in a source layout listing several. */
  ref?: string;
  /** Name recorded in the destination's index.json (default: the source's). */
  refName?: string;
}

export interface LayoutOpResult {
  dir: string;
  root: import("./types.js").Descriptor;
}

async function run(
  srcDir: string,
  dstDir: string,
  opts: LayoutOpOptions,
  op: (src: OciLayoutSource, writer: OciLayoutWriter) => Promise<import("./types.js").Descriptor>,
): Promise<LayoutOpResult> {
  const src = await openOciLayout(srcDir, opts.ref !== undefined ? { ref: opts.ref } : {});
  return withLayoutWriter(dstDir, async (writer) => {
    const root = await op(src, writer);
    const { [REF_NAME_ANNOTATION]: srcRef, ...rest } = root.annotations ?? {};
    const clean = { ...root, annotations: rest };
    if (Object.keys(rest).length === 0) delete (clean as { annotations?: unknown }).annotations;
    await writer.finish(clean, opts.refName ?? srcRef);
    return { dir: dstDir, root: clean };
  });
}

/** Encrypts the image in layout `srcDir` into a new layout `dstDir`; on any error `dstDir` is not created. */
export function encryptLayout(
  srcDir: string,
  dstDir: string,
  recipients: RecipientKey[],
  opts: LayoutOpOptions = {},
): Promise<LayoutOpResult> {
  return run(srcDir, dstDir, opts, (src, w) => encryptImage(src, w, recipients, opts));
}

export function decryptLayout(
  srcDir: string,
  dstDir: string,
  keys: PrivateKey[],
  opts: LayoutOpOptions = {},
): Promise<LayoutOpResult> {
  return run(srcDir, dstDir, opts, (src, w) => decryptImage(src, w, keys, opts));
}

export function addRecipientsLayout(
  srcDir: string,
  dstDir: string,
  keys: PrivateKey[],
  recipients: RecipientKey[],
  opts: LayoutOpOptions = {},
): Promise<LayoutOpResult> {
  return run(srcDir, dstDir, opts, (src, w) => addRecipients(src, w, keys, recipients, opts));
}

export function removeRecipientsLayout(
  srcDir: string,
  dstDir: string,
  recipients: Pick<RecipientKey, "kid">[],
  opts: LayoutOpOptions = {},
): Promise<LayoutOpResult> {
  return run(srcDir, dstDir, opts, (src, w) => removeRecipients(src, w, recipients, opts));
}
