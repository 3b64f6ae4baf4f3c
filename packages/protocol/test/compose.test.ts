import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type ComposeImport, importCompose } from "../src/compose/index.js";
import { formatDiagnostic } from "../src/diagnostics.js";
import { parseManifest } from "../src/manifest.js";
import { parseDotEnv, ShellSplitError, shellSplit } from "../src/shell.js";

const fixtures = resolve(import.meta.dirname, "fixtures/compose");
const UPDATE = process.env.TPOD_UPDATE_FIXTURES === "1";

/** Imports a fixture the way the CLI does: .env, env_file and bind sources relative to its directory. */
function importFixture(name: string): ComposeImport {
  const dir = join(fixtures, name);
  const file = join(dir, "docker-compose.yml");
  const dotEnv = join(dir, ".env");
  return importCompose(readFileSync(file, "utf8"), `${name}/docker-compose.yml`, {
    env: existsSync(dotEnv) ? parseDotEnv(readFileSync(dotEnv, "utf8")).vars : {},
    readFile: (p) => (existsSync(join(dir, p)) ? readFileSync(join(dir, p), "utf8") : undefined),
    pathKind: (p) => {
      if (!existsSync(join(dir, p))) return "missing";
      return statSync(join(dir, p)).isDirectory() ? "directory" : "file";
    },
  });
}

function expectFile(path: string, actual: string): void {
  if (UPDATE) writeFileSync(path, actual);
  expect(actual).toBe(readFileSync(path, "utf8"));
}

describe("Compose import of realistic files: exact manifest and diagnostics", () => {
  const names = readdirSync(fixtures).sort();
  it("has the fixtures", () => {
    expect(names).toEqual([
      "build-errors",
      "builds",
      "unsupported",
      "web-postgres-redis",
      "wordpress",
      "worker-queue",
    ]);
  });

  it.each(names)("%s", (name) => {
    const result = importFixture(name);
    expectFile(
      join(fixtures, name, "expected-diagnostics.txt"),
      result.diagnostics.map((d) => `${formatDiagnostic(d)}\n`).join(""),
    );
    if (name === "unsupported" || name === "build-errors") {
      expect(result.manifest).toBeUndefined();
      return;
    }
    expect(result.manifest).toBeDefined();
    expectFile(join(fixtures, name, "expected-pod.yaml"), result.manifest!);
    // What import prints is a valid manifest that reads back as the same pod.
    expect(parseManifest(result.manifest!, "imported.yaml")).toEqual(result.pod);
  });
});

describe("Compose build: forms", () => {
  it("reads every build form into the builds to run, tagged as the manifest names the images", () => {
    const r = importFixture("builds");
    expect(r.builds).toEqual([
      {
        service: "web",
        container: "web",
        image: "builds-web",
        context: "./web",
        args: {},
        labels: {},
        noCache: false,
        line: 6,
        col: 5,
      },
      {
        service: "api",
        container: "api",
        image: "example/api:1.2.3",
        context: "./api",
        dockerfile: "docker/Dockerfile.prod",
        target: "release",
        args: { VERSION: "1.2.3" },
        labels: { "org.example.team": "api" },
        noCache: true,
        line: 15,
        col: 5,
      },
      {
        service: "worker",
        container: "worker",
        image: "builds-worker",
        context: "worker",
        args: { MODE: "batch", VERSION: "1.2.3" },
        labels: {},
        noCache: false,
        line: 31,
        col: 5,
      },
      {
        service: "inline",
        container: "inline",
        image: "builds-inline",
        context: ".",
        dockerfileInline: 'FROM localhost/base:1\nCMD ["sleep", "inf"]\n',
        args: {},
        labels: {},
        noCache: false,
        line: 38,
        col: 5,
      },
      {
        service: "dns",
        container: "dns",
        image: "builds-dns",
        context: "dns",
        args: {},
        labels: {},
        noCache: false,
        line: 44,
        col: 5,
      },
    ]);
    expect(r.pod!.containers.map((c) => c.image)).toEqual(
      r.builds.map((b) => ({ kind: "local", name: b.image })),
    );
    expect(r.pod!.containers.at(-1)!.ports).toEqual([
      { containerPort: 53, protocol: "udp" },
      { containerPort: 53, protocol: "tcp" },
      { containerPort: 6000, protocol: "udp" },
      { containerPort: 6001, protocol: "udp" },
    ]);
  });

  it("refuses what cannot be built or run here, and builds nothing", () => {
    const r = importFixture("build-errors");
    expect(r.builds).toEqual([]);
    expect(r.pod).toBeUndefined();
  });
});

