// Test-only, shared by the examples and provider VM tests: Redis commands over RESP on a plain socket, as a
// client on the publisher's machine reaches examples/kv's TCP endpoint (no Redis client library needed).
import net from "node:net";

/** Redis commands over RESP on one connection; resolves with every reply's raw text once `replies` came. */
export function redis(address: string, commands: string[][], replies: number): Promise<string[]> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.split(":").at(-1))];
  return new Promise((done, fail) => {
    const s = net.connect(port, host);
    let buf = "";
    const timer = setTimeout(
      () => s.destroy(new Error(`redis: no ${replies} replies, got ${JSON.stringify(buf)}`)),
      10_000,
    );
    s.on("connect", () => {
      for (const c of commands)
        s.write(`*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
    });
    s.on("data", (d) => {
      buf += d.toString();
      const parsed = parseReplies(buf);
      if (parsed.length >= replies) {
        clearTimeout(timer);
        s.end();
        done(parsed);
      }
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      fail(e);
    });
    // A forward whose far side is not listening yet (QEMU's, before the pod's port is published) accepts and
    // then closes: that is a failure to retry, not a wait for the timer.
    s.on("close", () => {
      clearTimeout(timer);
      fail(new Error(`redis: the connection closed after ${JSON.stringify(buf)}`));
    });
  });
}

/** Simple strings, errors, integers and bulk strings: all these commands answer. */
export function parseReplies(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const end = text.indexOf("\r\n", i);
    if (end < 0) break;
    const line = text.slice(i, end);
    if (line.startsWith("$") && line !== "$-1") {
      const n = Number(line.slice(1));
      if (text.length < end + 2 + n + 2) break;
      out.push(text.slice(end + 2, end + 2 + n));
      i = end + 2 + n + 2;
    } else {
      out.push(line);
      i = end + 2;
    }
  }
  return out;
}
