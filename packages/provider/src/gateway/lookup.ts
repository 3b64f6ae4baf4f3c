import dns, { type LookupAddress, type LookupOptions } from "node:dns";

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** RFC 6761: `localhost` and every name under it are loopback. */
export function isLocalhostName(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, "");
  return h === "localhost" || h.endsWith(".localhost");
}

/**
 * A `dns.lookup` replacement that resolves `*.localhost` to 127.0.0.1 (browsers and curl do this themselves;
 * glibc here and Node's fetch/http do not) and defers every other name to dns.lookup. Pass it as `lookup`
 * to http.request, `ws`, or undici's `Agent({ connect: { lookup } })` to reach devnet gateway hostnames.
 */
export function localhostLookup(
  hostname: string,
  options: LookupOptions | number,
  callback: LookupCallback,
): void {
  const opts: LookupOptions = typeof options === "number" ? { family: options } : (options ?? {});
  if (!isLocalhostName(hostname)) {
    dns.lookup(hostname, { ...opts, all: opts.all === true }, (err, address, family?: number) =>
      callback(err, address, family),
    );
    return;
  }
  const v6 = opts.family === 6 || opts.family === "IPv6";
  const address = v6 ? "::1" : "127.0.0.1";
  const family = v6 ? 6 : 4;
  process.nextTick(() =>
    opts.all ? callback(null, [{ address, family }]) : callback(null, address, family),
  );
}
