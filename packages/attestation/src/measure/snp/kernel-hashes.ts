// The SEV hashes table QEMU writes into the firmware's hashes page for a measured direct boot
// (`-kernel/-initrd/-append` with `kernel-hashes=on`); the firmware checks what it loads against it.
import { sha256 } from "../../crypto.js";
import { guidBytes } from "./guid.js";
import { PAGE_SIZE } from "./ovmf.js";

const TABLE_GUID = guidBytes("9438d606-4f22-4cc9-b479-a793d411fd21");
const KERNEL_GUID = guidBytes("4de79437-abd2-427f-b835-d5b172d2045b");
const INITRD_GUID = guidBytes("44baf731-3a2f-4bd7-9af1-41e29169781d");
const CMDLINE_GUID = guidBytes("97d02dd8-bd20-4c94-aa78-e7714d36ab2a");

const ENTRY_SIZE = 16 + 2 + 32;
const TABLE_SIZE = 16 + 2 + 3 * ENTRY_SIZE;
/** QEMU pads the table to a multiple of 16 bytes, and the padding is measured with it. */
export const PADDED_TABLE_SIZE = Math.ceil(TABLE_SIZE / 16) * 16;

export interface DirectBoot {
  kernel: Uint8Array;
  /** Absent means no initrd: the table then holds the hash of zero bytes. */
  initrd?: Uint8Array;
  /** Absent means an empty command line. */
  append?: string;
}

/** The padded table: header, then the cmdline, initrd and kernel entries (GUID, u16 length, SHA-256). */
export async function kernelHashesTable(boot: DirectBoot): Promise<Uint8Array> {
  // QEMU hashes the command line as the guest gets it: NUL-terminated.
  const cmdline = new TextEncoder().encode(`${boot.append ?? ""}\0`);
  const entries: [Uint8Array, Uint8Array][] = [
    [CMDLINE_GUID, await sha256(cmdline)],
    [INITRD_GUID, await sha256(boot.initrd ?? new Uint8Array())],
    [KERNEL_GUID, await sha256(boot.kernel)],
  ];
  const table = new Uint8Array(PADDED_TABLE_SIZE);
  const view = new DataView(table.buffer);
  table.set(TABLE_GUID, 0);
  view.setUint16(16, TABLE_SIZE, true);
  entries.forEach(([guid, hash], i) => {
    const at = 18 + i * ENTRY_SIZE;
    table.set(guid, at);
    view.setUint16(at + 16, ENTRY_SIZE, true);
    table.set(hash, at + 18);
  });
  return table;
}

/** The whole hashes page as SNP measures it: the table at the firmware's offset, zeros around it. */
export function kernelHashesPage(table: Uint8Array, offsetInPage: number): Uint8Array {
  const page = new Uint8Array(PAGE_SIZE);
  page.set(table, offsetInPage);
  return page;
}
