import { stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  type BlobProgress,
  type ContentStore,
  createIpfsNode,
  createKuboStore,
  IpfsError,
  type IpfsImageSource,
  type IpfsNode,
  openIpfsImage,
  type PullOptions,
  parseCid,
  pullImageToLayout,
  pullImageToPodman,
  pushImage,
} from "@trustedpods/ipfs";
import { OciError, openOciLayout } from "@trustedpods/oci";
import type { Command } from "commander";
import { CliError, ExitCode } from "../errors.js";
import { type Io, printJson } from "../output.js";
import type { CommandContext } from "./index.js";

// `tpod image push|pull` and the CID half of `tpod image inspect`: images stored on IPFS by root CID.
// Which IPFS node: --kubo-api URL (an external Kubo node), else an embedded Helia node whose data lives in
// --ipfs-repo DIR (default $TPOD_IPFS_REPO or ~/.tpod/ipfs). --peer MULTIADDR names publisher nodes to fetch
// from (the devnet's long-lived node, or a `tpod image push --serve`).

export interface IpfsCliOpts {
  ipfsRepo?: string;
  kuboApi?: string;
  peer?: string[];
  listen?: string[];
  network?: string;
  timeout?: string;
  json?: boolean;
  quiet?: boolean;
  ref?: string;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Adds the options that say which IPFS node to use; shared by push, pull and inspect. */
export function addIpfsOptions(cmd: Command): Command {
  return cmd
    .option(
      "--ipfs-repo <dir>",
      "data dir of the embedded IPFS node (default $TPOD_IPFS_REPO or ~/.tpod/ipfs)",
    )
    .option("--kubo-api <url>", "use an external Kubo node over its RPC API instead (default $TPOD_KUBO_API)")
    .option("--peer <multiaddr>", "peer to fetch from, with /p2p/PEER_ID (repeatable)", collect)
    .option(
      "--listen <multiaddr>",
      "listen address of the embedded node (repeatable; default 127.0.0.1, any port)",
      collect,
    )
    .option(
      "--network <mode>",
      "devnet (loopback addresses only) or private (any address; no discovery)",
      "devnet",
    );
}

function defaultRepo(): string {
  return process.env.TPOD_IPFS_REPO ?? join(homedir(), ".tpod", "ipfs");
}

function parseTimeoutMs(text: string | undefined, fallbackSeconds: number): number {
  if (text === undefined) return fallbackSeconds * 1000;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new CliError(`--timeout must be a positive number of seconds`, ExitCode.usage);
  return seconds * 1000;
}

interface OpenedStore {
  store: ContentStore;
  node?: IpfsNode;
  close(): Promise<void>;
}

async function openStore(opts: IpfsCliOpts): Promise<OpenedStore> {
  const kubo = opts.kuboApi ?? process.env.TPOD_KUBO_API;
  if (kubo) {
    if (opts.listen?.length)
      throw new CliError("--listen applies to the embedded node, not --kubo-api", ExitCode.usage);
    return { store: createKuboStore({ url: kubo }), close: async () => {} };
  }
  if (opts.network !== "devnet" && opts.network !== "private") {
    throw new CliError(`--network must be devnet or private, not ${opts.network}`, ExitCode.usage);
  }
  const node = await createIpfsNode({
    dataDir: opts.ipfsRepo ?? defaultRepo(),
    network: opts.network,
    ...(opts.listen?.length ? { listen: opts.listen } : {}),
  });
  return { store: node, node, close: () => node.stop() };
}

/** Runs `fn` with a store, mapping this stack's typed errors to exit code 1 and always stopping the node. */
async function withStore<T>(opts: IpfsCliOpts, fn: (s: OpenedStore) => Promise<T>): Promise<T> {
  let opened: OpenedStore | undefined;
  try {
    opened = await openStore(opts);
    return await fn(opened);
  } catch (err) {
    if (err instanceof IpfsError || err instanceof OciError) {
      throw new CliError(`${err.message} [${err.code}]`, ExitCode.failure);
    }
    throw err;
  } finally {
    await opened?.close().catch(() => {});
  }
}

function parseCidArg(text: string) {
  try {
    return parseCid(text);
  } catch {
    throw new CliError(`${JSON.stringify(text)} is not a CID`, ExitCode.usage);
  }
}

/** True when `target` names no file or directory here but parses as a CID. */
export async function isCidTarget(target: string): Promise<boolean> {
  if (
    await stat(target).then(
      () => true,
      () => false,
    )
  ) {
    return false;
  }
  try {
    parseCid(target);
    return true;
  } catch {
    return false;
  }
}

/** Opens the image named by a root CID as an ImageSource for `tpod image inspect CID`. */
export async function withIpfsImage<T>(
  target: string,
  opts: IpfsCliOpts,
  fn: (source: IpfsImageSource) => Promise<T>,
): Promise<T> {
  const cid = parseCidArg(target);
  const timeoutMs = parseTimeoutMs(opts.timeout, 60);
  return withStore(opts, async ({ store }) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const source = await openIpfsImage(store, cid, { peers: opts.peer ?? [], timeoutMs, signal });
    return fn(source);
  });
}

