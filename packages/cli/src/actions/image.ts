import { stat } from "node:fs/promises";
import {
  addRecipientsLayout,
  type CryptoProgress,
  decryptLayout,
  encryptLayout,
  type ImageInfo,
  type ImageSource,
  inspectImage,
  type LayoutOpResult,
  OciError,
  openArchive,
  openOciLayout,
  readPrivateKeyFile,
  readPublicKeyFile,
  removeRecipientsLayout,
  type WalkedNode,
} from "@trustedpods/oci";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { CommonOpts, InspectOpts } from "../options/image.js";
import { type Io, printJson } from "../output.js";

/** Turns this package's typed errors into exit code 1 with their message; anything else propagates. */
async function runOp<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof OciError) throw new CliError(`${err.message} [${err.code}]`, ExitCode.failure);
    throw err;
  }
}

function progress(io: Io, opts: CommonOpts, verb: string) {
  return (p: CryptoProgress) => {
    if (opts.quiet || p.phase !== "layer") return;
    io.err(`${verb} layer ${p.desc.digest} (${formatSize(p.desc.size)})`);
  };
}

function reportResult(io: Io, opts: CommonOpts, what: string, result: LayoutOpResult): void {
  if (opts.json) {
    printJson(io, { dir: result.dir, manifest: result.root });
  } else {
    io.out(`${what} image written to ${result.dir} (manifest ${result.root.digest})`);
  }
}

/** `tpod image encrypt SRC DST` */
export async function imageEncrypt(
  { io }: CommandContext,
  src: string,
  dst: string,
  opts: CommonOpts & { recipient: string[] },
): Promise<void> {
  const result = await runOp(async () => {
    const recipients = await Promise.all(opts.recipient.map(readPublicKeyFile));
    return encryptLayout(
      src,
      dst,
      recipients,
      withRef(opts, { onProgress: progress(io, opts, "encrypting") }),
    );
  });
  reportResult(io, opts, "encrypted", result);
}

/** `tpod image decrypt SRC DST` */
export async function imageDecrypt(
  { io }: CommandContext,
  src: string,
  dst: string,
  opts: CommonOpts & { key: string[] },
): Promise<void> {
  const result = await runOp(async () => {
    const keys = await Promise.all(opts.key.map(readPrivateKeyFile));
    return decryptLayout(src, dst, keys, withRef(opts, { onProgress: progress(io, opts, "decrypting") }));
  });
  reportResult(io, opts, "decrypted", result);
}

/** `tpod image recipients add SRC DST` */
export async function recipientsAdd(
  { io }: CommandContext,
  src: string,
  dst: string,
  opts: CommonOpts & { key: string[]; recipient: string[] },
): Promise<void> {
  const result = await runOp(async () => {
    const keys = await Promise.all(opts.key.map(readPrivateKeyFile));
    const pubs = await Promise.all(opts.recipient.map(readPublicKeyFile));
    return addRecipientsLayout(src, dst, keys, pubs, withRef(opts, {}));
  });
  reportResult(io, opts, "re-keyed", result);
}

/** `tpod image recipients remove SRC DST` */
export async function recipientsRemove(
  { io }: CommandContext,
  src: string,
  dst: string,
  opts: CommonOpts & { recipient: string[] },
): Promise<void> {
  const result = await runOp(async () => {
    const pubs = await Promise.all(opts.recipient.map(readPublicKeyFile));
    return removeRecipientsLayout(src, dst, pubs, withRef(opts, {}));
  });
  reportResult(io, opts, "re-keyed", result);
}

type InspectableSource = ImageSource & { walk?: () => Promise<WalkedNode[]> };

/**
 * Opens what `tpod image inspect` was given: a layout directory or an oci/docker archive file. Further kinds
 * of target (such as an IPFS CID) plug in here as extra branches.
 */
export async function openInspectTarget(target: string, opts: { ref?: string }): Promise<InspectableSource> {
  const ref = opts.ref !== undefined ? { ref: opts.ref } : {};
  const info = await stat(target).catch(() => undefined);
  if (info?.isFile()) return openArchive(target, ref);
  return openOciLayout(target, ref);
}

/** `tpod image inspect TARGET` */
export async function imageInspect({ io }: CommandContext, target: string, opts: InspectOpts): Promise<void> {
  // --- IPFS (packages/ipfs): a root CID that names no local path is fetched through IPFS. ---
  // Helia and libp2p load only then: inspecting a local layout or archive does not need them.
  const local = await stat(target).then(
    () => true,
    () => false,
  );
  if (!local) {
    const { isCidTarget, withIpfsImage } = await import("./image-ipfs.js");
    if (await isCidTarget(target)) {
      await withIpfsImage(target, opts, async (source) => {
        const info = await runOp(() => inspectImage(source));
        if (opts.json) printJson(io, { cid: source.cid.toString(), ...info });
        else {
          io.out(`cid        ${source.cid}`);
          printInspect(io, info);
        }
      });
      return;
    }
  }
  const info = await runOp(async () => inspectImage(await openInspectTarget(target, opts)));
  if (opts.json) printJson(io, info);
  else printInspect(io, info);
}

export function printInspect(io: Io, info: ImageInfo): void {
  io.out(`image      ${info.root.digest} (${info.root.mediaType})`);
  io.out(`size       ${formatSize(info.totalSize)} in all blobs`);
  const rec = info.encryption === "plain" ? "" : ` for ${info.recipients} recipient(s)`;
  io.out(`encryption ${info.encryption}${rec}`);
  for (const m of info.manifests) {
    const platform = m.platform ? ` ${m.platform.os}/${m.platform.architecture}` : "";
    io.out(`manifest   ${m.digest}${platform}`);
    io.out(`  config   ${m.config.digest} ${formatSize(m.config.size)}`);
    for (const l of m.layers) {
      const enc = l.encrypted ? `encrypted, ${l.recipients} recipient(s)` : "plain";
      io.out(`  layer    ${l.digest} ${formatSize(l.size).padStart(10)}  ${l.mediaType}  ${enc}`);
    }
  }
}

function withRef<T extends object>(opts: CommonOpts, rest: T): T & { ref?: string } {
  return opts.ref !== undefined ? { ...rest, ref: opts.ref } : rest;
}

export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${v.toFixed(1)} ${units[i]}`;
}
