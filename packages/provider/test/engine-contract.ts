// The engine contract: one suite every Engine must pass. engine-contract-podman.test.ts runs it on real
// Podman, engine-contract-kubernetes.test.ts on the FAKE Kubernetes API server (test-support/) and, when
// TPOD_KUBECONFIG names one, on a real cluster. The assertions are the same for all; only the harness differs.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Engine,
  EngineError,
  type ImageSource,
  type LoadedImage,
  type LogLine,
  type PodSpec,
} from "../src/index.js";

export interface EngineHarness {
  engine: Engine;
  /** An image the engine can run that has sh, echo and sleep (busybox). */
  image: string;
  /**
   * Called after the contract started a container whose command prints `line` to stdout. Engines that run
   * containers need nothing here; the fake cluster runs none, so its harness writes the line into the fake's
   * log store, as the kubelet would have captured it.
   */
  printed?(podId: string, container: string, line: string): Promise<void>;
  /**
   * An image (busybox) as the daemon hands it to loadImage after the IPFS pull, for the provision path
   * (loadImage, then apply with the ref it returned). Absent: that test is skipped, with `noImageSource` as why.
   */
  imageSource?: ImageSource;
  noImageSource?: string;
  /** Harness checks of a loaded image once the pod runs it (the Kubernetes harness: registry and Pod objects). */
  loaded?(podId: string, image: LoadedImage): Promise<void>;
  close(): Promise<void>;
}

const res = { cpuMillis: 250, memoryBytes: 64 * 1024 * 1024, pids: 64 };
const LINE = "contract-log-line";

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function collect(it: AsyncIterable<LogLine>): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const l of it) out.push(l);
  return out;
}

