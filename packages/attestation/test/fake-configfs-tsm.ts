// FAKE kernel: a directory tree that behaves like /sys/kernel/config/tsm/report for the attester, because no
// SEV-SNP or TDX guest (and no configfs-tsm) exists on the test machine. It cannot sign, so it serves a real
// report captured from hardware as outblob, whatever inblob says.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { TsmFs } from "../src/node/index.js";

export interface FakeTsmOptions {
  root: string;
  /** null: the `tsm` module without a TEE driver registered (outside an SNP/TDX guest); mkdir fails ENXIO. */
  provider: "sev_guest" | "tdx_guest" | null;
  outblob: Uint8Array;
  auxblob?: Uint8Array;
  /** Simulate other writers: bump the generation while outblob is read, this many times. */
  races?: number;
}

export class FakeConfigfsTsm implements TsmFs {
  readonly inblobs: Uint8Array[] = [];
  readonly created: string[] = [];
  private races: number;

  constructor(private readonly opts: FakeTsmOptions) {
    this.races = opts.races ?? 0;
  }

  async init(): Promise<void> {
    await mkdir(this.opts.root, { recursive: true });
  }

  async mkdir(path: string): Promise<void> {
    if (dirname(path) !== this.opts.root) throw new Error(`ENOENT: ${path}`);
    if (this.opts.provider === null)
      throw Object.assign(new Error(`ENXIO: no such device or address, mkdir '${path}'`), { code: "ENXIO" });
    await mkdir(path); // EEXIST like configfs when the name is taken
    this.created.push(basename(path));
    await writeFile(join(path, "provider"), `${this.opts.provider}\n`);
    await writeFile(join(path, "generation"), "0\n");
    await writeFile(join(path, "privlevel_floor"), "0\n");
  }

  async rmdir(path: string): Promise<void> {
    await rm(path, { recursive: true });
  }

  private async bump(dir: string): Promise<void> {
    const g = Number.parseInt(await readFile(join(dir, "generation"), "utf8"), 10);
    await writeFile(join(dir, "generation"), `${g + 1}\n`);
  }

  async writeFile(path: string, data: Uint8Array): Promise<void> {
    const dir = dirname(path);
    const name = basename(path);
    if (name === "inblob") {
      if (data.length > 64) throw new Error("EINVAL: inblob is at most 64 bytes");
      this.inblobs.push(Uint8Array.from(data));
    } else if (name !== "privlevel") {
      throw new Error(`EACCES: ${name} is read-only`);
    }
    await writeFile(path, data);
    await this.bump(dir);
  }

  async readFile(path: string): Promise<Uint8Array> {
    const dir = dirname(path);
    const name = basename(path);
    if (name === "outblob") {
      // Like the kernel: no report before an inblob was written.
      if (this.inblobs.length === 0) throw Object.assign(new Error("EINVAL"), { code: "EINVAL" });
      if (this.races > 0) {
        this.races--;
        await this.bump(dir);
      }
      await writeFile(path, this.opts.outblob);
    } else if (name === "auxblob") {
      if (!this.opts.auxblob) throw new Error("ENOENT: auxblob");
      await writeFile(path, this.opts.auxblob);
    }
    return new Uint8Array(await readFile(path));
  }
}

/** Builds an SEV-SNP certificate table (GHCB extended guest request layout) from DER certificates. */
export function snpCertTable(entries: { guid: string; der: Uint8Array }[]): Uint8Array {
  const header = 24 * (entries.length + 1);
  const total = header + entries.reduce((n, e) => n + e.der.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let off = header;
  entries.forEach((e, i) => {
    const hex = e.guid.replace(/-/g, "");
    const b = Array.from({ length: 16 }, (_, j) => Number.parseInt(hex.slice(2 * j, 2 * j + 2), 16));
    const guid = [
      ...b.slice(0, 4).reverse(),
      ...b.slice(4, 6).reverse(),
      ...b.slice(6, 8).reverse(),
      ...b.slice(8),
    ];
    out.set(guid, 24 * i);
    view.setUint32(24 * i + 16, off, true);
    view.setUint32(24 * i + 20, e.der.length, true);
    out.set(e.der, off);
    off += e.der.length;
  });
  return out;
}
