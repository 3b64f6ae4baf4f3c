// KubernetesEngine.loadImage against a REAL registry (Debian's docker-registry, distribution v2, on a free
// loopback port) and the FAKE API server: images are pushed by digest with skopeo, the Pod objects name
// REPO/<pod>/<container>@sha256:…, and neither a tag nor a lying registry changes what runs.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildBusyboxLayout,
  inspectImage,
  REGISTRY_MISSING,
  startRegistry,
  type TestRegistry,
} from "../../../test-support/docker-registry.js";
import { FakeKubeApiServer, fakeKubeConfig } from "../../../test-support/kube-fake-apiserver.js";
import { EngineError, KubernetesEngine, layoutImage, type PodSpec } from "../src/index.js";

const run = promisify(execFile);
if (REGISTRY_MISSING) console.warn(`SKIP engine-kubernetes-registry: ${REGISTRY_MISSING}`);

const spec = (podId: string, image: string): PodSpec => ({
  podId,
  containers: [
    {
      name: "web",
      image,
      command: ["sleep", "3600"],
      resources: { cpuMillis: 100, memoryBytes: 32 * 1024 * 1024, pids: 32 },
    },
  ],
});

/** skopeo copy with the test registry's plain HTTP. */
const copy = (from: string, to: string) =>
  run("skopeo", ["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", from, to]);

