import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { loadManifest, loadPricing } from "../src/node.js";
import { podPrice } from "../src/pricing.js";
import { podToWire } from "../src/wire.js";

const examplesDir = resolve(import.meta.dirname, "../../../examples");
const manifests = readdirSync(examplesDir, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => join(examplesDir, d.name, "pod.yaml"));

describe("examples/", () => {
  it("holds the three example pods", () => {
    expect(manifests.map((m) => m.slice(examplesDir.length + 1))).toEqual([
      "hello/pod.yaml",
      "kv/pod.yaml",
      "two-container/pod.yaml",
    ]);
  });

  it.each(manifests)("%s validates (secret files included) and has a price", (file) => {
    const pod = loadManifest(file);
    const price = podPrice(pod, loadPricing(join(examplesDir, "pricing.yaml")));
    expect(price.perSecond > 0n).toBe(true);
    const hasLocalSecret = pod.volumes.some((v) => v.kind === "secret" && v.source.kind === "file");
    if (!hasLocalSecret) expect(podToWire(pod).name).toBe(pod.name);
  });
});