describe("Compose import details", () => {
  const compose = (text: string, env: Record<string, string> = {}) =>
    importCompose(text, "app/compose.yaml", { env });

  it("interpolates variables like Compose does", () => {
    const r = compose(
      `services:
  a:
    image: "busybox:\${TAG:-1.36}"
    environment:
      A: \${SET}
      B: \${UNSET-fallback}
      C: \${EMPTY:-fallback}
      D: \${EMPTY-kept}
      E: $$literal
      F: \${SET:+alt}
      G: $SET/x
`,
      { SET: "yes", EMPTY: "" },
    );
    expect(r.diagnostics).toEqual([]);
    expect(r.pod!.containers[0]!.image).toEqual({ kind: "local", name: "busybox:1.36" });
    expect(r.pod!.containers[0]!.env.map((e) => (e.kind === "value" ? `${e.name}=${e.value}` : ""))).toEqual([
      "A=yes",
      "B=fallback",
      "C=fallback",
      "D=",
      "E=$literal",
      "F=alt",
      "G=yes/x",
    ]);
  });

  it("warns about unset variables and fails on required ones, naming the line", () => {
    const r = compose(
      `services:\n  a:\n    image: busybox\n    command: echo $NOPE\n    working_dir: \${WD:?needed}\n`,
    );
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([
      "app/compose.yaml:4:14: warning: variable NOPE is not set: using an empty string (set it in .env)",
      "app/compose.yaml:5:18: variable WD is required: needed",
    ]);
    expect(r.manifest).toBeUndefined();
  });

  it("maps cpus and memory in Compose units, and entrypoint to command", () => {
    const r = compose(`services:
  a:
    image: busybox
    entrypoint: /bin/sh -c
    command: ["echo hi"]
    cpus: 0.25
    mem_limit: 300m
`);
    const c = r.pod!.containers[0]!;
    expect([c.command, c.args]).toEqual([["/bin/sh", "-c"], ["echo hi"]]);
    expect(c.resources).toMatchObject({ cpuMillis: 250n, memoryBytes: 300n << 20n });
  });

  it("fails when two services use the same port", () => {
    const r = compose(`services:
  a: {image: busybox, ports: ["8080:80"]}
  b: {image: busybox, expose: ["80"]}
`);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([
      "app/compose.yaml:3:23: warning: expose: not published; the containers of a pod reach each other on localhost (use ports: to publish)",
      `app/compose.yaml:3:32: services "a" and "b" both use port 80; the containers of a pod share one network: make one of them listen on another port`,
    ]);
  });

  it("never throws on arbitrary Compose-like input", () => {
    const key = fc.constantFrom(
      "services",
      "image",
      "ports",
      "volumes",
      "environment",
      "command",
      "healthcheck",
      "test",
      "deploy",
      "secrets",
      "web",
      "<<",
      "x-a",
      "extends",
      "service",
      "a",
    );
    const leaf = fc.oneof(
      fc.constant("busybox"),
      fc.constant("8080:80"),
      fc.string({ maxLength: 10 }),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.constant(`\${A:-b}`),
      fc.constant("./x:/y:ro"),
    );
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: "small" }, leaf, tie("arr"), tie("obj")),
      arr: fc.array(tie("tree"), { maxLength: 4 }),
      obj: fc.dictionary(key, tie("tree"), { maxKeys: 5 }),
    }));
    fc.assert(
      fc.property(tree, (value) => {
        const r = importCompose(stringify(value), "f.yml");
        expect(Array.isArray(r.diagnostics)).toBe(true);
        // Whatever import accepts is a valid manifest of the same pod.
        if (r.manifest) expect(parseManifest(r.manifest, "m.yaml")).toEqual(r.pod);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => void importCompose(text, "f.yml")),
      { numRuns: 300 },
    );
  });
});

describe("shell splitting and .env files", () => {
  it.each([
    [`echo "a b" 'c d' e\\ f`, ["echo", "a b", "c d", "e f"]],
    [`sh -c "echo \\"hi\\" \\$HOME"`, ["sh", "-c", 'echo "hi" $HOME']],
    [`a ''  "" b`, ["a", "", "", "b"]],
    [`nginx -g 'daemon off;'`, ["nginx", "-g", "daemon off;"]],
    [`  `, []],
  ])("%s", (input, expected) => {
    expect(shellSplit(input)).toEqual(expected);
  });

  it("refuses unterminated quotes", () => {
    expect(() => shellSplit(`echo 'x`)).toThrow(ShellSplitError);
    expect(() => shellSplit(`echo "x`)).toThrow(ShellSplitError);
  });

  it("reads .env files", () => {
    expect(parseDotEnv(`# c\nA=1\nexport B="x\\ny"\nC='lit $x' \nD=v # comment\nbad line\n`)).toEqual({
      vars: { A: "1", B: "x\ny", C: "lit $x", D: "v" },
      errors: [{ line: 6, message: `"bad line" is not KEY=VALUE` }],
    });
  });
});
