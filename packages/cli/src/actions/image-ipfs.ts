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
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { IpfsCliOpts } from "../options/image-ipfs.js";
import { type Io, printJson } from "../output.js";

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

/** `tpod image push SRC` */
export async function imagePush(
  { io }: CommandContext,
  src: string,
  opts: IpfsCliOpts & { pin: boolean; serve?: boolean },
): Promise<void> {
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
}

/** `tpod image pull CID DST` */
export async function imagePull(
  { io }: CommandContext,
  cidText: string,
  dst: string,
  opts: IpfsCliOpts & { fastPath: boolean },
): Promise<void> {
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
}