function progressPrinter(io: Io, opts: IpfsCliOpts, verb: "stored" | "fetched") {
  return (p: BlobProgress) => {
    if (opts.quiet || p.bytesDone !== p.bytesTotal) return;
    const via = verb === "stored" ? "" : p.via === "peer" ? " from peer" : " via ipfs";
    io.err(`${verb} ${p.digest} ${formatBytes(p.bytesTotal)}${via}`);
  };
}

function formatBytes(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function registerPush(image: Command, { io }: CommandContext): void {
  addIpfsOptions(
    image
      .command("push")
      .description(
        "store an OCI image layout on IPFS (one CID per blob plus a root object) and print the root CID",
      )
      .argument("<src>", "OCI image layout directory")
      .option("--ref <name>", "image to push when the layout holds several")
      .option("--no-pin", "do not pin the image in the node")
      .option(
        "--serve",
        "keep the embedded node running after the push, serving the image, until interrupted",
      )
      .option("--json", "print the result as JSON")
      .option("-q, --quiet", "no progress on stderr"),
  ).action(async (src: string, opts: IpfsCliOpts & { pin: boolean; serve?: boolean }) => {
    if (opts.serve && (opts.kuboApi ?? process.env.TPOD_KUBO_API)) {
      throw new CliError("--serve needs the embedded node, not --kubo-api", ExitCode.usage);
    }
    await withStore(opts, async ({ store, node }) => {
      const source = await openOciLayout(src, opts.ref !== undefined ? { ref: opts.ref } : {});
      const { cid, root } = await pushImage(store, source, {
        pin: opts.pin,
        onProgress: progressPrinter(io, opts, "stored"),
      });
      const addrs = node?.multiaddrs() ?? [];
      if (opts.json) {
        printJson(io, {
          cid: cid.toString(),
          root: root.root,
          blobs: root.blobs.map((b) => ({ ...b, cid: b.cid.toString() })),
          ...(node ? { peerId: node.peerId, addrs } : {}),
        });
      } else {
        io.out(cid.toString());
      }
      if (opts.serve && node) {
        for (const a of addrs) io.err(`serving at ${a}`);
        io.err("serving the image until interrupted (Ctrl-C)");
        await new Promise<void>((resolve) => {
          process.once("SIGINT", () => resolve());
          process.once("SIGTERM", () => resolve());
        });
      }
    });
  });
}

function registerPull(image: Command, { io }: CommandContext): void {
  addIpfsOptions(
    image
      .command("pull")
      .description("fetch an image by root CID, verifying every digest, into an OCI layout or Podman")
      .argument("<cid>", "root CID printed by `tpod image push`")
      .argument("<dst>", "new OCI layout directory (created on success only), or podman:NAME")
      .option("--timeout <seconds>", "give up after this long (default 600)")
      .option("--no-fast-path", "fetch through bitswap/Kubo only, never over the direct blob stream")
      .option("--json", "print the result as JSON")
      .option("-q, --quiet", "no progress on stderr"),
  ).action(async (cidText: string, dst: string, opts: IpfsCliOpts & { fastPath: boolean }) => {
    const cid = parseCidArg(cidText);
    const timeoutMs = parseTimeoutMs(opts.timeout, 600);
    const podmanName = dst.startsWith("podman:") ? dst.slice("podman:".length) : undefined;
    if (podmanName === "")
      throw new CliError("podman: needs an image name, e.g. podman:localhost/app:1", ExitCode.usage);
    const image = await withStore(opts, async ({ store }) => {
      const pullOpts: PullOptions = {
        peers: opts.peer ?? [],
        fastPath: opts.fastPath,
        timeoutMs,
        onProgress: progressPrinter(io, opts, "fetched"),
      };
      return podmanName !== undefined
        ? pullImageToPodman(store, cid, podmanName, pullOpts)
        : pullImageToLayout(store, cid, dst, pullOpts);
    });
    if (opts.json) printJson(io, { cid: cid.toString(), dst, root: image.root });
    else io.out(`pulled ${cid} into ${dst} (manifest ${image.root.digest})`);
  });
}

/** Registers `tpod image push` and `tpod image pull` on the `image` command group. */
export function registerImageIpfs(image: Command, ctx: CommandContext): void {
  registerPush(image, ctx);
  registerPull(image, ctx);
}
