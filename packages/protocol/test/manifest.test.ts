import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { formatDiagnostic, ManifestError } from "../src/diagnostics.js";
import { checkManifest, formatManifest, parseManifest } from "../src/manifest.js";
import { validPod } from "./arbitraries.js";

const errors = (text: string, file = "pod.yaml") =>
  checkManifest(text, file).diagnostics.map(formatDiagnostic);

const KV = `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: kv
spec:
  containers:
    - name: redis
      image: redis:7-alpine
      command: [redis-server]
      args: ["--appendonly", "yes", "--requirepass", "$(PASSWORD)"]
      workingDir: /data
      env:
        - name: PASSWORD
          valueFrom:
            secret: redis-password
        - name: MODE
          value: 5
      ports:
        - name: redis
          containerPort: 6379
          tcp: {}
      volumeMounts:
        - name: data
          mountPath: /data
      resources:
        cpu: 500m
        memory: 256Mi
        storage: 2Gi
      healthCheck:
        exec:
          command: [redis-cli, ping]
        interval: 5s
        timeout: 500ms
        retries: 5
        startPeriod: 1m30s
  volumes:
    - name: data
      persistent:
        size: 1Gi
    - name: redis-password
      secret:
        file: ./password.txt
`;

describe("valid manifests", () => {
  it("reads every field into the typed pod, with defaults for what is omitted", () => {
    expect(parseManifest(KV, "kv.yaml")).toEqual({
      name: "kv",
      containers: [
        {
          name: "redis",
          image: { kind: "local", name: "redis:7-alpine" },
          command: ["redis-server"],
          args: ["--appendonly", "yes", "--requirepass", "$(PASSWORD)"],
          workingDir: "/data",
          env: [
            { name: "PASSWORD", kind: "secret", secret: "redis-password" },
            { name: "MODE", kind: "value", value: "5" },
          ],
          ports: [{ name: "redis", containerPort: 6379, protocol: "tcp" }],
          volumeMounts: [{ name: "data", mountPath: "/data", readOnly: false }],
          resources: { cpuMillis: 500n, memoryBytes: 256n << 20n, storageBytes: 2n << 30n, gpu: 0n },
          healthCheck: {
            probe: { kind: "exec", command: ["redis-cli", "ping"] },
            intervalMs: 5000n,
            timeoutMs: 500n,
            retries: 5,
            startPeriodMs: 90_000n,
          },
        },
      ],
      volumes: [
        { name: "data", kind: "persistent", sizeBytes: 1n << 30n },
        { name: "redis-password", kind: "secret", source: { kind: "file", path: "./password.txt" } },
      ],
      replicas: { min: 1, max: 1, idleSeconds: 0n },
    });
  });

  it("reads image references, http ports, replicas with scale to zero, anchors and merge keys", () => {
    const pod = parseManifest(
      `apiVersion: trustedpods/v1
kind: Pod
metadata: {name: web}
x-defaults: &res {cpu: 250m, memory: 64Mi}
spec:
  replicas: {min: 0, max: 3, scaleToZeroAfter: 10m}
  containers:
    - name: a
      image: {ipfs: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi, digest: "sha256:${"ab".repeat(32)}"}
      ports: [{containerPort: 8080, http: {hostname: a.example.com}}]
      resources: {<<: *res, gpu: 1}
    - name: b
      image: {listing: 115792089237316195423570985008687907853269984665640564039457584007913129639935}
      ports: [{containerPort: 9000, http: }]
      resources: *res
`,
      "web.yaml",
    );
    expect(pod.replicas).toEqual({ min: 0, max: 3, idleSeconds: 600n });
    expect(pod.containers[0]!.image).toEqual({
      kind: "ipfs",
      cid: "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
      digest: `sha256:${"ab".repeat(32)}`,
    });
    expect(pod.containers[1]!.image).toEqual({ kind: "listing", listingId: (1n << 256n) - 1n });
    expect(pod.containers[0]!.resources).toEqual({
      cpuMillis: 250n,
      memoryBytes: 64n << 20n,
      storageBytes: 1n << 30n,
      gpu: 1n,
    });
    expect(pod.containers[1]!.resources.gpu).toBe(0n);
    expect(pod.containers[0]!.ports).toEqual([
      { containerPort: 8080, protocol: "http", hostname: "a.example.com" },
    ]);
    expect(pod.containers[1]!.ports).toEqual([{ containerPort: 9000, protocol: "http" }]);
  });

  it("formats a manifest that reads back the same", () => {
    const pod = parseManifest(KV, "kv.yaml");
    expect(parseManifest(formatManifest(pod), "again.yaml")).toEqual(pod);
  });
});