describe.skipIf(REGISTRY_MISSING)("KubernetesEngine images through a REAL registry (docker-registry)", () => {
  const uid = randomBytes(3).toString("hex");
  let tmp: string;
  let registry: TestRegistry;
  let fake: FakeKubeApiServer;
  let engine: KubernetesEngine;
  /** Two different busybox images built here: A is the pod's, B the attacker's. */
  let a: { dir: string; digest: string; configDigest: string };
  let b: { dir: string; digest: string; configDigest: string };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "tpod-k8s-registry-"));
    registry = await startRegistry();
    fake = new FakeKubeApiServer();
    const server = await fake.start();
    engine = new KubernetesEngine(fakeKubeConfig(server), {
      readyTimeoutMs: 20_000,
      registry: { repository: `${registry.host}/tpod`, tlsVerify: false, workDir: tmp },
    });
    for (const marker of ["a", "b"]) await buildBusyboxLayout(path.join(tmp, marker), `${marker}-${uid}`);
    a = { dir: path.join(tmp, "a"), ...(await layoutImage(path.join(tmp, "a"))) };
    b = { dir: path.join(tmp, "b"), ...(await layoutImage(path.join(tmp, "b"))) };
    expect(a.digest).not.toBe(b.digest);
  }, 120_000);

  afterAll(async () => {
    await engine?.close();
    await fake?.stop();
    await registry?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("pushes an OCI layout by its manifest digest; the registry holds exactly that digest and the Pod names it", async () => {
    const podId = `reg-layout-${uid}`;
    const img = await engine.loadImage(podId, "web", { kind: "oci-layout", dir: a.dir });
    expect(img).toEqual({ ref: `${registry.host}/tpod/${podId}/web@${a.digest}`, id: a.configDigest });
    expect(await inspectImage(img.ref)).toEqual({ digest: a.digest, config: a.configDigest });
    await engine.apply(spec(podId, img.ref));
    const pods = fake.list("Pod", `tpod-${podId}`);
    expect(pods).toHaveLength(1);
    expect(pods[0]?.spec.containers[0].image).toBe(img.ref);
    expect(fake.get("Deployment", `tpod-${podId}`, "pod")?.spec.template.spec.containers[0].image).toBe(
      img.ref,
    );
    expect((await engine.listPods()).find((p) => p.podId === podId)?.images).toEqual([img.ref]);
    await engine.remove(podId, { images: true });
  }, 60_000);

  it("pushes a docker archive (as podman save writes them) by the digest of the layout skopeo makes of it", async () => {
    const archive = path.join(tmp, "a-docker.tar");
    await run("skopeo", ["copy", "-q", `oci:${a.dir}`, `docker-archive:${archive}`]);
    const podId = `reg-archive-${uid}`;
    const img = await engine.loadImage(podId, "web", { kind: "archive", path: archive });
    const digest = img.ref.slice(img.ref.indexOf("@") + 1);
    expect(img.ref).toBe(`${registry.host}/tpod/${podId}/web@${digest}`);
    expect(await inspectImage(img.ref)).toEqual({ digest, config: img.id });
    await engine.removeImage(img.ref);
  }, 60_000);

  it("refuses a layout whose manifest blob does not match its digest, and a layout of two images", async () => {
    const forged = path.join(tmp, "forged");
    await cp(a.dir, forged, { recursive: true });
    const index = JSON.parse(await readFile(path.join(forged, "index.json"), "utf8"));
    // The index names B's digest, and the blob stored under that name is A's manifest.
    index.manifests[0].digest = b.digest;
    await cp(
      path.join(forged, "blobs", "sha256", a.digest.slice(7)),
      path.join(forged, "blobs", "sha256", b.digest.slice(7)),
    );
    await writeFile(path.join(forged, "index.json"), JSON.stringify(index));
    const err = await engine
      .loadImage(`reg-forged-${uid}`, "web", { kind: "oci-layout", dir: forged })
      .catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe("IMAGE_LOAD_FAILED");
    expect((err as Error).message).toMatch(/does not match its digest/);

    const two = path.join(tmp, "two");
    await cp(a.dir, two, { recursive: true });
    const idx = JSON.parse(await readFile(path.join(two, "index.json"), "utf8"));
    idx.manifests.push(idx.manifests[0]);
    await writeFile(path.join(two, "index.json"), JSON.stringify(idx));
    const err2 = await engine
      .loadImage(`reg-two-${uid}`, "web", { kind: "oci-layout", dir: two })
      .catch((e) => e);
    expect((err2 as EngineError).code).toBe("IMAGE_LOAD_FAILED");
    expect((err2 as Error).message).toMatch(/exactly one image manifest/);
  }, 60_000);

  it("attack: a tag the registry serves with another image does not change what the Pod runs", async () => {
    const podId = `reg-tag-${uid}`;
    const repo = `${registry.host}/tpod/${podId}/web`;
    const img = await engine.loadImage(podId, "web", { kind: "oci-layout", dir: a.dir });
    // Whoever can write to the registry points the pod's repository's tags at image B.
    for (const tag of ["latest", a.digest.slice(7, 19)])
      await copy(`oci:${b.dir}`, `docker://${repo}:${tag}`);
    expect((await inspectImage(`${repo}:latest`)).config).toBe(b.configDigest); // the attack is real
    await engine.apply(spec(podId, img.ref));
    const running = fake.list("Pod", `tpod-${podId}`)[0]?.spec.containers[0].image as string;
    expect(running).toBe(`${repo}@${a.digest}`);
    expect(await inspectImage(running)).toEqual({ digest: a.digest, config: a.configDigest });
    await engine.remove(podId, { images: true });
  }, 60_000);

  it("attack: a registry that lies about digests cannot change the ref, and a pull by digest refuses its substitute", async () => {
    // A proxy in front of the real registry answers every manifest push with B's digest, and a GET of A's
    // manifest by digest with B's manifest.
    const bManifest = await readFile(path.join(b.dir, "blobs", "sha256", b.digest.slice(7)));
    const upstream = registry.host.split(":");
    const proxy = http.createServer((req, res) => {
      if (req.method === "GET" && req.url?.endsWith(`/manifests/${a.digest}`)) {
        res.writeHead(200, {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "docker-content-digest": a.digest,
          "content-length": bManifest.length,
        });
        res.end(bManifest);
        return;
      }
      const up = http.request(
        {
          host: upstream[0],
          port: Number(upstream[1]),
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (r) => {
          const headers = { ...r.headers };
          if (req.method === "PUT" && req.url?.includes("/manifests/"))
            headers["docker-content-digest"] = b.digest;
          res.writeHead(r.statusCode ?? 502, headers);
          r.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const liar = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const lied = new KubernetesEngine(engine.kubeConfig, {
      registry: { repository: `${liar}/tpod`, tlsVerify: false, workDir: tmp },
    });
    try {
      const podId = `reg-liar-${uid}`;
      const img = await lied.loadImage(podId, "web", { kind: "oci-layout", dir: a.dir });
      // The ref is the local layout's digest, not the registry's word.
      expect(img.ref).toBe(`${liar}/tpod/${podId}/web@${a.digest}`);
      // A pull by that digest through the liar is refused (containers/image checks the digest, as the
      // kubelet's runtime does) ...
      const pulled = await inspectImage(img.ref).catch((e: Error) => e);
      expect(pulled).toBeInstanceOf(Error);
      expect(String((pulled as Error & { stderr?: string }).stderr ?? pulled)).toMatch(/digest/i);
      // ... and the honest registry behind it has exactly A under that digest.
      expect(await inspectImage(`${registry.host}/tpod/${podId}/web@${a.digest}`)).toEqual({
        digest: a.digest,
        config: a.configDigest,
      });
    } finally {
      await lied.close();
      await new Promise((r) => proxy.close(r));
    }
  }, 60_000);

  it("removeImage and remove({images}) delete the pod's manifests; images outside the pod's repository stay", async () => {
    const podId = `reg-rm-${uid}`;
    const img = await engine.loadImage(podId, "web", { kind: "oci-layout", dir: a.dir });
    const other = `${registry.host}/elsewhere/web@${b.digest}`;
    await copy(`oci:${b.dir}`, `docker://${other}`);
    await engine.removeImage(other); // not the engine's: left alone
    expect((await inspectImage(other)).digest).toBe(b.digest);
    await engine.apply(spec(podId, img.ref));
    await engine.remove(podId, { images: true });
    const gone = await inspectImage(img.ref).catch((e: Error & { stderr?: string }) => e.stderr ?? e.message);
    expect(gone).toMatch(/manifest unknown/);
    await engine.removeImage(img.ref); // already gone: harmless
  }, 60_000);

  it("without engine.registry loadImage fails with IMAGE_LOAD_FAILED saying what to set", async () => {
    const bare = new KubernetesEngine(engine.kubeConfig);
    const err = await bare
      .loadImage(`reg-none-${uid}`, "web", { kind: "oci-layout", dir: a.dir })
      .catch((e) => e);
    expect((err as EngineError).code).toBe("IMAGE_LOAD_FAILED");
    expect((err as Error).message).toMatch(/engine\.registry/);
    await bare.close();
  });
});

describe("the FAKE kubelet parses image references", () => {
  it("a ref it cannot parse never runs (InvalidImageName in apply's error); a ref by digest runs", async () => {
    const fake = new FakeKubeApiServer();
    const engine = new KubernetesEngine(fakeKubeConfig(await fake.start()), { readyTimeoutMs: 1_500 });
    try {
      const err = await engine.apply(spec("bad-ref", "repo@sha256:not-a-digest")).catch((e: unknown) => e);
      expect((err as EngineError).code).toBe("ENGINE_FAILURE");
      expect((err as Error).message).toMatch(/web: InvalidImageName/);
      const pinned = `127.0.0.1:5000/tpod/good-ref/web@sha256:${"ab".repeat(32)}`;
      const st = await engine.apply(spec("good-ref", pinned));
      expect(st.running).toBe(true);
      expect(fake.list("Pod", "tpod-good-ref")[0]?.status.containerStatuses[0].imageID).toBe(pinned);
    } finally {
      await engine.close();
      await fake.stop();
    }
  }, 30_000);
});
