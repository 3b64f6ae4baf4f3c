// The bind probe that decides whether a recorded host port can be asked for again probes the port's own
// transport: a udp port held by another program is taken even when the same tcp port is free.
import dgram from "node:dgram";
import { describe, expect, it } from "vitest";
import { localPortFree } from "../src/provision/host-ports.js";

describe("localPortFree", () => {
  it("sees a udp port another socket holds as taken, and free once it is closed", async () => {
    const holder = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => holder.bind({ address: "127.0.0.1", port: 0 }, resolve));
    const port = holder.address().port;
    expect(await localPortFree("127.0.0.1", port, "udp")).toBe(false);
    await new Promise<void>((resolve) => holder.close(resolve));
    expect(await localPortFree("127.0.0.1", port, "udp")).toBe(true);
  });
});