describe("invalid manifests: every error, exactly located", () => {
  it("reports all errors at once, in source order", () => {
    const text = `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: Hello_World
spec:
  containers:
    - name: web
      imag: busybox
      working_dir: /srv
      ports:
        - containerPort: 70000
          http: {hostname: Foo.example}
      env:
        - name: B
          valueFrom: {secret: nope}
      resources: {cpu: 0.0001, memory: lots}
      volumeMounts:
        - {name: data, mountPath: relative}
    - name: web
      image: busybox
      ports:
        - containerPort: 80
          http:
        - containerPort: 80
          tcp: {}
  replicas: {min: 3, max: 2}
`;
    expect(errors(text)).toEqual([
      `pod.yaml:4:9: pod name "Hello_World" is not a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit)`,
      `pod.yaml:7:7: a container needs "image"`,
      `pod.yaml:8:7: unknown key "imag" in container (did you mean "image"?)`,
      `pod.yaml:9:7: unknown key "working_dir" in container (did you mean "workingDir"?)`,
      "pod.yaml:11:26: port 70000 is out of range (1-65535)",
      `pod.yaml:12:28: "Foo.example" is not a lowercase DNS hostname`,
      `pod.yaml:15:31: no secret volume named "nope" (no such volumes are declared)`,
      `pod.yaml:16:24: cpu: "0.0001" is finer than one millicore`,
      `pod.yaml:16:40: memory: "lots" is not a quantity (examples: 500m, 2, 0.5, 512Mi, 1Gi)`,
      `pod.yaml:18:18: no volume named "data" (no such volumes are declared)`,
      `pod.yaml:18:35: mountPath "relative" must be an absolute path`,
      `pod.yaml:19:13: duplicate container name "web"`,
      `pod.yaml:24:26: port 80 is already published by container "web" (containers share the pod's network)`,
      "pod.yaml:26:19: min (3) is larger than max (2)",
    ]);
  });

  it("reports YAML syntax errors with their position", () => {
    expect(errors("apiVersion: trustedpods/v1\nkind: Pod\nkind: Pod\nspec: [1, 2\n")).toEqual([
      "pod.yaml:3:1: Map keys must be unique: each key may appear only once in a mapping",
      "pod.yaml:5:1: Flow sequence in block collection must be sufficiently indented and end with a ]: close the [ ] list or { } mapping, and indent its continuation lines more than its key",
    ]);
  });

  it("adds a hint to the YAML mistakes people make most, keeping FILE:LINE:COL", () => {
    const head = "apiVersion: trustedpods/v1\nkind: Pod\n";
    // A tab where YAML wants spaces.
    expect(errors(`${head}metadata:\n\tname: web\n`)).toEqual([
      "pod.yaml:4:1: Tabs are not allowed as indentation: YAML indents with spaces only: replace the tab at the start of this line with spaces",
    ]);
    // A key out of line with the keys above it.
    expect(errors(`${head}spec:\n  containers:\n    - name: a\n   image: x\n`)).toEqual([
      "pod.yaml:6:1: All mapping items must start at the same column: this line's indentation does not line up with the keys above it: keys of one mapping must start in the same column (list items under their key, indented alike)",
    ]);
    // A quote that never closes.
    const [quote] = errors(`${head}metadata:\n  name: "web\nspec: {}\n`);
    expect(quote).toMatch(
      /^pod\.yaml:\d+:\d+: Missing closing "quote: a quoted string is not closed: add the closing quote/,
    );
    // No space after the colon: on a line of its own YAML reads one string where a mapping belongs...
    expect(errors(`${head}metadata:\n  name:web\n`)).toContain(
      'pod.yaml:4:3: metadata must be a mapping (it is the string "name:web": a key needs a space after its colon, "name: web" not "name:web")',
    );
    // ...and followed by another key, a key that spans lines.
    expect(errors(`${head}metadata:\n  name:web\n  labels: {}\n`)[0]).toBe(
      'pod.yaml:4:3: Implicit keys need to be on a single line: a key needs a space after its colon ("name: web", not "name:web")',
    );
    // A nested mapping on the key's own line.
    expect(errors(`${head}metadata: name: web\n`)[0]).toMatch(
      /^pod\.yaml:3:11: Nested mappings are not allowed in compact mappings: a value on the same line as its key cannot hold another key/,
    );
  });

  it("checks the header, types and required keys", () => {
    expect(
      errors(`apiVersion: v1
kind: Deployment
metadata: {}
spec:
  containers:
    - name: a
      image: [busybox]
      command: run
      ports: [{containerPort: "80", http: {}, tcp: {}}]
  volumes:
    - name: v
    - name: w
      persistent: {}
      emptyDir: {}
`),
    ).toEqual([
      `pod.yaml:1:13: apiVersion must be "trustedpods/v1", not "v1"`,
      `pod.yaml:2:7: kind must be "Pod", not "Deployment"`,
      `pod.yaml:3:11: metadata needs "name"`,
      "pod.yaml:7:14: image must be a string",
      "pod.yaml:8:16: command must be a list",
      "pod.yaml:9:31: containerPort must be a non-negative integer",
      `pod.yaml:9:47: a port is one of "http", "tcp" or "udp", not several`,
      `pod.yaml:11:7: a volume needs "emptyDir", "persistent" or "secret"`,
      "pod.yaml:13:7: a volume has one kind, not emptyDir and persistent",
    ]);
  });

  it("checks scaling, secrets and health checks", () => {
    expect(
      errors(`apiVersion: trustedpods/v1
kind: Pod
metadata: {name: p}
spec:
  replicas: {min: 0, max: 2}
  containers:
    - name: a
      image: busybox
      env:
        - {name: X, value: "1"}
        - {name: X, valueFrom: {secret: data}}
        - {name: "1BAD", value: "2"}
      healthCheck:
        http: {path: health, port: 0}
        interval: 5 minutes
  volumes:
    - {name: data, persistent: {size: 1Gi}}
    - {name: key, secret: {file: ./key.txt}}
`),
    ).toEqual([
      "pod.yaml:5:19: scaling to zero needs an http port: an HTTP request is what wakes the pod",
      `pod.yaml:11:18: duplicate environment variable "X"`,
      `pod.yaml:11:41: volume "data" is not a secret volume`,
      `pod.yaml:12:18: "1BAD" is not an environment variable name`,
      `pod.yaml:14:22: "health" is not an absolute URL path`,
      "pod.yaml:14:36: port 0 is out of range (1-65535)",
      `pod.yaml:15:19: interval: "5 minutes" is not a duration (examples: 30s, 1m30s, 500ms)`,
    ]);
  });

  it("checks that secret files exist when asked to", () => {
    const result = checkManifest(KV, "kv.yaml", { fileExists: () => false });
    expect(result.diagnostics.map(formatDiagnostic)).toEqual([
      `kv.yaml:42:15: secret file "./password.txt" does not exist`,
    ]);
    expect(result.pod).toBeUndefined();
  });

  it("throws a ManifestError carrying the diagnostics", () => {
    try {
      parseManifest("", "empty.yaml");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ManifestError);
      expect((e as ManifestError).diagnostics).toEqual([
        {
          file: "empty.yaml",
          line: 1,
          col: 1,
          code: "MISSING_KEY",
          severity: "error",
          message: "the manifest is empty",
        },
      ]);
    }
  });

  it("stops merge-key bombs with an error instead of exhausting time", () => {
    const lines = ["x-m0: &m0 {cpu: 1}"];
    for (let i = 1; i < 12; i++)
      lines.push(
        `x-m${i}: &m${i} {<<: [${Array(10)
          .fill(`*m${i - 1}`)
          .join(", ")}]}`,
      );
    const text = `apiVersion: trustedpods/v1\nkind: Pod\nmetadata: {name: p}\n${lines.join("\n")}
spec:\n  containers: [{name: a, image: busybox, resources: *m11}]\n`;
    expect(errors(text, "bomb.yaml")).toEqual([
      "bomb.yaml:5:32: document is too complex (too many nodes or aliases)",
    ]);
  });
});

