import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import { ExitCode } from "../errors.js";
import { printJson } from "../output.js";

const run = promisify(execFile);

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

async function commandVersion(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout } = await run(cmd, args, { timeout: 10_000 });
    return stdout.trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

async function checkContainersConf(): Promise<Check> {
  const path = "/etc/containers/containers.conf";
  const text = await readFile(path, "utf8").catch(() => "");
  const ok = /^\s*runtime\s*=\s*"runc"/m.test(text) && text.includes("default_ulimits");
  return {
    name: "containers.conf",
    ok,
    detail: ok
      ? `${path} selects runc and sets ulimits`
      : `${path} lacks runtime = "runc" or default_ulimits`,
    ...(ok ? {} : { fix: "run scripts/setup.sh as root" }),
  };
}

/** Checks what the local devnet and the provider daemon need on this machine. */
export async function runChecks(): Promise<Check[]> {
  const nodeMajor = Number(process.versions.node.split(".")[0]);
  const checks: Check[] = [
    {
      name: "node",
      ok: nodeMajor >= 22,
      detail: `node ${process.versions.node}`,
      ...(nodeMajor >= 22 ? {} : { fix: "run scripts/setup.sh (installs Node 22 into .tools/node)" }),
    },
  ];
  for (const tool of ["podman", "buildah", "skopeo"]) {
    const version = await commandVersion(tool, ["--version"]);
    checks.push({
      name: tool,
      ok: version !== undefined,
      detail: version ?? `${tool} not found on PATH`,
      ...(version ? {} : { fix: `apt-get install ${tool} (or run scripts/setup.sh as root)` }),
    });
  }
  checks.push(await checkContainersConf());
  return checks;
}

export function registerDoctor(program: Command, { io, setExitCode }: CommandContext): void {
  program
    .command("doctor")
    .description("check that this machine has what the devnet and the provider need")
    .option("--json", "print the checks as JSON")
    .action(async (opts: { json?: boolean }) => {
      const checks = await runChecks();
      if (opts.json) {
        printJson(io, { ok: checks.every((c) => c.ok), checks });
      } else {
        for (const c of checks) {
          io.out(
            `${c.ok ? "ok  " : "FAIL"} ${c.name.padEnd(16)} ${c.detail}${c.fix ? ` (fix: ${c.fix})` : ""}`,
          );
        }
      }
      if (!checks.every((c) => c.ok)) setExitCode(ExitCode.failure);
    });
}
