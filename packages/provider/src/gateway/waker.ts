import type { Engine } from "../engine/types.js";
import type { PodWaker } from "./types.js";

/**
 * Starts and stops pods through the engine with no policy: for tests and single-user setups. The daemon
 * passes its own waker that refuses pods it stopped on purpose (non-payment, deletion).
 */
export function engineWaker(engine: Pick<Engine, "start" | "stop">): PodWaker {
  return {
    wake: (podId) => engine.start(podId),
    sleep: (podId) => engine.stop(podId),
  };
}
