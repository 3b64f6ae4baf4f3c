import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import { registerAttest } from "./attest.js";
import { registerDeploy } from "./deploy.js";
import { registerDev } from "./dev.js";
import { registerDevnet } from "./devnet.js";
import { registerDoctor } from "./doctor.js";
import { registerImage } from "./image.js";
import { registerKeys } from "./keys.js";
import { registerListings } from "./listings.js";
import { registerManifest } from "./manifest.js";
import { registerMeasure } from "./measure.js";
import { registerNetwork } from "./network.js";
import { registerPods } from "./pods.js";
import { registerProvider } from "./provider.js";
import { registerProviderImage } from "./provider-image.js";
import { registerProviders } from "./providers.js";
import { registerRelease } from "./release.js";
import { registerVerify } from "./verify.js";

export type { CommandContext } from "../context.js";

/** Every command group registers itself here; one line per group keeps main.ts free of command logic. */
export function registerCommands(program: Command, ctx: CommandContext): void {
  registerDoctor(program, ctx);
  registerAttest(program, ctx);
  registerMeasure(program, ctx);
  registerManifest(program, ctx);
  registerImage(program, ctx);
  registerDevnet(program, ctx);
  registerKeys(program, ctx);
  registerNetwork(program, ctx);
  registerProviders(program, ctx);
  registerVerify(program, ctx);
  registerRelease(program, ctx);
  registerProvider(program, ctx);
  registerProviderImage(program.commands.find((c) => c.name() === "provider")!, ctx);
  registerDev(program, ctx);
  registerListings(program, ctx);
  registerDeploy(program, ctx);
  registerPods(program, ctx);
}
