import type { Engine } from "../engine/types.js";
import type { PodLifecycle } from "./types.js";

/**
 * PodLifecycle straight on an engine, pod keys being engine pod ids. The daemon supplies its own (which also
 * updates its pod records); this one serves tests and tools.
 */
export class EngineLifecycle implements PodLifecycle {
  constructor(
    private readonly engine: Pick<Engine, "stop" | "start" | "remove">,
    private readonly options: { removeImages?: boolean } = {},
  ) {}
  stop(podId: string): Promise<void> {
    return this.engine.stop(podId);
  }
  start(podId: string): Promise<void> {
    return this.engine.start(podId);
  }
  remove(podId: string): Promise<void> {
    return this.engine.remove(podId, { images: this.options.removeImages ?? true });
  }
}
