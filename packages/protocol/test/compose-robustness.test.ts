/**
 * Compose import on the patterns real Compose files use (variables in typed fields, one-shot init services,
 * profiles, loopback-bound ports, renamed services other services connect to, ...). Each case is a small file
 * written for the feature it shows; the expected diagnostics are exact, so a message that loses its location
 * or its advice fails here.
 */
import { describe, expect, it } from "vitest";
import { type ComposeImportOptions, importCompose } from "../src/compose/index.js";
import { formatDiagnostic } from "../src/diagnostics.js";
import { parseManifest } from "../src/manifest.js";

const compose = (text: string, env: Record<string, string> = {}, options: ComposeImportOptions = {}) =>
  importCompose(text, "app/compose.yaml", { env, ...options });
const messages = (r: ReturnType<typeof compose>) => r.diagnostics.map(formatDiagnostic);

describe("typed fields written as variables or quoted strings are cast as Compose casts them", () => {
  it("reads healthcheck retries, read_only, required and a GPU count from variables", () => {
    const r = compose(
      `x-health: &health
  interval: "$EVERY"
  retries: $RETRIES
services:
  a:
    image: busybox
    env_file:
      - path: ./optional.env
        required: "\${ENV_REQUIRED:-false}"
    healthcheck:
      <<: *health
      test: ["CMD", "true"]
    volumes:
      - type: volume
        source: data
        target: /data
        read_only: "true"
    deploy:
      resources:
        reservations:
          devices:
            - capabilities: [gpu]
              count: \${GPUS}
volumes:
  data:
    driver_opts: {size: 2g}
`,
      { EVERY: "5s", RETRIES: "7", GPUS: "2" },
    );
    expect(messages(r)).toEqual([]);
    const c = r.pod!.containers[0]!;
    expect(c.healthCheck).toMatchObject({ intervalMs: 5000n, retries: 7 });
    expect(c.volumeMounts).toEqual([{ name: "data", mountPath: "/data", readOnly: true }]);
    expect(c.resources.gpu).toBe(2n);
  });

  it("says which value is not a number or a boolean, at its line", () => {
    const r = compose(
      `services:
  a:
    image: busybox
    healthcheck:
      test: ["CMD", "true"]
      retries: $RETRIES
    volumes:
      - {type: tmpfs, target: /t, read_only: maybe}
`,
      { RETRIES: "often" },
    );
    expect(messages(r)).toEqual([
      `app/compose.yaml:6:16: retries: "often" is not a non-negative integer`,
      `app/compose.yaml:8:46: read_only: "maybe" is not a boolean (true or false)`,
    ]);
  });

  it("refuses privileged and host namespaces however the value is written", () => {
    const r = compose(
      `services:
  a:
    image: busybox
    privileged: "true"
    pid: "\${PID_MODE}"
`,
      { PID_MODE: "host" },
    );
    expect(messages(r)).toEqual([
      "app/compose.yaml:4:5: privileged: not supported (pods never run privileged; remove it and grant the program only what it needs)",
      "app/compose.yaml:5:5: pid: host is not supported (pods are isolated from the host)",
    ]);
  });

  it("reserves every GPU it can name: count all is one GPU, with a warning", () => {
    const r = compose(`services:
  a:
    image: busybox
    deploy:
      resources:
        reservations:
          devices:
            - {driver: nvidia, count: all, capabilities: [gpu]}
`);
    expect(messages(r)).toEqual([
      "app/compose.yaml:8:39: warning: count: all reserves 1 GPU; set resources.gpu in the manifest if it needs more",
    ]);
    expect(r.pod!.containers[0]!.resources.gpu).toBe(1n);
  });
});

describe("ports", () => {
  it("reports a port two services use once, saying what to change", () => {
    const r = compose(`services:
  api: {image: busybox, ports: ["3000:3000"]}
  web: {image: busybox, ports: ["3001:3000"]}
`);
    expect(messages(r)).toEqual([
      `app/compose.yaml:3:33: services "api" and "web" both use port 3000; the containers of a pod share one network: make one of them listen on another port`,
    ]);
  });

  it("warns that a port Compose bound to the host's loopback is published by the pod", () => {
    const r = compose(`services:
  db:
    image: postgres
    ports:
      - "127.0.0.1:5432:5432"
      - {target: 8080, host_ip: "::1"}
      - "0.0.0.0:9000:9000"
`);
    expect(messages(r)).toEqual([
      "app/compose.yaml:5:9: warning: port 5432 is bound to 127.0.0.1 (this host only) in Compose, but the pod publishes it; remove it from ports: if only the pod's containers use it",
      "app/compose.yaml:6:9: warning: port 8080 is bound to ::1 (this host only) in Compose, but the pod publishes it; remove it from ports: if only the pod's containers use it",
    ]);
    expect(r.pod!.containers[0]!.ports.map((p) => p.containerPort)).toEqual([5432, 8080, 9000]);
  });
});
