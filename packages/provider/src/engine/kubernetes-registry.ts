// Images for the Kubernetes engine. A cluster runs what its nodes pull from a registry, so loading an image
// means pushing the pod's OCI image (the plain layout the provider made from IPFS) to the provider's registry,
// by digest, with skopeo, and naming it `REPOSITORY/<pod>/<container>@sha256:…` in the pod's objects: the node
// pulls exactly that manifest (the runtime checks the digest), and no tag a registry serves can change what runs.
// The digest is the one of the manifest in the local layout, never one a registry reports.
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { EngineError } from "./errors.js";
import type { ImageSource, LoadedImage } from "./types.js";
import { NAME_PATTERN } from "./types.js";
import { assertPodId } from "./validate.js";

const run = promisify(execFile);
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_METADATA = 1024 * 1024;
const IMAGE_MANIFEST_TYPES = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
];
/** host[:port] then path components as the distribution spec allows them (lowercase). */
const REPOSITORY_RE =
  /^(?<host>[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:]+\])(?<port>:\d{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;
const LOOPBACK_HOSTS = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

export interface KubernetesRegistryOptions {
  /**
   * Where pod images go: `host[:port][/path]`, e.g. `registry.example:5000/tpod`. The cluster's nodes must be
   * able to pull from it; it receives DECRYPTED images, so it must be inside the provider's TEE boundary.
   */
  repository: string;
  /** A containers-auth.json file with the push credentials (skopeo --dest-authfile); anonymous when absent. */
  authFile?: string;
  /** Verify the registry's TLS certificate (default true). Only a loopback registry may turn it off. */
  tlsVerify?: boolean;
  /** The skopeo binary (default: `skopeo` on PATH). */
  skopeo?: string;
  /** Where archives are unpacked to a layout before a push (default: the OS temp dir). */
  workDir?: string;
}

/** Why a registry setting cannot be used, or undefined. The config reader and the engine share these rules. */
export function registryProblem(
  o: Pick<KubernetesRegistryOptions, "repository" | "tlsVerify">,
): string | undefined {
  const m = REPOSITORY_RE.exec(o.repository);
  if (!m?.groups)
    return `"${o.repository}" is not a registry repository (host[:port][/path], lowercase, e.g. registry.example:5000/tpod)`;
  const host = m.groups.host ?? "";
  // Without a dot, a port or "localhost" the first component is a path on Docker Hub, not a host.
  if (!host.includes(".") && !host.startsWith("[") && !m.groups.port && host !== "localhost")
    return `"${o.repository}" does not start with a registry host (a name with a dot, a port, or localhost)`;
  if (o.tlsVerify === false && !LOOPBACK_HOSTS.test(host))
    return `tlsVerify false is allowed for a loopback registry only: decrypted images would cross the network to ${host} unprotected`;
  return undefined;
}

function bad(message: string, cause?: unknown): never {
  throw new EngineError("IMAGE_LOAD_FAILED", message, cause === undefined ? undefined : { cause });
}

async function readSmall(file: string, what: string): Promise<Buffer> {
  const s = await stat(file).catch((err: unknown) => bad(`${what} is missing`, err));
  if (s.size > MAX_METADATA) bad(`${what} is larger than ${MAX_METADATA} bytes`);
  return readFile(file);
}

function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(bytes.toString("utf8")) as unknown;
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {}
  return bad(`${what} is not a JSON object`);
}

/** The single image of an OCI layout: its manifest digest (checked against the manifest bytes) and config digest. */
export async function layoutImage(dir: string): Promise<{ digest: string; configDigest: string }> {
  const index = parseJson(await readSmall(path.join(dir, "index.json"), "index.json"), "index.json");
  const manifests = index.manifests;
  if (!Array.isArray(manifests) || manifests.length !== 1)
    bad("the OCI layout must hold exactly one image manifest");
  const digest = (manifests[0] as { digest?: unknown }).digest;
  if (typeof digest !== "string" || !DIGEST.test(digest)) bad(`invalid manifest digest ${String(digest)}`);
  const bytes = await readSmall(path.join(dir, "blobs", "sha256", digest.slice(7)), `manifest ${digest}`);
  // The name the cluster pulls is this digest: it must be the digest of the bytes pushed.
  if (`sha256:${createHash("sha256").update(bytes).digest("hex")}` !== digest)
    bad(`manifest blob does not match its digest ${digest}`);
  const manifest = parseJson(bytes, `manifest ${digest}`);
  if (typeof manifest.mediaType === "string" && !IMAGE_MANIFEST_TYPES.includes(manifest.mediaType))
    bad(`manifest ${digest} is a ${manifest.mediaType}, not one image manifest`);
  const configDigest = (manifest.config as { digest?: unknown } | undefined)?.digest;
  if (typeof configDigest !== "string" || !DIGEST.test(configDigest)) bad(`manifest ${digest} has no config`);
  return { digest, configDigest };
}

function reason(err: unknown): string {
  const e = err as { stderr?: unknown; message?: unknown };
  const text = typeof e.stderr === "string" && e.stderr.trim() ? e.stderr : String(e.message ?? err);
  // skopeo's fatal line: time="…" level=fatal msg="…"
  const msg = /msg="((?:[^"\\]|\\.)*)"/.exec(text)?.[1] ?? text;
  return msg.trim().split("\n").slice(-1)[0]!.slice(0, 500);
}

