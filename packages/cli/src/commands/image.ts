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
import type { Command } from "commander";
import { CliError, ExitCode } from "../errors.js";
import { type Io, printJson } from "../output.js";
import {
  addIpfsOptions,
  type IpfsCliOpts,
  isCidTarget,
  registerImageIpfs,
  withIpfsImage,
} from "./image-ipfs.js";
import type { CommandContext } from "./index.js";

// `tpod image ...`: one sub-command per function below, registered by registerImage at the end.
// Layout commands take SRC_DIR DST_DIR; DST must not exist (or be empty) and is created only on success.

// No default value: commander then reports a missing required option as a usage error (exit 2).
const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

interface CommonOpts {
  json?: boolean;
  ref?: string;
  quiet?: boolean;
}

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

function addCommonOptions(cmd: Command): Command {
  return cmd
    .option(
      "--ref <name>",
      "image to use when the source layout holds several (org.opencontainers.image.ref.name)",
    )
    .option("--json", "print the result as JSON")
    .option("-q, --quiet", "no progress on stderr");
}

function registerEncrypt(image: Command, { io }: CommandContext): void {
  addCommonOptions(
    image
      .command("encrypt")
      .description("encrypt every layer of an OCI layout for one or more recipients (ocicrypt/JWE format)")
      .argument("<src>", "source OCI image layout directory")
      .argument("<dst>", "destination directory (created on success only)")
      .requiredOption("--recipient <pubkey-file>", "recipient public key, PEM or JWK (repeatable)", collect),
  ).action(async (src: string, dst: string, opts: CommonOpts & { recipient: string[] }) => {
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
  });
}

function registerDecrypt(image: Command, { io }: CommandContext): void {
  addCommonOptions(
    image
      .command("decrypt")
      .description("decrypt an encrypted OCI layout with a private key")
      .argument("<src>", "source (encrypted) OCI image layout directory")
      .argument("<dst>", "destination directory (created on success only)")
      .requiredOption(
        "--key <privkey-file>",
        "private key, PEM PKCS#8 or JWK (repeatable: any that fits)",
        collect,
      ),
  ).action(async (src: string, dst: string, opts: CommonOpts & { key: string[] }) => {
    const result = await runOp(async () => {
      const keys = await Promise.all(opts.key.map(readPrivateKeyFile));
      return decryptLayout(src, dst, keys, withRef(opts, { onProgress: progress(io, opts, "decrypting") }));
    });
    reportResult(io, opts, "decrypted", result);
  });
}

function registerRecipients(image: Command, { io }: CommandContext): void {
  const recipients = image
    .command("recipients")
    .description("change who can decrypt an encrypted image, without re-encrypting its layers");
  addCommonOptions(
    recipients
      .command("add")
      .description("wrap the layer keys for more recipients (needs a private key that can unwrap them)")
      .argument("<src>", "encrypted OCI image layout directory")
      .argument("<dst>", "destination directory (created on success only)")
      .requiredOption("--key <privkey-file>", "a current recipient's private key (repeatable)", collect)
      .requiredOption(
        "--recipient <pubkey-file>",
        "new recipient public key, PEM or JWK (repeatable)",
        collect,
      ),
  ).action(async (src: string, dst: string, opts: CommonOpts & { key: string[]; recipient: string[] }) => {
    const result = await runOp(async () => {
      const keys = await Promise.all(opts.key.map(readPrivateKeyFile));
      const pubs = await Promise.all(opts.recipient.map(readPublicKeyFile));
      return addRecipientsLayout(src, dst, keys, pubs, withRef(opts, {}));
    });
    reportResult(io, opts, "re-keyed", result);
  });
  addCommonOptions(
    recipients
      .command("remove")
      .description("drop recipients (by public key) from every layer; needs no private key")
      .argument("<src>", "encrypted OCI image layout directory")
      .argument("<dst>", "destination directory (created on success only)")
      .requiredOption(
        "--recipient <pubkey-file>",
        "public key of the recipient to remove (repeatable)",
        collect,
      ),
  ).action(async (src: string, dst: string, opts: CommonOpts & { recipient: string[] }) => {
    const result = await runOp(async () => {
      const pubs = await Promise.all(opts.recipient.map(readPublicKeyFile));
      return removeRecipientsLayout(src, dst, pubs, withRef(opts, {}));
    });
    reportResult(io, opts, "re-keyed", result);
  });
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

function registerInspect(image: Command, { io }: CommandContext): void {
  addIpfsOptions(
    image
      .command("inspect")
      .description("show an image's manifests, layers, sizes, encryption and recipient counts")
      .argument("<target>", "OCI image layout directory, oci-archive / docker-archive file, or IPFS root CID")
      .option("--ref <name>", "image to use when the layout holds several")
      .option("--timeout <seconds>", "for a CID: give up after this long (default 60)")
      .option("--json", "print the description as JSON"),
  ).action(async (target: string, opts: CommonOpts & IpfsCliOpts) => {
    // --- IPFS (packages/ipfs): a root CID that names no local path is fetched through IPFS. ---
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
    const info = await runOp(async () => inspectImage(await openInspectTarget(target, opts)));
    if (opts.json) printJson(io, info);
    else printInspect(io, info);
  });
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

/** Registers `tpod image` and its sub-commands. */
export function registerImage(program: Command, ctx: CommandContext): void {
  const image = program
    .command("image")
    .description("OCI images: encrypt, decrypt, recipients, inspect, push and pull (IPFS)");
  registerEncrypt(image, ctx);
  registerDecrypt(image, ctx);
  registerRecipients(image, ctx);
  registerInspect(image, ctx);
  // push and pull (IPFS) live in image-ipfs.ts.
  registerImageIpfs(image, ctx);
}
