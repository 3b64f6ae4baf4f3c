import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { CommonOpts, InspectOpts } from "../options/image.js";
import { addIpfsOptions, registerImageIpfs } from "./image-ipfs.js";

export type { CommonOpts, InspectOpts } from "../options/image.js";

// `tpod image ...`: definitions only. The OCI code loads on use from ../actions/image.js (and Helia/libp2p
// from ../actions/image-ipfs.js only for push, pull and inspecting a CID).
// Layout commands take SRC_DIR DST_DIR; DST must not exist (or be empty) and is created only on success.

// No default value: commander then reports a missing required option as a usage error (exit 2).
const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

const actions = () => import("../actions/image.js");

function addCommonOptions(cmd: Command): Command {
  return cmd
    .option(
      "--ref <name>",
      "image to use when the source layout holds several (org.opencontainers.image.ref.name)",
    )
    .option("--json", "print the result as JSON")
    .option("-q, --quiet", "no progress on stderr");
}

function registerEncrypt(image: Command, ctx: CommandContext): void {
  addCommonOptions(
    image
      .command("encrypt")
      .description("encrypt every layer of an OCI layout for one or more recipients (ocicrypt/JWE format)")
      .argument("<src>", "source OCI image layout directory")
      .argument("<dst>", "destination directory (created on success only)")
      .requiredOption("--recipient <pubkey-file>", "recipient public key, PEM or JWK (repeatable)", collect),
  ).action(async (src: string, dst: string, opts: CommonOpts & { recipient: string[] }) =>
    (await actions()).imageEncrypt(ctx, src, dst, opts),
  );
}

function registerDecrypt(image: Command, ctx: CommandContext): void {
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
  ).action(async (src: string, dst: string, opts: CommonOpts & { key: string[] }) =>
    (await actions()).imageDecrypt(ctx, src, dst, opts),
  );
}

function registerRecipients(image: Command, ctx: CommandContext): void {
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
  ).action(async (src: string, dst: string, opts: CommonOpts & { key: string[]; recipient: string[] }) =>
    (await actions()).recipientsAdd(ctx, src, dst, opts),
  );
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
  ).action(async (src: string, dst: string, opts: CommonOpts & { recipient: string[] }) =>
    (await actions()).recipientsRemove(ctx, src, dst, opts),
  );
}

function registerInspect(image: Command, ctx: CommandContext): void {
  addIpfsOptions(
    image
      .command("inspect")
      .description("show an image's manifests, layers, sizes, encryption and recipient counts")
      .argument("<target>", "OCI image layout directory, oci-archive / docker-archive file, or IPFS root CID")
      .option("--ref <name>", "image to use when the layout holds several")
      .option("--timeout <seconds>", "for a CID: give up after this long (default 60)")
      .option("--json", "print the description as JSON"),
  ).action(async (target: string, opts: InspectOpts) => (await actions()).imageInspect(ctx, target, opts));
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
