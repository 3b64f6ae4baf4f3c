import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { EngineError } from "./errors.js";

const run = promisify(execFile);

export const FIREWALL_CHAIN = "TPOD_INPUT";
export const FORWARD_CHAIN = "TPOD_FORWARD";
/** Podman names every bridge it creates podman<N> (podman0 is its default network). */
const PODMAN_BRIDGES = "podman+";

async function iptables(args: string[]): Promise<string> {
  try {
    const { stdout } = await run("iptables", ["-w", "5", ...args]);
    return stdout;
  } catch (err) {
    throw new EngineError("FIREWALL_FAILED", `iptables ${args.join(" ")} failed`, { cause: err });
  }
}

async function succeeds(args: string[]): Promise<boolean> {
  try {
    await run("iptables", ["-w", "5", ...args]);
    return true;
  } catch {
    return false;
  }
}

function comment(podId: string): string {
  return `tpod:${podId}`;
}

/**
 * Host firewall for pod networks, in two chains of our own that the engine keeps first in INPUT and FORWARD.
 *
 * INPUT: traffic from a container to any of the host's own addresses goes through INPUT, where nothing stops
 * it: a pod could reach the provider daemon, the gateway or anything else listening on the host. For each pod
 * bridge we drop everything entering the host from it except replies to connections the host opened (the
 * gateway and health probes dial containers) and DNS to aardvark-dns on the bridge's gateway address.
 *
 * FORWARD: netavark's `isolate` option is meant to keep bridges apart, but netavark 1.4 (Debian 12) deletes
 * the shared `FORWARD -j NETAVARK_ISOLATION_1` jump when any isolated network is torn down, silently leaving
 * the others open (seen here). So we do it ourselves: a pod bridge may forward to itself and to non-podman
 * interfaces (the uplink), never to another podman bridge, and no other podman bridge may forward into it.
 * Published ports reached by another pod through a host address are DNATed and then dropped here too.
 */
export class HostFirewall {
  private async ensureChain(chain: string, parent: string): Promise<void> {
    if (!(await succeeds(["-n", "-L", chain]))) {
      // Another engine may create it at the same moment: only fail if it still does not exist.
      if (!(await succeeds(["-N", chain])) && !(await succeeds(["-n", "-L", chain]))) {
        throw new EngineError("FIREWALL_FAILED", `cannot create chain ${chain}`);
      }
    }
    if (!(await succeeds(["-C", parent, "-j", chain]))) {
      await iptables(["-I", parent, "1", "-j", chain]);
    }
  }

  async ensureChains(): Promise<void> {
    await this.ensureChain(FIREWALL_CHAIN, "INPUT");
    await this.ensureChain(FORWARD_CHAIN, "FORWARD");
  }

  async allowPod(podId: string, bridge: string): Promise<void> {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(bridge))
      throw new EngineError("FIREWALL_FAILED", `bad interface ${bridge}`);
    await this.ensureChains();
    const c = ["-m", "comment", "--comment", comment(podId)];
    const input: string[][] = [
      ["-i", bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", ...c, "-j", "RETURN"],
      ["-i", bridge, "-p", "udp", "--dport", "53", ...c, "-j", "RETURN"],
      ["-i", bridge, "-p", "tcp", "--dport", "53", ...c, "-j", "RETURN"],
      ["-i", bridge, ...c, "-j", "DROP"],
    ];
    const forward: string[][] = [
      ["-i", bridge, "-o", bridge, ...c, "-j", "RETURN"],
      ["-i", bridge, "-o", PODMAN_BRIDGES, ...c, "-j", "DROP"],
      ["-i", PODMAN_BRIDGES, "-o", bridge, ...c, "-j", "DROP"],
    ];
    // Starting a stopped pod (a scale-to-zero wake) calls this again: when exactly these rules are in place for
    // this bridge, keep them rather than pay ~20 iptables runs on the wake's critical path.
    const installed = await this.rulesFor(podId);
    if (
      installed.length === forward.length + input.length &&
      installed.every((l) => l.includes(` ${bridge} `))
    )
      return;
    await this.removePod(podId);
    for (const r of forward) await iptables(["-A", FORWARD_CHAIN, ...r]);
    for (const r of input) await iptables(["-A", FIREWALL_CHAIN, ...r]);
  }

  async removePod(podId: string): Promise<void> {
    for (const chain of [FIREWALL_CHAIN, FORWARD_CHAIN]) {
      for (const line of await this.rules(chain, podId)) {
        // iptables -S prints rules in the syntax -D accepts; our comment has no spaces or quotes to keep.
        await succeeds(["-D", ...line.slice(3).trim().split(/\s+/)]);
      }
    }
  }

  private async rules(chain: string, podId: string): Promise<string[]> {
    if (!(await succeeds(["-n", "-L", chain]))) return [];
    const listing = (await iptables(["-S", chain])).replaceAll('"', "");
    const tag = `--comment ${comment(podId)} `;
    return listing.split("\n").filter((l) => l.startsWith(`-A ${chain} `) && l.includes(tag));
  }

  /** Rules currently installed for a pod (for tests and diagnostics). */
  async rulesFor(podId: string): Promise<string[]> {
    return [...(await this.rules(FIREWALL_CHAIN, podId)), ...(await this.rules(FORWARD_CHAIN, podId))];
  }
}