describe("the parser fails only with its typed errors", () => {
  const check = (text: string) => {
    try {
      parseManifest(text, "fuzz.yaml");
    } catch (e) {
      expect(e).toBeInstanceOf(ManifestError);
      for (const d of (e as ManifestError).diagnostics) {
        expect(d.line).toBeGreaterThanOrEqual(1);
        expect(d.col).toBeGreaterThanOrEqual(1);
      }
    }
  };

  it("on arbitrary strings", () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { numRuns: 500 });
  });

  it("on arbitrary YAML-ish structures", () => {
    const key = fc.constantFrom(
      "apiVersion",
      "kind",
      "metadata",
      "spec",
      "name",
      "containers",
      "image",
      "ports",
      "containerPort",
      "http",
      "tcp",
      "volumes",
      "env",
      "value",
      "valueFrom",
      "secret",
      "resources",
      "cpu",
      "replicas",
      "healthCheck",
      "<<",
      "x",
    );
    const leaf = fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
    );
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: "small" }, leaf, tie("arr"), tie("obj")),
      arr: fc.array(tie("tree"), { maxLength: 4 }),
      obj: fc.dictionary(key, tie("tree"), { maxKeys: 5 }),
    }));
    fc.assert(
      fc.property(tree, (value) => check(stringify(value))),
      { numRuns: 500 },
    );
  });

  it("on mutations of valid manifests", () => {
    fc.assert(
      fc.property(validPod(), fc.nat(), fc.string({ maxLength: 5 }), (pod, at, junk) => {
        const text = formatManifest(pod);
        const i = at % (text.length + 1);
        check(text.slice(0, i) + junk + text.slice(i + junk.length));
      }),
      { numRuns: 300 },
    );
  });
});
