import type { Diagnostic } from "../diagnostics.js";
import type { Pod } from "../pod.js";

export interface ComposeImportOptions {
  /** Variables for ${VAR} interpolation and for pass-through environment entries (e.g. from `.env`). */
  env?: Record<string, string>;
  /** Reads a file named in the Compose file (env_file), as written there; undefined when it does not exist. */
  readFile?: (path: string) => string | undefined;
  /** Whether a path named in the Compose file (bind mount, build context) is a file or a directory; without it, names with an extension are files and build contexts are not checked. */
  pathKind?: (path: string) => "file" | "directory" | "missing";
  /**
   * The files under a directory named in the Compose file (a read-only bind mount's source), as paths relative to
   * it, recursively; undefined when it cannot be listed. Without it, such mounts are refused.
   */
  listFiles?: (dir: string) => string[] | undefined;
  /**
   * The profiles whose services are imported besides those without profiles (`*`: all), as `--profile` gives
   * them to Compose; default: COMPOSE_PROFILES (comma-separated) from env.
   */
  profiles?: string[];
  /** The pod name when the Compose file has no top-level `name:`; Compose uses the project directory's name. */
  projectName?: string;
}

/** One image to build before the pod can run, from a service's `build:`. */
export interface ComposeBuild {
  /** The service as named in the Compose file. */
  service: string;
  /** The container of the pod that runs the image. */
  container: string;
  /** The tag the image is built as; the manifest names it as the container's local image. */
  image: string;
  /** The build context directory, as written (relative to the Compose file's directory, or absolute). */
  context: string;
  /** The Containerfile or Dockerfile, relative to the context; absent: Containerfile when present, else Dockerfile. */
  dockerfile?: string;
  /** The Dockerfile's text when it is written inline (dockerfile_inline). */
  dockerfileInline?: string;
  /** Build arguments (ARG values). */
  args: Record<string, string>;
  /** The stage of a multi-stage build to stop at. */
  target?: string;
  labels: Record<string, string>;
  noCache: boolean;
  /** Where the service's build: is in the Compose file, for errors found while building. */
  line: number;
  col: number;
}

export interface ComposeImport {
  /** Present when there are no errors. */
  pod?: Pod;
  /** The manifest YAML for pod. */
  manifest?: string;
  /** The images the pod's local images are built from (services with build:), in service order. */
  builds: ComposeBuild[];
  diagnostics: Diagnostic[];
}