export function engineContract(label: string, open: () => Promise<EngineHarness>, timeoutMs = 90_000): void {
  describe(`engine contract: ${label}`, () => {
    const uid = randomBytes(3).toString("hex");
    const pid = (name: string) => `ct-${name}-${uid}`;
    let h: EngineHarness;
    const created = new Set<string>();

    const pod = (podId: string, env: Record<string, string> = {}): PodSpec => ({
      podId,
      containers: [
        {
          name: "web",
          image: h.image,
          command: ["sh", "-c", `echo ${LINE}; exec sleep 3600`],
          env,
          ports: [{ containerPort: 8080, protocol: "http" }],
          mounts: [{ volume: "data", path: "/data" }],
          resources: res,
        },
        { name: "worker", image: h.image, command: ["sleep", "3600"], resources: res },
      ],
      volumes: [{ name: "data", kind: "persistent", sizeBytes: 16 * 1024 * 1024 }],
    });

    const apply = async (spec: PodSpec) => {
      created.add(spec.podId);
      const st = await h.engine.apply(spec);
      await h.printed?.(spec.podId, "web", LINE);
      return st;
    };

    beforeAll(async () => {
      h = await open();
    }, timeoutMs);

    afterAll(async () => {
      if (!h) return;
      for (const p of created) await h.engine.remove(p, { images: false }).catch(() => {});
      await h.close();
    }, timeoutMs);

    it(
      "apply runs every container of the pod; status and listPods report them",
      async () => {
        const podId = pid("run");
        const st = await apply(pod(podId));
        expect(st.podId).toBe(podId);
        expect(st.running).toBe(true);
        expect(st.containers.map((c) => c.name)).toEqual(["web", "worker"]);
        for (const c of st.containers) {
          expect(c.state).toBe("running");
          expect(c.image).toBe(h.image);
          expect(c.exitCode).toBeNull();
          expect(c.restarts).toBe(0);
          expect(c.startedAt).toBeInstanceOf(Date);
          expect(c.id).not.toBe("");
        }
        expect((await h.engine.status(podId)).running).toBe(true);
        const listed = (await h.engine.listPods()).find((p) => p.podId === podId);
        expect(listed?.containers.sort()).toEqual(["web", "worker"]);
      },
      timeoutMs,
    );

    it(
      "provision path: loadImage of the pod's image, then apply with its ref, runs exactly that image",
      async (ctx) => {
        if (!h.imageSource) ctx.skip(h.noImageSource ?? "this harness has no image source");
        const podId = pid("load");
        created.add(podId);
        const image = await h.engine.loadImage(podId, "web", h.imageSource!);
        expect(image.ref).not.toBe("");
        expect(image.id).toMatch(/^sha256:[0-9a-f]{64}$/);
        const spec = pod(podId);
        spec.containers = spec.containers.map((c) => ({ ...c, image: image.ref }));
        const st = await apply(spec);
        expect(st.running).toBe(true);
        expect(st.containers.map((c) => c.image)).toEqual([image.ref, image.ref]);
        await h.loaded?.(podId, image);
        await h.engine.remove(podId, { images: true });
      },
      timeoutMs,
    );

    it(
      "apply of a changed spec replaces the pod and leaves it running",
      async () => {
        const podId = pid("upd");
        await apply(pod(podId, { VERSION: "1" }));
        const st = await apply(pod(podId, { VERSION: "2" }));
        expect(st.running).toBe(true);
        expect(st.containers.every((c) => c.state === "running")).toBe(true);
        expect((await h.engine.listPods()).filter((p) => p.podId === podId)).toHaveLength(1);
      },
      timeoutMs,
    );

    it(
      "stop stops every container and keeps the pod; start runs it again",
      async () => {
        const podId = pid("stop");
        await apply(pod(podId));
        await h.engine.stop(podId);
        const stopped = await h.engine.status(podId);
        expect(stopped.running).toBe(false);
        expect(stopped.containers.map((c) => c.name)).toEqual(["web", "worker"]);
        expect(stopped.containers.some((c) => c.state === "running")).toBe(false);
        expect((await h.engine.listPods()).some((p) => p.podId === podId)).toBe(true);
        await h.engine.stop(podId); // stopping a stopped pod changes nothing
        await h.engine.start(podId);
        const again = await h.engine.status(podId);
        expect(again.running).toBe(true);
        expect(again.containers.every((c) => c.state === "running")).toBe(true);
      },
      timeoutMs,
    );

    it(
      "logs return what a container printed, named and timed, per container, and follow",
      async () => {
        const podId = pid("logs");
        const before = Date.now() - 60_000;
        await apply(pod(podId));
        const lines = await waitFor("the container's line", async () => {
          const l = await collect(h.engine.logs(podId));
          return l.some((x) => x.line === LINE) ? l : undefined;
        });
        const line = lines.find((x) => x.line === LINE)!;
        expect(line.container).toBe("web");
        expect(line.stream).toBe("stdout");
        expect(line.time.getTime()).toBeGreaterThan(before);
        expect(line.time.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
        const onlyWorker = await collect(h.engine.logs(podId, { containers: ["worker"] }));
        expect(onlyWorker.some((x) => x.line === LINE)).toBe(false);

        const ac = new AbortController();
        let first: LogLine | undefined;
        for await (const l of h.engine.logs(podId, {
          follow: true,
          containers: ["web"],
          signal: ac.signal,
        })) {
          first = l;
          ac.abort();
        }
        expect(first?.line).toBe(LINE);
      },
      timeoutMs,
    );

    it(
      "remove deletes the pod: status is empty, listPods forgets it, a second remove is harmless",
      async () => {
        const podId = pid("rm");
        await apply(pod(podId));
        await h.engine.remove(podId);
        expect(await h.engine.status(podId)).toEqual({ podId, running: false, containers: [] });
        expect((await h.engine.listPods()).some((p) => p.podId === podId)).toBe(false);
        await h.engine.remove(podId);
      },
      timeoutMs,
    );

    it(
      "a pod that never existed has an empty status and cannot be started",
      async () => {
        const podId = pid("none");
        expect(await h.engine.status(podId)).toEqual({ podId, running: false, containers: [] });
        const err = await h.engine.start(podId).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(EngineError);
        expect((err as EngineError).code).toBe("NOT_FOUND");
      },
      timeoutMs,
    );

    it(
      "refuses invalid specs with INVALID_SPEC before creating anything",
      async () => {
        const before = (await h.engine.listPods()).map((p) => p.podId);
        const bad = pod("Not_A_Pod_Id");
        const err = await h.engine.apply(bad).catch((e: unknown) => e);
        expect((err as EngineError).code).toBe("INVALID_SPEC");
        const dup = pod(pid("dup"));
        dup.containers[1]!.name = "web";
        expect(((await h.engine.apply(dup).catch((e: unknown) => e)) as EngineError).code).toBe(
          "INVALID_SPEC",
        );
        expect((await h.engine.listPods()).map((p) => p.podId)).toEqual(before);
      },
      timeoutMs,
    );
  });
}
