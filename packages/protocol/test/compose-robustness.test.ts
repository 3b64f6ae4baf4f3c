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
import { parseDotEnv } from "../src/shell.js";

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
    expect(parseManifest(r.manifest!, "m.yaml")).toEqual(r.pod);
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

  it("counts the GPUs a reservation names by device_ids", () => {
    const r = compose(`services:
  a:
    image: busybox
    deploy:
      resources:
        reservations:
          devices:
            - {driver: nvidia, device_ids: ["0", "3"], capabilities: [gpu]}
`);
    expect(messages(r)).toEqual([]);
    expect(r.pod!.containers[0]!.resources.gpu).toBe(2n);
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

describe("warnings a large file stays readable with", () => {
  it("warns once per unset variable, at its first use", () => {
    const r = compose(`services:
  a:
    image: "busybox:1\${TAG}"
    command: ["ls", "\${ROOT}/"]
    environment:
      HOME_DIR: \${ROOT}/home
      DATA_DIR: \${ROOT}/data
      TAG: \${TAG}
`);
    expect(messages(r)).toEqual([
      "app/compose.yaml:3:12: warning: variable TAG is not set: using an empty string (set it in .env)",
      "app/compose.yaml:4:21: warning: variable ROOT is not set: using an empty string (set it in .env)",
    ]);
  });

  it("names a service's pass-through variables without a value in one warning", () => {
    const r = compose(
      `services:
  a:
    image: busybox
    environment:
      - SET_HERE
      - TZ
      - LANG
  b:
    image: busybox
    environment: {SET_HERE: null, ONLY_B: ~}
`,
      { SET_HERE: "v" },
    );
    expect(messages(r)).toEqual([
      "app/compose.yaml:4:5: warning: environment TZ, LANG have no value (Compose takes them from the shell): dropped; set them in .env",
      "app/compose.yaml:10:5: warning: environment ONLY_B has no value (Compose takes it from the shell): dropped; set it in .env",
    ]);
    expect(r.pod!.containers.map((c) => c.env.map((e) => e.name))).toEqual([["SET_HERE"], ["SET_HERE"]]);
  });
});

describe("what Compose does that a pod does differently", () => {
  it("points at connection strings that name a service by a name the pod does not resolve", () => {
    const r = compose(`services:
  my_db:
    image: postgres
  app:
    image: busybox
    environment:
      DATABASE_URL: postgres://user:pw@my_db:5432/my_db
      DB_HOST: my_db
      DB_NAME: my_db
    command: ["wait-for", "my_db:5432"]
`);
    expect(messages(r)).toEqual([
      'app/compose.yaml:2:3: warning: service "my_db" becomes container "my-db" (container names are DNS labels)',
      'app/compose.yaml:7:7: warning: "my_db" names service "my_db", which the pod resolves as "my-db" (or localhost): write my-db here',
      'app/compose.yaml:8:7: warning: "my_db" names service "my_db", which the pod resolves as "my-db" (or localhost): write my-db here',
      'app/compose.yaml:10:27: warning: "my_db" names service "my_db", which the pod resolves as "my-db" (or localhost): write my-db here',
    ]);
  });

  it("warns that a service others wait to complete is restarted in a pod", () => {
    const r = compose(`services:
  migrate:
    image: busybox
    command: ["true"]
  app:
    image: busybox
    depends_on:
      migrate:
        condition: service_completed_successfully
  worker:
    image: busybox
    depends_on:
      migrate: {condition: service_completed_successfully}
`);
    expect(messages(r)).toEqual([
      "app/compose.yaml:7:5: warning: depends_on: dropped; containers of a pod start together, without ordering",
      'app/compose.yaml:8:7: warning: service "migrate" runs to completion before "app" starts in Compose; in a pod it starts with the others and is restarted each time it exits: run its work in the entrypoint of the service that needs it, or make it idempotent',
      "app/compose.yaml:12:5: warning: depends_on: dropped; containers of a pod start together, without ordering",
    ]);
  });

  it("imports the services of the profiles COMPOSE_PROFILES names, as Compose does", () => {
    const text = `services:
  app: {image: busybox}
  debug: {image: busybox, profiles: [debug]}
  tools: {image: busybox, profiles: [tools, debug]}
  admin: {image: busybox, profiles: [admin]}
`;
    const r = compose(text, { COMPOSE_PROFILES: "debug" });
    expect(r.pod!.containers.map((c) => c.name)).toEqual(["app", "debug", "tools"]);
    expect(messages(r)).toEqual([
      'app/compose.yaml:5:27: warning: service "admin" is only started with profile admin: not imported (set COMPOSE_PROFILES=admin in .env to import it)',
    ]);
    const all = compose(text, {}, { profiles: ["*"] });
    expect(all.pod!.containers.map((c) => c.name)).toEqual(["app", "debug", "tools", "admin"]);
  });

  it("says how to choose a profile when every service has one", () => {
    const r = compose(`services:
  a: {image: busybox, profiles: [x]}
`);
    expect(messages(r)).toEqual([
      "app/compose.yaml:2:3: no services to import: every service has profiles; set COMPOSE_PROFILES in .env to the profiles to import",
      'app/compose.yaml:2:23: warning: service "a" is only started with profile x: not imported (set COMPOSE_PROFILES=x in .env to import it)',
    ]);
  });
});

describe("read-only bind mounts of host directories", () => {
  const tree: Record<string, string[]> = {
    "./config": ["app.conf", "conf.d/extra.conf"],
    "./big": Array.from({ length: 17 }, (_, i) => `f${i}.txt`),
    "./empty": [],
  };
  const options: ComposeImportOptions = {
    pathKind: (p) => (p in tree ? "directory" : "missing"),
    listFiles: (p) => tree[p],
  };

  it("ships each file of a small directory as a secret volume at its path under the target", () => {
    const r = compose(
      `services:
  a:
    image: busybox
    volumes:
      - ./config:/etc/app:ro
`,
      {},
      options,
    );
    expect(messages(r)).toEqual([
      "app/compose.yaml:5:9: warning: read-only bind mount of host directory ./config: its 2 files become secret volumes (encrypted, read-only in the pod); files added to it later are not seen",
    ]);
    expect(r.pod!.containers[0]!.volumeMounts).toEqual([
      { name: "app-conf", mountPath: "/etc/app/app.conf", readOnly: true },
      { name: "extra-conf", mountPath: "/etc/app/conf.d/extra.conf", readOnly: true },
    ]);
    expect(r.pod!.volumes).toEqual([
      { name: "app-conf", kind: "secret", source: { kind: "file", path: "./config/app.conf" } },
      { name: "extra-conf", kind: "secret", source: { kind: "file", path: "./config/conf.d/extra.conf" } },
    ]);
    expect(parseManifest(r.manifest!, "m.yaml")).toEqual(r.pod);
  });

  it("refuses a directory with too many files, or none, saying what to do", () => {
    const r = compose(
      `services:
  a:
    image: busybox
    volumes:
      - ./big:/data:ro
      - ./empty:/empty:ro
`,
      {},
      options,
    );
    expect(messages(r)).toEqual([
      "app/compose.yaml:5:9: read-only bind mount of host directory ./big: it has 17 files, more than the 16 a pod can take as secret volumes; copy them into the image",
      "app/compose.yaml:6:9: warning: read-only bind mount of host directory ./empty dropped: it has no files",
    ]);
  });
});

describe("pod limits", () => {
  it("says how many services there are when a pod cannot hold them all", () => {
    const services = Array.from({ length: 17 }, (_, i) => `  s${i}: {image: busybox}`).join("\n");
    const r = compose(`services:\n${services}\n`);
    expect(messages(r)).toEqual([
      "app/compose.yaml:1:1: 17 services to import, but a pod has at most 16 containers: put the services it does not need under profiles:, or split the file",
    ]);
  });
});

describe("names other services connect to", () => {
  it("points at values that use a container_name, hostname or network alias the pod does not resolve", () => {
    const r = compose(`services:
  db:
    image: postgres
    container_name: app_postgres
    hostname: pg-primary
    networks:
      backend:
        aliases: [database]
  cache:
    image: redis
    container_name: cache
  app:
    image: busybox
    environment:
      DB: postgres://u@app_postgres:5432/app
      REPLICA_HOST: pg-primary
      LABEL: database
      OTHER: database:5432
      CACHE: cache:6379
networks:
  backend: {}
`);
    expect(messages(r).filter((m) => m.includes("resolves"))).toEqual([
      'app/compose.yaml:15:7: warning: "app_postgres" names service "db" (its container_name), which the pod resolves as "db" (or localhost): write db here',
      'app/compose.yaml:16:7: warning: "pg-primary" names service "db" (its hostname), which the pod resolves as "db" (or localhost): write db here',
      'app/compose.yaml:18:7: warning: "database" names service "db" (its network alias), which the pod resolves as "db" (or localhost): write db here',
    ]);
  });
});

describe("writable bind mounts of host directories", () => {
  const tree: Record<string, string[]> = {
    "./prometheus": ["prometheus.yml", "rules/alerts.yml"],
    "./data": [],
    "./mixed": ["settings.yaml", "cache.db"],
    ".": ["Dockerfile", "app.py"],
  };
  const options: ComposeImportOptions = {
    pathKind: (p) => (p in tree ? "directory" : p.endsWith("Dockerfile") ? "file" : "missing"),
    listFiles: (p) => tree[p],
  };

  it("gives services that mount the same host directory the same volume, as Compose shares it", () => {
    const r = compose(
      `x-common: &common
  image: busybox
  volumes: ["./data:/shared", "./data/:/again"]
services:
  a: *common
  b: *common
  c:
    image: busybox
    volumes: ["./data/../data:/other"]
`,
      {},
      options,
    );
    expect(messages(r)).toEqual([
      'app/compose.yaml:3:13: warning: bind mount of host directory ./data becomes persistent volume "data" of 1Gi, initially empty',
      'app/compose.yaml:3:31: warning: bind mount of host directory ./data/ becomes persistent volume "data" of 1Gi, initially empty',
      'app/compose.yaml:9:15: warning: bind mount of host directory ./data/../data becomes persistent volume "data" of 1Gi, initially empty',
    ]);
    expect(r.pod!.volumes.map((v) => v.name)).toEqual(["data"]);
    expect(r.pod!.containers.map((c) => c.volumeMounts.map((m) => m.name))).toEqual([
      ["data", "data"],
      ["data", "data"],
      ["data"],
    ]);
  });

  it("drops a source directory mounted over the image built from it, as for read-only mounts", () => {
    const r = compose(
      `services:
  web:
    build: .
    volumes:
      - .:/code
`,
      {},
      options,
    );
    expect(messages(r)).toEqual([
      "app/compose.yaml:5:9: warning: bind mount of . dropped: it is inside the build context ., so the image built from it has these files (rebuild to change them; what the program writes there does not outlive the replica)",
    ]);
    expect(r.pod!.containers[0]!.volumeMounts).toEqual([]);
  });

  it("keeps a directory inside the build context as a volume when another service mounts it too", () => {
    const r = compose(
      `services:
  editor:
    build: .
    volumes: ["./shared:/app/data"]
  reader:
    image: busybox
    volumes: ["./shared:/etc/flags"]
`,
      {},
      {
        ...options,
        pathKind: (p) =>
          p === "./shared" || p === "." ? "directory" : p.endsWith("Dockerfile") ? "file" : "missing",
      },
    );
    expect(messages(r)).toEqual([
      'app/compose.yaml:4:15: warning: bind mount of host directory ./shared becomes persistent volume "shared" of 1Gi, initially empty',
      'app/compose.yaml:7:15: warning: bind mount of host directory ./shared becomes persistent volume "shared" of 1Gi, initially empty',
    ]);
    expect(r.pod!.containers.map((c) => c.volumeMounts.map((m) => m.name))).toEqual([["shared"], ["shared"]]);
  });

  it("drops the anonymous volume that kept the image's node_modules visible under a dropped source mount", () => {
    const r = compose(
      `services:
  web:
    build: .
    volumes:
      - ./:/usr/src/app
      - /usr/src/app/node_modules
      - /cache
`,
      {},
      options,
    );
    expect(messages(r)).toEqual([
      "app/compose.yaml:5:9: warning: bind mount of ./ dropped: it is inside the build context ., so the image built from it has these files (rebuild to change them; what the program writes there does not outlive the replica)",
      "app/compose.yaml:6:9: warning: anonymous volume at /usr/src/app/node_modules dropped: it kept the image's files visible under the bind mount at /usr/src/app, which is dropped",
      "app/compose.yaml:7:9: warning: anonymous volume at /cache becomes an emptyDir (its data does not outlive the replica)",
    ]);
    expect(r.pod!.containers[0]!.volumeMounts.map((m) => m.mountPath)).toEqual(["/cache"]);
  });

  it("counts a README among configuration files (temporal's dynamicconfig)", () => {
    const r = compose(
      `services:
  t:
    image: busybox
    volumes: ["./dyn:/etc/dyn"]
`,
      {},
      { pathKind: () => "directory", listFiles: () => ["README.md", "development.yaml"] },
    );
    expect(r.pod!.containers[0]!.volumeMounts.map((m) => m.mountPath)).toEqual([
      "/etc/dyn/README.md",
      "/etc/dyn/development.yaml",
    ]);
  });

  it("ships a directory of configuration files read-only, and keeps data directories as volumes", () => {
    const r = compose(
      `services:
  prom:
    image: prom/prometheus
    volumes:
      - ./prometheus:/etc/prometheus
      - ./data:/prometheus
      - ./mixed:/var/lib/app
`,
      {},
      options,
    );
    expect(messages(r)).toEqual([
      "app/compose.yaml:5:9: warning: bind mount of host directory ./prometheus: its 2 configuration files become secret volumes (encrypted, read-only in the pod: a program that writes there fails); files added to it later are not seen",
      'app/compose.yaml:6:9: warning: bind mount of host directory ./data becomes persistent volume "data" of 1Gi, initially empty',
      'app/compose.yaml:7:9: warning: bind mount of host directory ./mixed becomes persistent volume "mixed" of 1Gi, initially empty: its 2 files are not copied (copy them into the image, or mount it read-only to ship them)',
    ]);
    expect(r.pod!.containers[0]!.volumeMounts.map((m) => `${m.name} ${m.mountPath} ${m.readOnly}`)).toEqual([
      "prometheus-yml /etc/prometheus/prometheus.yml true",
      "alerts-yml /etc/prometheus/rules/alerts.yml true",
      "data /prometheus false",
      "mixed /var/lib/app false",
    ]);
  });
});

describe("extension fields and volume options", () => {
  it("allows x- keys in every mapping, as the Compose spec does", () => {
    const r = compose(`services:
  a:
    image: busybox
    x-owner: team-a
    build:
      context: .
      x-cache: warm
    ports:
      - {target: 8080, x-note: web}
    healthcheck:
      test: ["CMD", "true"]
      x-why: liveness
    env_file:
      - {path: ./a.env, required: false, x-origin: vault}
    volumes:
      - {type: tmpfs, target: /tmp, x-size-note: small}
    secrets:
      - {source: token, x-rotated: weekly}
    deploy:
      x-tier: gold
      resources:
        x-note: sized
        limits: {memory: 64m, x-note: tight}
secrets:
  token: {file: ./token.txt}
`);
    expect(messages(r)).toEqual([]);
  });

  it("refuses a volume subpath, which a pod volume cannot mount", () => {
    const r = compose(`services:
  a:
    image: busybox
    volumes:
      - type: volume
        source: data
        target: /data
        volume: {subpath: app, nocopy: true}
volumes:
  data: {driver_opts: {size: 1g}}
`);
    expect(messages(r)).toEqual([
      "app/compose.yaml:8:18: volume.subpath: not supported (a pod mounts whole volumes); mount the volume at a parent path, or use a volume of its own",
    ]);
  });

  it("refuses mounting the host's root or its container stores", () => {
    const r = compose(`services:
  a:
    image: busybox
    volumes:
      - /:/host:ro
      - /var/lib/docker:/var/lib/docker:ro
      - /lib/modules:/lib/modules
`);
    expect(messages(r).map((m) => m.replace(/:.*?: (bind mount of \S+).*/, ": $1"))).toEqual([
      "app/compose.yaml: bind mount of /:",
      "app/compose.yaml: bind mount of /var/lib/docker:",
      "app/compose.yaml: bind mount of /lib/modules:",
    ]);
  });
});

describe("which published ports are HTTP", () => {
  it("takes the web UIs and HTTP APIs of common images for HTTP, databases and brokers for TCP", () => {
    const r = compose(`services:
  a:
    image: busybox
    ports: ["9090", "5601", "9200", "15672", "16686", "5678", "3100", "5432:5432", "6379", "9092"]
`);
    expect(r.pod!.containers[0]!.ports.map((p) => `${p.containerPort}/${p.protocol}`)).toEqual([
      "9090/http",
      "5601/http",
      "9200/http",
      "15672/http",
      "16686/http",
      "5678/http",
      "3100/http",
      "5432/tcp",
      "6379/tcp",
      "9092/tcp",
    ]);
  });
});

describe("extends in the same file", () => {
  it("merges the base service under the extending one, as Compose does", () => {
    const r = compose(`x-note: bases are services too
services:
  base:
    image: busybox
    profiles: [template]
    command: ["sleep", "inf"]
    environment: {MODE: base, LOG: info}
    ports: ["8080"]
    volumes: ["./conf.yml:/etc/app.yml", "cache:/cache"]
    healthcheck: {test: ["CMD", "true"], interval: 5s}
  api:
    extends: base
    profiles: !reset []
    command: ["serve"]
    environment: [MODE=api, EXTRA=1]
    ports: ["9000:9000"]
    volumes: ["other:/cache"]
    healthcheck: {retries: 9}
  worker:
    extends: {service: api}
    ports: !reset []
volumes:
  cache: {driver_opts: {size: 1g}}
  other: {driver_opts: {size: 1g}}
`);
    expect(messages(r).filter((m) => !m.includes("bind mount"))).toEqual([
      'app/compose.yaml:5:5: warning: service "base" is only started with profile template: not imported (set COMPOSE_PROFILES=template in .env to import it)',
    ]);
    const [api, worker] = r.pod!.containers;
    expect([api!.name, worker!.name]).toEqual(["api", "worker"]);
    expect(api!.args).toEqual(["serve"]);
    expect(api!.env.map((e) => (e.kind === "value" ? `${e.name}=${e.value}` : ""))).toEqual([
      "MODE=api",
      "LOG=info",
      "EXTRA=1",
    ]);
    expect(api!.ports.map((p) => p.containerPort)).toEqual([8080, 9000]);
    expect(api!.volumeMounts.map((m) => `${m.name}:${m.mountPath}`)).toEqual([
      "conf-yml:/etc/app.yml",
      "other:/cache",
    ]);
    expect(api!.healthCheck).toMatchObject({ intervalMs: 5000n, retries: 9 });
    expect(worker!.args).toEqual(["serve"]);
    expect(worker!.ports).toEqual([]);
  });

  it("refuses extends from another file, an unknown service and a cycle, at the extends key", () => {
    const r = compose(`services:
  a:
    extends: {file: common.yml, service: web}
    image: busybox
  b:
    extends: nope
    image: busybox
  c:
    extends: d
    image: busybox
  d:
    extends: c
    image: busybox
`);
    expect(messages(r)).toEqual([
      "app/compose.yaml:3:5: extends: from another file (common.yml) is not supported; copy the service into this file",
      'app/compose.yaml:6:5: extends: no service "nope" in this file',
      'app/compose.yaml:12:5: extends: service "d" extends itself through "c"',
    ]);
  });
});

describe("entrypoint, cpus and names as Compose reads them", () => {
  it("runs the command without the image's entrypoint when entrypoint is cleared", () => {
    const r = compose(`services:
  a:
    image: busybox
    entrypoint: ""
    command: ["sleep", "1"]
  b:
    image: busybox
    entrypoint: []
`);
    const [a, b] = r.pod!.containers;
    expect([a!.command, a!.args]).toEqual([["sleep", "1"], []]);
    expect(messages(r)).toEqual([
      "app/compose.yaml:8:5: warning: entrypoint: [] clears the image's entrypoint, but without a command there is nothing to run in its place: the pod runs the image's entrypoint (set command: in the manifest)",
    ]);
    expect([b!.command, b!.args]).toEqual([[], []]);
  });

  it("takes cpus: 0 for no limit, as Docker does", () => {
    const r = compose(`services:
  a: {image: busybox, cpus: 0}
`);
    expect(messages(r)).toEqual([
      "app/compose.yaml:2:29: warning: cpus: 0 sets no limit in Compose; the pod reserves 500m (change resources.cpu in the manifest)",
    ]);
    expect(r.pod!.containers[0]!.resources.cpuMillis).toBe(500n);
  });

  it("says which services collide when their names become the same container name", () => {
    const r = compose(`services:
  my_app: {image: busybox}
  my-app: {image: busybox}
`);
    expect(messages(r)).toEqual([
      'app/compose.yaml:2:3: warning: service "my_app" becomes container "my-app" (container names are DNS labels)',
      'app/compose.yaml:3:3: services "my_app" and "my-app" both become container "my-app" (container names are DNS labels): rename one',
    ]);
  });
});

describe(".env and env_file values", () => {
  it("interpolates unquoted and double-quoted values with the variables before them, as Compose does", () => {
    expect(
      parseDotEnv(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a .env file's text
        "HOST=db\nURL=http://${HOST}:8080/$HOST\nX=${MISSING:-fallback}\nQ=\"at ${HOST}\"\nS='lit ${HOST}'\nP=${HOST:+set}\n",
      ).vars,
    ).toEqual({
      HOST: "db",
      URL: "http://db:8080/db",
      X: "fallback",
      Q: "at db",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: kept literally (single-quoted)
      S: "lit ${HOST}",
      P: "set",
    });
  });

  it("reads env_file values with the project's variables (.env) where the file does not set them", () => {
    const r = compose(
      `services:
  a:
    image: busybox
    env_file: app.env
`,
      { DOMAIN: "example.org" },
      {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an env_file's text
        readFile: (p) => (p === "app.env" ? "PORT=8080\nPUBLIC_URL=https://${DOMAIN}:${PORT}\n" : undefined),
      },
    );
    expect(messages(r)).toEqual([]);
    expect(r.pod!.containers[0]!.env.map((e) => (e.kind === "value" ? `${e.name}=${e.value}` : ""))).toEqual([
      "PORT=8080",
      "PUBLIC_URL=https://example.org:8080",
    ]);
  });
});
