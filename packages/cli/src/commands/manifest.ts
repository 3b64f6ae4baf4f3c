import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Definitions only; the manifest parser and pricing code load on use from ../actions/manifest.js.

const actions = () => import("../actions/manifest.js");

export function registerManifest(program: Command, ctx: CommandContext): void {
  const manifest = program.command("manifest").description("validate, show and import pod manifests");

  manifest
    .command("validate")
    .description("check manifests; prints FILE:LINE:COL: message on stderr for every error")
    .argument("<file...>", "manifest files")
    .option("--json", "print the parsed pod (an array of pods for several files)")
    .action(async (files: string[], opts: { json?: boolean }) =>
      (await actions()).manifestValidate(ctx, files, opts),
    );

  manifest
    .command("import")
    .description(
      "convert a docker-compose file into a pod manifest (YAML on stdout, warnings on stderr); services with build: are built first with podman build, from base images in the local store",
    )
    .argument("<compose-file>", "docker-compose.yml")
    .option(
      "--no-build",
      "do not build the images of build: services (the manifest names them as local images)",
    )
    .action(async (file: string, opts: { build?: boolean }) =>
      (await actions()).manifestImport(ctx, file, opts),
    );

  manifest
    .command("show")
    .description("print a readable summary of a manifest, with its price when given a pricing table")
    .argument("<file>", "manifest file")
    .option("--pricing <file>", "pricing table (YAML, see docs/manifest.md)")
    .option("--json", "print the pod, billed units and price as JSON")
    .action(async (file: string, opts: { pricing?: string; json?: boolean }) =>
      (await actions()).manifestShow(ctx, file, opts),
    );
}