/** Pushes pod images to one registry by digest and deletes them again; see the file comment. */
export class KubernetesRegistry {
  readonly repository: string;

  constructor(private readonly options: KubernetesRegistryOptions) {
    const problem = registryProblem(options);
    if (problem) throw new EngineError("ENGINE_UNAVAILABLE", `engine.registry: ${problem}`);
    this.repository = options.repository.replace(/\/+$/, "");
  }

  /** The repository of one container of one pod: REPOSITORY/<pod>/<container>. */
  repositoryOf(podId: string, container: string): string {
    return `${this.repository}/${podId}/${container}`;
  }

  /** True when `ref` names an image this registry holds for `podId` (or for any pod, without one). */
  owns(ref: string, podId?: string): boolean {
    const prefix = podId ? `${this.repository}/${podId}/` : `${this.repository}/`;
    return ref.startsWith(prefix) && /@sha256:[a-f0-9]{64}$/.test(ref);
  }

  async push(podId: string, container: string, source: ImageSource): Promise<LoadedImage> {
    assertPodId(podId);
    if (!NAME_PATTERN.test(container))
      throw new EngineError("INVALID_SPEC", `invalid container name ${container}`);
    // skopeo's oci:, oci-archive: and docker-archive: names end the path at a ':' (what follows is a tag).
    const where = source.kind === "oci-layout" ? source.dir : source.path;
    if (where.includes(":")) bad(`image path ${where} contains ':', which skopeo would read as a tag`);
    if (source.kind === "oci-layout") return this.pushLayout(source.dir, this.repositoryOf(podId, container));
    const tmp = path.join(this.options.workDir ?? os.tmpdir(), `tpod-push-${randomBytes(8).toString("hex")}`);
    await mkdir(tmp, { recursive: true, mode: 0o700 });
    try {
      const layout = path.join(tmp, "layout");
      // skopeo reads the archive itself (no extraction of ours); the layout it writes has the digest we push.
      await this.skopeo([
        "copy",
        "-q",
        `${await archiveTransport(source.path)}:${source.path}`,
        `oci:${layout}`,
      ]);
      return await this.pushLayout(layout, this.repositoryOf(podId, container));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  private async pushLayout(dir: string, repository: string): Promise<LoadedImage> {
    const { digest, configDigest } = await layoutImage(dir);
    const ref = `${repository}@${digest}`;
    // --preserve-digests: skopeo refuses rather than convert or recompress (which would change the digest);
    // a digested destination also makes it check the manifest against the digest before it is sent.
    await this.skopeo([
      "copy",
      "-q",
      "--preserve-digests",
      ...this.destFlags(),
      `oci:${dir}`,
      `docker://${ref}`,
    ]);
    return { ref, id: configDigest };
  }

  /** Deletes a manifest this registry holds (the registry must allow deletes; its GC reclaims the blobs). */
  async remove(ref: string): Promise<void> {
    if (!this.owns(ref)) return;
    try {
      await this.skopeo([
        "delete",
        ...this.tlsFlags("--tls-verify"),
        ...this.authFlags("--authfile"),
        `docker://${ref}`,
      ]);
    } catch (err) {
      // Gone already (skopeo says "Image may not exist" for a 404): removal is idempotent.
      if (/manifest unknown|not found|may not exist/i.test((err as Error).message)) return;
      throw err;
    }
  }

  private destFlags(): string[] {
    return [...this.tlsFlags("--dest-tls-verify"), ...this.authFlags("--dest-authfile")];
  }

  private tlsFlags(flag: string): string[] {
    return [`${flag}=${this.options.tlsVerify !== false}`];
  }

  private authFlags(flag: string): string[] {
    return this.options.authFile ? [flag, this.options.authFile] : [];
  }

  private async skopeo(args: string[]): Promise<void> {
    try {
      await run(this.options.skopeo ?? "skopeo", args, { maxBuffer: 4 * 1024 * 1024 });
    } catch (err) {
      if ((err as { code?: unknown }).code === "ENOENT")
        bad(
          "skopeo is not installed (Debian package skopeo): the kubernetes engine pushes images with it",
          err,
        );
      bad(`skopeo ${args[0]}: ${reason(err)}`, err);
    }
  }
}

/** oci-archive or docker-archive, from the archive's members (an `oci-layout` file, or a `manifest.json`). */
async function archiveTransport(file: string): Promise<"oci-archive" | "docker-archive"> {
  let members: string[];
  try {
    members = (await run("tar", ["-tf", file], { maxBuffer: 16 * 1024 * 1024 })).stdout
      .split("\n")
      .map((m) => m.replace(/^\.\//, ""));
  } catch (err) {
    return bad(`cannot read image archive: ${reason(err)}`, err);
  }
  if (members.includes("oci-layout")) return "oci-archive";
  if (members.includes("manifest.json")) return "docker-archive";
  return bad("not an OCI or docker image archive");
}
