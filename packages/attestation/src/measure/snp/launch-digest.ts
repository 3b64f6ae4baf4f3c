// The SEV-SNP launch digest: every page the VMM hands to SNP_LAUNCH_UPDATE extends the digest with a
// PAGE_INFO structure (SEV-SNP firmware ABI, "Layout of the PAGE_INFO structure"). Async because WebCrypto is.
import { sha384 } from "../../crypto.js";
import { PAGE_SIZE } from "./ovmf.js";

export const LAUNCH_DIGEST_SIZE = 48;
const PAGE_INFO_SIZE = 0x70;
/** The VMSA's RMP entry has GPA -1, page-aligned and cut to the 52-bit physical address space. */
const VMSA_GPA = 0xffff_ffff_f000;

const PageType = { normal: 1, vmsa: 2, zero: 3, unmeasured: 4, secrets: 5, cpuid: 6 } as const;
type PageType = (typeof PageType)[keyof typeof PageType];

export class SnpLaunchDigest {
  private digest: Uint8Array;

  /** Starts from zero, or from a digest computed earlier (e.g. over the firmware pages alone). */
  constructor(seed: Uint8Array = new Uint8Array(LAUNCH_DIGEST_SIZE)) {
    if (seed.length !== LAUNCH_DIGEST_SIZE) throw new RangeError("an SNP launch digest is 48 bytes");
    this.digest = Uint8Array.from(seed);
  }

  value(): Uint8Array {
    return Uint8Array.from(this.digest);
  }

  async normalPages(gpa: number, data: Uint8Array): Promise<void> {
    for (let off = 0; off < data.length; off += PAGE_SIZE) {
      await this.update(PageType.normal, gpa + off, await sha384(data.subarray(off, off + PAGE_SIZE)));
    }
  }

  async vmsaPage(page: Uint8Array): Promise<void> {
    await this.update(PageType.vmsa, VMSA_GPA, await sha384(page));
  }

  async zeroPages(gpa: number, size: number): Promise<void> {
    await this.contentlessPages(PageType.zero, gpa, size);
  }

  async unmeasuredPages(gpa: number, size: number): Promise<void> {
    await this.contentlessPages(PageType.unmeasured, gpa, size);
  }

  async secretsPage(gpa: number): Promise<void> {
    await this.contentlessPages(PageType.secrets, gpa, PAGE_SIZE);
  }

  async cpuidPage(gpa: number): Promise<void> {
    await this.contentlessPages(PageType.cpuid, gpa, PAGE_SIZE);
  }

  /** Zero, unmeasured, secrets and CPUID pages enter the digest by type and address only: contents are 0. */
  private async contentlessPages(type: PageType, gpa: number, size: number): Promise<void> {
    const none = new Uint8Array(LAUNCH_DIGEST_SIZE);
    for (let off = 0; off < size; off += PAGE_SIZE) await this.update(type, gpa + off, none);
  }

  private async update(type: PageType, gpa: number, contents: Uint8Array): Promise<void> {
    const info = new Uint8Array(PAGE_INFO_SIZE);
    const view = new DataView(info.buffer);
    info.set(this.digest, 0);
    info.set(contents, LAUNCH_DIGEST_SIZE);
    view.setUint16(0x60, PAGE_INFO_SIZE, true);
    view.setUint8(0x62, type);
    // 0x63 IMI page, 0x64..0x66 VMPL3..1 permissions, 0x67 reserved: all 0 for a launch from the VMM.
    view.setBigUint64(0x68, BigInt(gpa), true);
    this.digest = await sha384(info);
  }
}
