/**
 * Published ports: Compose's short ("8080:80/udp") and long ({target, protocol, app_protocol}) forms become
 * the pod's http, tcp and udp ports. A pod publishes each container port once per transport.
 */
import { isMap, type Node } from "yaml";
import type { PathSegment, Port } from "../pod.js";
import type { MapView } from "../yaml-reader.js";
import type { ComposeContext } from "./context.js";

/**
 * Container ports taken for HTTP unless the port says otherwise (app_protocol); all others become tcp. Besides
 * the usual web ports, the web UIs and HTTP APIs of images common in Compose files: Loki 3100, Kibana 5601,
 * n8n 5678, CouchDB 5984, InfluxDB 8086, Vault 8200, Consul 8500, Solr 8983, MinIO console 9001, Prometheus 9090,
 * Elasticsearch/OpenSearch 9200, Zipkin 9411, RabbitMQ management 15672, Jaeger 16686.
 */
export const HTTP_PORTS: readonly number[] = [
  80, 3000, 3100, 4000, 5000, 5173, 5601, 5678, 5984, 8000, 8008, 8069, 8080, 8081, 8086, 8088, 8200, 8500,
  8888, 8983, 9001, 9080, 9090, 9200, 9411, 15672, 16686,
];

export type Transport = "tcp" | "udp";

/** The ports one service listens on (published or exposed), keyed by portKey, for the same-port check. */
export type Listens = Map<string, Node | null>;

interface PortSpec {
  target: number;
  protocol: string;
  appProtocol?: string;
}

export function portKey(port: number, transport: Transport): string {
  return transport === "udp" ? `${port}/udp` : String(port);
}

/** Reads a service's ports: and expose: into the container's ports and the listening set. */
export function readPorts(
  cx: ComposeContext,
  m: MapView,
  ports: Port[],
  listens: Listens,
  path: PathSegment[],
): void {
  const r = cx.r;
  const expose = m.get("expose");
  if (expose) {
    for (const item of r.seq(expose.value, [], "expose", expose.keyNode)) {
      const t = cx.text(item, [], "expose items", expose.keyNode);
      const port = t && /^(\d+)(?:\/(tcp|udp))?$/.exec(t);
      if (port) listens.set(portKey(Number(port[1]), port[2] === "udp" ? "udp" : "tcp"), r.resolve(item));
    }
  }
  const list = m.get("ports");
  if (!list) return;
  for (const item of r.seq(list.value, [], "ports", list.keyNode)) {
    const node = r.resolve(item);
    const specs = node && isMap(node) ? longPort(cx, node) : shortPort(cx, item);
    for (const spec of specs) {
      if (spec.protocol !== "tcp" && spec.protocol !== "udp") {
        r.report(
          node,
          "UNSUPPORTED",
          `port ${spec.target}/${spec.protocol}: pods publish tcp, udp and http ports (sctp is not supported)`,
        );
        continue;
      }
      const transport: Transport = spec.protocol;
      if (ports.some((p) => p.containerPort === spec.target && transportOf(p) === transport)) {
        r.warn(
          node,
          "CONFLICT",
          `port ${spec.target}/${transport} is already published: dropped (a pod publishes each container port once)`,
        );
        continue;
      }
      const j = ports.length;
      r.record([...path, "ports", j, "containerPort"], node);
      ports.push({ containerPort: spec.target, protocol: portProtocol(spec, transport) });
      listens.set(portKey(spec.target, transport), node);
    }
  }
}

function transportOf(p: Port): Transport {
  return p.protocol === "udp" ? "udp" : "tcp";
}

function portProtocol(spec: PortSpec, transport: Transport): Port["protocol"] {
  if (transport === "udp") return "udp";
  return spec.appProtocol === "http" || (!spec.appProtocol && HTTP_PORTS.includes(spec.target))
    ? "http"
    : "tcp";
}

function shortPort(cx: ComposeContext, item: Node | null): PortSpec[] {
  const t = cx.text(item, [], "ports items");
  if (t === undefined) return [];
  const m = /^(?:(\[[^\]]*\]|[\d.]+):)?(?:(\d*(?:-\d+)?):)?(\d+)(?:-(\d+))?(?:\/(\w+))?$/.exec(t.trim());
  if (!m) {
    cx.r.report(
      cx.r.resolve(item),
      "INVALID_PORT",
      `"${t}" is not a Compose port ([HOST:]CONTAINER[/PROTOCOL])`,
    );
    return [];
  }
  const [, hostIp = "", , from = "", to, protocol = "tcp"] = m;
  warnLoopback(cx, hostIp.replace(/^\[|\]$/g, ""), from, cx.r.resolve(item));
  const start = Number(from);
  const end = to ? Number(to) : start;
  if (end < start || end - start >= 64) {
    cx.r.report(cx.r.resolve(item), "INVALID_PORT", `port range "${t}" is empty or longer than 64 ports`);
    return [];
  }
  return Array.from({ length: end - start + 1 }, (_, k) => ({
    target: start + k,
    protocol: protocol.toLowerCase(),
  }));
}

function longPort(cx: ComposeContext, node: Node): PortSpec[] {
  const r = cx.r;
  const pm = r.map(node, [], "port", [
    "target",
    "published",
    "host_ip",
    "protocol",
    "mode",
    "app_protocol",
    "name",
    "x-*",
  ])!;
  const target = r.require(pm, "target", "a port", []);
  const t = target && cx.text(target.value, [], "target", target.keyNode);
  if (t === undefined) return [];
  if (!/^\d+$/.test(t)) {
    r.report(target?.value, "INVALID_PORT", `target "${t}" is not a port number`);
    return [];
  }
  warnLoopback(cx, cx.entryText(pm.get("host_ip")) ?? "", t, node);
  const appProtocol = cx.entryText(pm.get("app_protocol"))?.toLowerCase();
  return [
    {
      target: Number(t),
      protocol: cx.entryText(pm.get("protocol"))?.toLowerCase() ?? "tcp",
      ...(appProtocol ? { appProtocol } : {}),
    },
  ];
}

/**
 * Compose binds a port to the host's loopback so that only programs on that host reach it (a database for local
 * tools); a pod has no such host side, so the port is published like the others. Say so.
 */
function warnLoopback(cx: ComposeContext, hostIp: string, port: string, node: Node | null): void {
  if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(hostIp)) return;
  cx.r.warn(
    node,
    "UNSUPPORTED",
    `port ${port} is bound to ${hostIp} (this host only) in Compose, but the pod publishes it; remove it from ports: if only the pod's containers use it`,
  );
}

/** The containers of a pod share one network: two services cannot listen on the same port. */
export function checkSharedPorts(
  cx: ComposeContext,
  services: { name: string; listens: Listens; container: { ports: Port[] } }[],
): void {
  const owner = new Map<string, string>();
  services.forEach((s, i) => {
    for (const [key, node] of s.listens) {
      const other = owner.get(key);
      if (other === undefined) {
        owner.set(key, s.name);
        continue;
      }
      cx.r.report(
        node,
        "CONFLICT",
        `services "${other}" and "${s.name}" both use port ${key}; the containers of a pod share one network: make one of them listen on another port`,
      );
      // The manifest check would report the same port again: this message says it with the services' names.
      s.container.ports.forEach((p, j) => {
        if (portKey(p.containerPort, transportOf(p)) === key)
          cx.r.poison(["spec", "containers", i, "ports", j, "containerPort"]);
      });
    }
  });
}
