/**
 * A `lookup` for node:http that resolves NAME.localhost to loopback, as browsers and curl do (glibc does not),
 * and refuses every other name so a test never reaches beyond this machine by mistake.
 */
import type { LookupFunction } from "node:net";

export const localhostLookup: LookupFunction = (host, options, cb) => {
  const done = cb as (e: Error | null, a?: unknown, f?: number) => void;
  if (host !== "localhost" && !host.endsWith(".localhost")) return done(new Error(`unexpected host ${host}`));
  if ((options as { all?: boolean }).all) return done(null, [{ address: "127.0.0.1", family: 4 }]);
  return done(null, "127.0.0.1", 4);
};
