/**
 * Which Compose keys a pod can have. Keys that would give a container more of the host than a pod on a provider
 * can have are refused with the key's position and what to do instead; keys a pod can do without are dropped
 * with a warning saying what the pod does instead.
 */
import { isScalar, isSeq } from "yaml";
import type { MapView } from "../yaml-reader.js";
import type { ComposeContext } from "./context.js";

export const SERVICE_KEYS = [
  "annotations",
  "attach",
  "blkio_config",
  "build",
  "cap_add",
  "cap_drop",
  "cgroup",
  "cgroup_parent",
  "command",
  "configs",
  "container_name",
  "cpu_count",
  "cpu_percent",
  "cpu_period",
  "cpu_quota",
  "cpu_rt_period",
  "cpu_rt_runtime",
  "cpu_shares",
  "cpus",
  "cpuset",
  "credential_spec",
  "depends_on",
  "deploy",
  "develop",
  "device_cgroup_rules",
  "devices",
  "dns",
  "dns_opt",
  "dns_search",
  "domainname",
  "entrypoint",
  "env_file",
  "environment",
  "expose",
  "extends",
  "external_links",
  "extra_hosts",
  "gpus",
  "group_add",
  "healthcheck",
  "hostname",
  "image",
  "init",
  "ipc",
  "isolation",
  "label_file",
  "labels",
  "links",
  "logging",
  "mac_address",
  "mem_limit",
  "mem_reservation",
  "mem_swappiness",
  "memswap_limit",
  "network_mode",
  "networks",
  "oom_kill_disable",
  "oom_score_adj",
  "pid",
  "pids_limit",
  "platform",
  "ports",
  "post_start",
  "pre_stop",
  "privileged",
  "profiles",
  "provider",
  "pull_policy",
  "read_only",
  "restart",
  "runtime",
  "scale",
  "secrets",
  "security_opt",
  "shm_size",
  "stdin_open",
  "stop_grace_period",
  "stop_signal",
  "storage_opt",
  "sysctls",
  "tmpfs",
  "tty",
  "ulimits",
  "use_api_socket",
  "user",
  "userns_mode",
  "uts",
  "volumes",
  "volumes_from",
  "working_dir",
  "x-*",
] as const;

export const TOP_KEYS = [
  "version",
  "name",
  "services",
  "volumes",
  "networks",
  "secrets",
  "configs",
  "include",
  "models",
  "x-*",
];

/** Keys that give a container more of the host than a pod on a provider can: the pod would not work. */
const FATAL_KEYS: Record<string, string> = {
  cap_add:
    "extra kernel capabilities are not granted to pods; remove it, or run the program as a user that needs none",
  devices: "host devices are not available to pods",
  device_cgroup_rules: "host devices are not available to pods",
  volumes_from: "mount the volumes explicitly instead",
  runtime: "the provider chooses the container runtime",
  isolation: "the provider chooses the isolation",
  cgroup_parent: "the provider manages cgroups",
  use_api_socket: "the container engine's socket is not available to pods",
  provider: "provider services are not containers",
};

/** Keys dropped with a warning; the value says what the pod does instead. */
const DROPPED_KEYS: Record<string, string> = {
  annotations: "",
  attach: "",
  blkio_config: "",
  cap_drop: "the pod runs with the provider's default capabilities",
  cgroup: "",
  container_name: "other containers reach it by its service name or localhost",
  cpu_count: "",
  cpu_percent: "",
  cpu_period: "",
  cpu_quota: "",
  cpu_rt_period: "",
  cpu_rt_runtime: "",
  cpu_shares: "",
  cpuset: "",
  credential_spec: "",
  depends_on: "containers of a pod start together, without ordering",
  develop: "",
  dns: "",
  dns_opt: "",
  dns_search: "",
  domainname: "",
  external_links: "",
  extra_hosts: "",
  group_add: "",
  hostname: "",
  init: "",
  label_file: "",
  links: "containers reach each other by service name or localhost",
  logging: "logs are read with tpod logs",
  mac_address: "",
  mem_reservation: "",
  mem_swappiness: "",
  memswap_limit: "",
  oom_kill_disable: "",
  oom_score_adj: "",
  pids_limit: "",
  platform: "",
  post_start: "",
  pre_stop: "",
  pull_policy: "",
  read_only: "",
  security_opt: "",
  shm_size: "",
  stdin_open: "",
  stop_grace_period: "",
  stop_signal: "",
  storage_opt: "",
  sysctls: "",
  tty: "",
  ulimits: "",
  user: "the container runs as its image's user",
  userns_mode: "",
};

/** Keys whose scalar value decides what happens: read interpolated. */
const TYPED_KEYS = ["pid", "ipc", "uts", "network_mode", "restart", "scale"];

/** Checks one key of a service: refuses what a pod cannot have, warns about what it drops. */
export function checkServiceKey(cx: ComposeContext, m: MapView, key: string): void {
  const r = cx.r;
  const e = m.get(key)!;
  const node = r.resolve(e.value);
  // Compose interpolates, then casts: `privileged: "true"` and `pid: $MODE` mean what they say.
  const text =
    TYPED_KEYS.includes(key) && node && isScalar(node) && node.value !== null
      ? cx.text(node, [], key, e.keyNode)
      : undefined;
  if (key in FATAL_KEYS) {
    const empty =
      node &&
      ((isSeq(node) && node.items.length === 0) ||
        (isScalar(node) && (node.value === null || node.value === false)));
    if (!empty) r.report(e.keyNode, "UNSUPPORTED", `${key}: not supported (${FATAL_KEYS[key]})`);
    return;
  }
  if (key === "privileged") {
    if (cx.boolean(e.value, [], key, e.keyNode))
      r.report(
        e.keyNode,
        "UNSUPPORTED",
        "privileged: not supported (pods never run privileged; remove it and grant the program only what it needs)",
      );
    return;
  }
  for (const hostKey of ["pid", "ipc", "uts"]) {
    if (key === hostKey && text === "host") {
      r.report(e.keyNode, "UNSUPPORTED", `${key}: host is not supported (pods are isolated from the host)`);
      return;
    }
  }
  if (key === "network_mode") {
    const mode = text ?? "";
    if (mode.startsWith("service:") || mode.startsWith("container:") || mode === "bridge" || mode === "")
      return;
    r.warn(
      e.keyNode,
      "UNSUPPORTED",
      `network_mode: ${mode} dropped; the pod has its own network (publish listening ports under ports:)`,
    );
    return;
  }
  if (key === "restart") {
    if (text === "no" || text?.startsWith("on-failure"))
      r.warn(e.keyNode, "UNSUPPORTED", `restart: ${text} dropped; pod containers are always restarted`);
    return;
  }
  if (key === "scale") {
    if (Number(text) > 1)
      r.warn(e.keyNode, "UNSUPPORTED", "scale: dropped; replicas apply to the whole pod (spec.replicas)");
    return;
  }
  if (key === "expose") {
    r.warn(
      e.keyNode,
      "UNSUPPORTED",
      "expose: not published; the containers of a pod reach each other on localhost (use ports: to publish)",
    );
    return;
  }
  if (key in DROPPED_KEYS) {
    const why = DROPPED_KEYS[key];
    r.warn(e.keyNode, "UNSUPPORTED", `${key}: dropped${why ? `; ${why}` : ""}`);
  }
}
